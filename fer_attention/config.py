"""Where the Hydra configs live, and config validation that runs before any data is loaded."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fer_attention.errors import ConfigError
from fer_attention.runtime import check_malloc

_PACKAGE_DIR = Path(__file__).resolve().parent
MAX_DIRNAME = 120


def short_dirname(name: str, max_len: int = MAX_DIRNAME) -> str:
    """``name`` if it fits in ``max_len`` characters, else its start, ``--`` and a hash of the whole, so
    that multirun job dirs named after many overrides stay under the file system's 255-byte limit and
    remain distinct. (Each job's full overrides are in its ``.hydra/overrides.yaml``.)"""
    import hashlib

    name = str(name)
    if len(name) <= max_len:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: max_len - len(digest) - 2]}--{digest}"


# characters a job dir name keeps from override keys and values; everything else becomes "_"
_SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
KV_SEP, ITEM_SEP = "-", "+"


def _safe(text: str) -> str:
    out = "".join(c if c in _SAFE_CHARS else "_" for c in str(text))
    while "__" in out:
        out = out.replace("__", "_")
    return out.strip("_") or "_"


def job_dirname(overrides, exclude=()) -> str:
    """One safe directory level for a multirun job, from its overrides: ``key-value`` items joined by
    ``+`` (e.g. ``ablation-full+data.fold-3+seed-0``), leaving out the keys in ``exclude`` (an entry
    ending in ``.`` excludes every key under it), with no ``/``, ``=`` or ``,`` so that paths inside the
    job dir paste unquoted into any ``fer-*`` command. Long names are shortened by :func:`short_dirname`;
    ``.hydra/overrides.yaml`` keeps the full list."""
    exclude = [str(e) for e in (exclude or ())]
    items = []
    for override in overrides or ():
        key, _, value = str(override).partition("=")
        key = key.lstrip("+~")
        if any(key == e or (e.endswith(".") and key.startswith(e)) for e in exclude):
            continue
        items.append(f"{_safe(key)}{KV_SEP}{_safe(value)}" if value else _safe(key))
    return short_dirname(ITEM_SEP.join(sorted(items)) or "default")


def check_added_keys(config_name: str, overrides: Sequence[str], command: str) -> None:
    """Raise :class:`ConfigError` (one line) for an override that adds (``+key=`` / ``++key=``) a key
    under a top-level name that ``config_name``.yaml neither sets nor takes as a config group: the
    command would never read it, so accepting it would be silent (``fer-eval +model.x=...``)."""
    import yaml

    primary = yaml.safe_load((Path(config_dir()) / f"{config_name}.yaml").read_text()) or {}
    known = {k for k in primary if k != "defaults"}
    for entry in primary.get("defaults") or ():
        if isinstance(entry, Mapping):
            known.update(str(k).split("@")[0].split("/")[0].removeprefix("override ") for k in entry)
    for override in overrides:
        text = str(override)
        if not text.startswith("+"):
            continue
        key = text.lstrip("+").partition("=")[0]
        if key.split(".")[0].split("/")[0] not in known:
            raise ConfigError(
                f"{text}: {command} does not use '{key}', so it would be ignored; its keys: "
                f"{', '.join(sorted(known - {'hydra', '_self_'}))}"
            )


def register_resolvers() -> None:
    """OmegaConf resolvers the configs use: ``${fer.short_dirname:...}``, ``${fer.job_dirname:...}``."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("fer.short_dirname", short_dirname, replace=True)
    OmegaConf.register_new_resolver("fer.job_dirname", job_dirname, replace=True)


register_resolvers()


# model.init_from placeholder of recipes that fine-tune (experiment=transfer): the run stops until it is set
INIT_REQUIRED = "required"


def config_dir() -> str:
    """Absolute path of the `conf/` tree: shipped inside the wheel, or the checkout's top-level `conf/`."""
    for candidate in (_PACKAGE_DIR / "conf", _PACKAGE_DIR.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"fer-attention configs not found next to {_PACKAGE_DIR}; reinstall the package")


