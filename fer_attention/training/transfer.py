"""``model.init_from``: start a network from the tensors of another fer-attention checkpoint that fit it.

Unlike ``ckpt_path`` (which resumes a whole training state: weights, optimiser, epoch), ``init_from`` only
copies network weights, and only those whose name and shape match: the VGG streams, the fusion, the
attention and the reconstruction modules, and the classifier. The classifier's last layer carries over
when the checkpoint was trained on the same classes (by name, through :mod:`fer_attention.classes`; a
different order is re-ordered row by row); otherwise, or when the file does not say which classes it
was trained on, it keeps its fresh initialisation. A tensor whose name matches but whose shape does not
means another architecture (another ``backbone.width``, say): that stops the run before any data is
loaded, with one line naming the key and both shapes.

Accepted files: a ``fer-train`` checkpoint (``checkpoints/*.ckpt``), a ``fer-pretrain`` checkpoint
(``pretext.ckpt``), or a plain state dict of :class:`~fer_attention.models.FERAttentionNet`
(``torch.save(net.state_dict(), path)``; keys with or without the ``net.`` prefix).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fer_attention.classes import canonical, same_class_set
from fer_attention.errors import CheckpointError, ConfigError
from fer_attention.lbp import canonical_method
from fer_attention.training.checkpoint import load_weights_only

log = logging.getLogger(__name__)

NET_PREFIX = "net."


@dataclass
class InitSource:
    """The network tensors of an ``init_from`` file (keys as in the network's own state dict)."""

    path: str
    state: dict[str, torch.Tensor]
    class_names: list[str] | None
    kind: str  # "checkpoint", "pretext" or "state_dict"
    net_config: dict[str, Any] | None = None


@dataclass
class InitPlan:
    """What loading an :class:`InitSource` into a network does (computed from shapes alone)."""

    load: list[str] = field(default_factory=list)
    head: str = "not in the file"
    head_keys: tuple[str, ...] = ()
    head_order: list[int] | None = None  # row permutation file -> network, when the head is re-ordered
    missing: list[str] = field(default_factory=list)  # in the network, not in the file
    unused: list[str] = field(default_factory=list)  # in the file, not in the network

    def summary(self, path: str, kind: str) -> dict[str, Any]:
        return {
            "path": path,
            "kind": kind,
            "loaded": len(self.load),
            "loaded_by_module": dict(Counter(k.split(".", 1)[0] for k in self.load)),
            "head": self.head,
            "not_in_file": self.missing,
            "not_in_network": self.unused,
        }


def _fail(path: str, reason: str) -> ConfigError:
    return ConfigError(f"model.init_from={path}: {reason}")


def read_init_source(path: str | Path) -> InitSource:
    """Read an ``init_from`` file; :class:`ConfigError` (one line naming the file) when it is missing or
    is not a fer-attention checkpoint or network state dict."""
    shown = str(path)
    path = Path(path)
    if not path.is_file():
        raise _fail(shown, "no such file")
    try:
        obj = load_weights_only(path)
    except CheckpointError as err:
        raise _fail(shown, str(err)) from None
    if not isinstance(obj, dict):
        raise _fail(shown, f"not a fer-attention checkpoint or state dict (a {type(obj).__name__})")
    hparams: dict[str, Any] = {}
    kind = "state_dict"
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        hparams = obj.get("hyper_parameters") or {}
        kind = "pretext" if "pretext" in hparams else "checkpoint"
        raw = obj["state_dict"]
        state = {k[len(NET_PREFIX) :]: v for k, v in raw.items() if k.startswith(NET_PREFIX)}
        if not state:
            raise _fail(shown, "not a fer-attention checkpoint (no net.* tensors in its state_dict)")
    else:
        raw = obj
        state = {(k[len(NET_PREFIX) :] if k.startswith(NET_PREFIX) else k): v for k, v in raw.items()}
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _fail(shown, "not a fer-attention checkpoint or network state dict (no tensors)")
    names = hparams.get("class_names")
    return InitSource(
        path=shown,
        state=state,
        class_names=[str(n) for n in names] if names else None,
        kind=kind,
        net_config=hparams.get("net"),
    )


def head_keys(net: nn.Module) -> tuple[str, ...]:
    """State-dict keys of the classifier's last linear layer (the per-class weights)."""
    classifier = getattr(net, "classifier", None)
    if classifier is None:
        return ()
    last = None
    for name, module in classifier.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        return ()
    prefix = f"classifier.{last}." if last else "classifier."
    return tuple(f"{prefix}{p}" for p, _ in classifier.get_submodule(last).named_parameters(recurse=False))


def plan_init(
    net_shapes: dict[str, torch.Size],
    source: InitSource,
    class_names: list[str] | tuple[str, ...],
    head: tuple[str, ...],
) -> InitPlan:
    """Decide tensor by tensor what to load; :class:`ConfigError` on the first shape mismatch."""
    plan = InitPlan(head_keys=head)
    target = [str(c) for c in class_names]
    head_in_file = [k for k in head if k in source.state]
    reinit_head = False
    if head_in_file:
        if source.class_names is None:
            reinit_head = True
            plan.head = "re-initialised (the file does not record its classes)"
        elif source.class_names == target:
            plan.head = "loaded (same classes)"
        elif same_class_set(source.class_names, target):
            order = {canonical(n): i for i, n in enumerate(source.class_names)}
            plan.head_order = [order[canonical(n)] for n in target]
            plan.head = f"loaded, rows re-ordered by class name ({source.class_names} -> {target})"
        else:
            reinit_head = True
            plan.head = f"re-initialised (classes {source.class_names} -> {target})"
    for key, shape in net_shapes.items():
        if key not in source.state:
            plan.missing.append(key)
            continue
        if key in head and reinit_head:
            continue
        src = tuple(source.state[key].shape)
        if src != tuple(shape):
            raise _fail(
                source.path,
                f"{key} has shape {src} in the file but {tuple(shape)} in this network "
                "(another architecture, e.g. another model.net.backbone.width); nothing was trained",
            )
        plan.load.append(key)
    plan.unused = [k for k in source.state if k not in net_shapes]
    if not plan.load:
        raise _fail(source.path, "no tensor name matches this network (not a fer-attention network?)")
    return plan


def _net_shapes(net: nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in net.state_dict().items()}


# model.init_from placeholder of recipes that fine-tune (experiment=transfer): the run stops until it is set
INIT_REQUIRED = "required"


def check_transfer_config(cfg: Any) -> None:
    """The transfer settings of a composed fer-train config, before any data is read: ``model.init_from``
    (given where an experiment requires it, an existing fer-attention file whose tensors fit the configured
    network), ``model.freeze_backbone_epochs`` and ``model.backbone_lr_scale``. Raises :class:`ConfigError`
    with one line naming the key."""
    from omegaconf import OmegaConf

    model = OmegaConf.select(cfg, "model", default=None)
    if model is None or not OmegaConf.is_config(model):
        return
    # experiment=transfer sets the placeholder `required` (a `???` would not replace the model group's null)
    if OmegaConf.is_missing(model, "init_from") or model.get("init_from") == INIT_REQUIRED:
        raise ConfigError(
            "model.init_from is required by this experiment: pass model.init_from=<checkpoint file> "
            "(fer-train's checkpoints/*.ckpt or fer-pretrain's pretext.ckpt), or model.init_from=null for scratch"
        )
    try:
        check_transfer_options(model.get("freeze_backbone_epochs", 0) or 0, model.get("backbone_lr_scale"))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    check_init_from(cfg)


def check_init_from(cfg: Any) -> None:
    """Validate ``model.init_from`` against the configured network without loading data or weights into
    anything: the file must exist, be a fer-attention checkpoint, and fit the network's shapes."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    path = OmegaConf.select(cfg, "model.init_from", default=None)
    if path in (None, ""):
        return
    source = read_init_source(path)
    net_cfg = OmegaConf.to_container(cfg.model.net, resolve=True)
    net_cfg.setdefault("backbone", {})["weights"] = None  # shapes only: never fetch other weights here
    with torch.device("meta"):  # no memory, no initialisation cost
        net = instantiate(net_cfg)
    class_names = OmegaConf.select(cfg, "model.class_names", default=None) or []
    plan_init(_net_shapes(net), source, list(class_names), head_keys(net))


def apply_init_from(
    net: nn.Module, path: str | Path, class_names: list[str] | tuple[str, ...]
) -> dict[str, Any]:
    """Copy the matching tensors of ``path`` into ``net`` in place; returns a summary (for metrics.json)
    and logs what was loaded and what was not."""
    source = read_init_source(path)
    own = net.state_dict()
    plan = plan_init({k: v.shape for k, v in own.items()}, source, list(class_names), head_keys(net))
    with torch.no_grad():
        for key in plan.load:
            value = source.state[key]
            if plan.head_order is not None and key in plan.head_keys:
                value = value[plan.head_order]
            own[key].copy_(value.to(dtype=own[key].dtype))
    summary = plan.summary(str(path), source.kind)
    by_module = ", ".join(f"{m} {n}" for m, n in summary["loaded_by_module"].items())
    log.info(
        "model.init_from=%s (%s): loaded %d of %d tensors (%s); classifier head %s",
        path,
        source.kind,
        len(plan.load),
        len(own),
        by_module,
        plan.head,
    )
    not_loaded = [k for k in own if k not in set(plan.load)]
    if not_loaded:
        log.info("model.init_from: kept their initialisation: %s", _shorten(not_loaded))
    if plan.unused:
        log.info("model.init_from: in the file but not in this network: %s", _shorten(plan.unused))
    _warn_lbp_mismatch(source, net)
    return summary


def _warn_lbp_mismatch(source: InitSource, net: nn.Module) -> None:
    lbp = getattr(net, "lbp", None)
    theirs = (source.net_config or {}).get("lbp") or {}
    if lbp is None or not theirs.get("method"):
        return
    ours = {"method": lbp.method, "P": lbp.P, "R": lbp.R}
    theirs = {
        # older files name the circular LBP `default` (its scikit-image name): the same maps as `circle`
        "method": canonical_method(theirs.get("method")),
        "P": int(theirs.get("P", 8)),
        "R": float(theirs.get("R", 1.0)),
    }
    if ours != theirs:
        log.warning(
            "model.init_from: the file's LBP stream was trained on %s maps, this network computes %s",
            theirs,
            ours,
        )


def _shorten(keys: list[str], limit: int = 12) -> str:
    """Keys grouped by module prefix (``image_stream.features.*``), at most ``limit`` groups shown."""
    groups = Counter(".".join(k.split(".")[:2]) for k in keys)
    shown = [f"{g}.* ({n})" if n > 1 else g for g, n in list(groups.items())[:limit]]
    more = len(groups) - limit
    return ", ".join(shown) + (f", ... {more} more" if more > 0 else "")


def check_transfer_options(freeze_backbone_epochs: Any, backbone_lr_scale: Any) -> None:
    """One-line ValueError for a bad ``model.freeze_backbone_epochs`` or ``model.backbone_lr_scale``."""
    if (
        isinstance(freeze_backbone_epochs, bool)
        or not isinstance(freeze_backbone_epochs, int)
        or freeze_backbone_epochs < 0
    ):
        raise ValueError(f"model.freeze_backbone_epochs={freeze_backbone_epochs!r} must be an integer >= 0")
    if backbone_lr_scale is not None and (
        isinstance(backbone_lr_scale, bool)
        or not isinstance(backbone_lr_scale, int | float)
        or not backbone_lr_scale > 0
    ):
        raise ValueError(
            f"model.backbone_lr_scale={backbone_lr_scale!r} must be a number > 0 or null "
            "(model.freeze_backbone_epochs freezes the streams)"
        )