def net_config(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """``model.net`` of fer-train's config composed with ``overrides`` (``lbp=uniform``,
    ``model.net.backbone.width=0.25``, ...), resolved to plain data: what
    :meth:`fer_attention.models.FERAttentionNet.from_config` takes, with the YAML's defaults."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    if GlobalHydra.instance().is_initialized():  # inside a Hydra app or a compose session: its search path
        cfg = compose("train", overrides=list(overrides))
    else:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides))
    return OmegaConf.to_container(cfg.model.net, resolve=True)


def _select(cfg, key: str, default=None):
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key, default=default)


def _checked(check: Callable[..., Any], keys: Mapping[str, str], *args: Any) -> Any:
    """``check(*args)``, a rule of the module it guards; its one-line ValueError becomes a ConfigError in
    which each parameter name in ``keys`` is replaced by its full config key (``arch`` ->
    ``model.net.backbone.arch``)."""
    try:
        return check(*args)
    except ValueError as err:
        message = str(err)
        if keys:
            names = "|".join(re.escape(name) for name in sorted(keys, key=len, reverse=True))
            # a whole word only: not part of a longer name, a dotted key, a quoted value or a path
            pattern = rf"(?<![\w.'\"/-])({names})(?![\w'\"/-])"
            message = re.sub(pattern, lambda m: keys[m.group(1)], message)
        raise ConfigError(message) from None


def validate_config(cfg) -> None:
    """Check the values a run depends on before any data is loaded or any model is built.

    Raises :class:`ConfigError` with one line naming the key, the bad value and what is allowed.
    """
    # function-local: the data package imports numpy and scikit-learn, which fer-report's config use does not need
    from fer_attention.data.records import check_classes
    from fer_attention.data.splits import check_folds

    data_classes = _select(cfg, "data.class_names")
    num_classes = _select(cfg, "data.num_classes")
    if data_classes is not None and num_classes is not None:
        _checked(check_classes, {}, data_classes, num_classes)
    num_folds, fold = _select(cfg, "data.num_folds"), _select(cfg, "data.fold")
    if _select(cfg, "data.protocol") == "kfold" and num_folds is not None and fold is not None:
        _checked(check_folds, {}, num_folds, fold)
    root = _select(cfg, "data.root")
    if root is not None and not Path(str(root)).exists():
        raise ConfigError(f"data.root={root} does not exist")
    image_size = _select(cfg, "data.image_size")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 8):
        raise ConfigError(f"data.image_size={image_size!r} must be an integer >= 8")

    ckpt_path = _select(cfg, "ckpt_path")
    if ckpt_path not in (None, "") and _select(cfg, "resume"):
        raise ConfigError(f"resume=true and ckpt_path={ckpt_path}: give one of them")
    if ckpt_path not in (None, "", "last") and not Path(str(ckpt_path)).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path} does not exist")
    _check_transfer(cfg)
    _checked(
        check_malloc,
        {name: f"malloc.{name}" for name in ("mmap_threshold_mb", "trim_threshold_mb")},
        _select(cfg, "malloc.mmap_threshold_mb"),
        _select(cfg, "malloc.trim_threshold_mb"),
    )
    if _select(cfg, "trainer.sync_batchnorm") and _select(cfg, "trainer.accelerator") == "cpu":
        raise ConfigError(
            "trainer.sync_batchnorm=true needs GPUs; set it to false with trainer.accelerator=cpu"
        )

    net = _select(cfg, "model.net")
    if net is None:
        return
    _check_net(cfg, num_classes, image_size)
    if _select(cfg, "model.init_from") not in (None, ""):
        from fer_attention.training.transfer import check_init_from

        # after the network checks: builds the network (on the meta device) to compare shapes
        check_init_from(cfg)


def _check_transfer(cfg) -> None:
    """``model.init_from`` (given when an experiment requires it), ``model.freeze_backbone_epochs`` and
    ``model.backbone_lr_scale``."""
    from omegaconf import OmegaConf

    model = _select(cfg, "model")
    if model is None or not OmegaConf.is_config(model):
        return
    # experiment=transfer sets the placeholder `required` (a `???` would not replace the model group's null)
    if OmegaConf.is_missing(model, "init_from") or _select(cfg, "model.init_from") == INIT_REQUIRED:
        raise ConfigError(
            "model.init_from is required by this experiment: pass model.init_from=<checkpoint file> "
            "(fer-train's checkpoints/*.ckpt or fer-pretrain's pretext.ckpt), or model.init_from=null for scratch"
        )
    from fer_attention.training.transfer import check_transfer_options  # imports torch: local, as below

    try:
        check_transfer_options(
            _select(cfg, "model.freeze_backbone_epochs", 0) or 0, _select(cfg, "model.backbone_lr_scale")
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None
    init_from = _select(cfg, "model.init_from")
    if init_from not in (None, "") and not Path(str(init_from)).is_file():
        raise ConfigError(f"model.init_from={init_from}: no such file")


def _check_net(cfg, num_classes, image_size) -> None:
    """The network's rules, each from the module it guards, with the full config keys in the message."""
    # function-local: these modules import torch, which config.py does not (fer-report imports it)
    from fer_attention.lbp import check_args as check_lbp_args
    from fer_attention.models.attention import check_fusion, check_mode
    from fer_attention.models.classifier import check_classifier
    from fer_attention.models.reconstruction import check_feature_size, check_rates
    from fer_attention.models.vgg import check_backbone

    net_classes = _select(cfg, "model.net.num_classes")
    if num_classes is not None and net_classes is not None and net_classes != num_classes:
        raise ConfigError(
            f"model.net.num_classes={net_classes} does not match data.num_classes={num_classes}"
        )
    method = _select(cfg, "model.net.lbp.method")
    if _select(cfg, "model.net.modules.lbp") and method is not None:
        try:
            check_lbp_args(method, _select(cfg, "model.net.lbp.P"), _select(cfg, "model.net.lbp.R"))
        except ValueError as err:
            # the LBP layer names its arguments lbp.method, lbp.P and lbp.R: the keys of the lbp group
            message = str(err)
            raise ConfigError(
                f"{message} (lbp=none for no LBP)" if "lbp.method" in message else message
            ) from None
    for name, check in (("fusion", check_fusion), ("mode", check_mode)):
        key = f"model.net.attention.{name}"
        _checked(check, {name: key}, _select(cfg, key))
    classifier = {name: f"model.net.classifier.{name}" for name in ("pool", "dropout")}
    _checked(check_classifier, classifier, *(_select(cfg, key) for key in classifier.values()))
    backbone = {name: f"model.net.backbone.{name}" for name in ("arch", "last_stage", "width", "weights")}
    last_stage = _select(cfg, "model.net.backbone.last_stage")
    _checked(check_backbone, backbone, *(_select(cfg, key) for key in backbone.values()))
    size = _select(cfg, "model.net.image_size") or image_size
    if size is None:
        return
    sizes = {"image_size": "data.image_size", "last_stage": backbone["last_stage"]}
    fsize = _checked(check_feature_size, sizes, size, last_stage)
    if _select(cfg, "model.net.modules.reconstruction"):
        rates = list(_select(cfg, "model.net.reconstruction.rates") or [])
        _checked(check_rates, {"rates": "dilation.rates", **sizes}, rates, fsize)
