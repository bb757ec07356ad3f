"""Where the Hydra configs live, their schemas and resolvers, and the validation that runs before any data
is loaded."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_attention.data.options import DataOptions
from fer_attention.errors import ConfigError
from fer_attention.models.options import SCHEMAS, LBPOptions
from fer_attention.runtime import RuntimeOptions
from fer_attention.task_options import COMMAND_SCHEMAS, TTAMode

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


def count_classes(class_names: Sequence[str] | None) -> int | None:
    """``${fer.num_classes:${data.class_names}}``: the number of class names, the one place it is counted
    (``None`` while the names are unset, which :func:`validate_config` reports)."""
    return None if class_names is None else len(class_names)


def register_resolvers() -> None:
    """OmegaConf resolvers the configs use: ``${fer.short_dirname:...}``, ``${fer.job_dirname:...}``,
    ``${fer.num_classes:...}``."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("fer.short_dirname", short_dirname, replace=True)
    OmegaConf.register_new_resolver("fer.job_dirname", job_dirname, replace=True)
    OmegaConf.register_new_resolver("fer.num_classes", count_classes, replace=True)


register_resolvers()


@dataclass
class TrainerOptions:
    """The schema of the ``trainer`` group: the arguments of ``lightning.pytorch.Trainer`` the configs set,
    typed as Lightning takes them (a union where it takes several kinds), so that a value of the wrong kind
    (``trainer.max_epochs=[1,2]``, ``trainer.max_epochs=true``) fails when the config is composed. The
    defaults of the last four are Lightning's: conf/trainer/ddp.yaml and debug=overfit set them."""

    _target_: str = "lightning.pytorch.Trainer"
    default_root_dir: str | None = None
    min_epochs: int | None = None
    max_epochs: int | None = None
    accelerator: str = "auto"
    # an int, "auto", or a list of device indices
    devices: Any = "auto"
    precision: int | str = "32-true"
    check_val_every_n_epoch: int | None = 1
    deterministic: bool | str | None = None
    gradient_clip_val: int | float | None = None
    log_every_n_steps: int | None = None
    num_sanity_val_steps: int | None = None
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    limit_test_batches: int | float | None = None
    fast_dev_run: bool | int = False
    enable_model_summary: bool | None = None
    num_nodes: int = 1
    strategy: str = "auto"
    sync_batchnorm: bool = False
    overfit_batches: int | float = 0.0


@dataclass
class LossOptions:
    """``model.loss``: label smoothing, and class weights (given, or counted from the training faces with
    ``class_weighted``)."""

    label_smoothing: float
    class_weighted: bool
    class_weights: list[float] | None


@dataclass
class ModelOptions:
    """The schema of the ``model`` group: the arguments of :class:`fer_attention.training.module.FERModule`
    the YAML sets. ``net`` is typed by the network's own schema (``schema/net``); the optimizer and the
    scheduler are partial objects for Hydra to build (any ``torch.optim`` class and its arguments)."""

    _target_: str
    class_names: list[str] | None
    net: Any
    optimizer: Any
    scheduler: Any
    loss: LossOptions
    compile: bool
    compile_cache_dir: str | None
    channels_last: bool
    test_time_augmentation: TTAMode | None
    init_from: str | None
    freeze_backbone_epochs: int
    backbone_lr_scale: float | None


@dataclass
class PretextOptions:
    """The schema of the ``pretext`` group (fer-pretrain, docs/transfer.md): the histogram and contrastive
    losses' weights, the histogram target's LBP variant and grid, the heads' widths, InfoNCE's temperature,
    the augmented view (albumentations transforms)."""

    name: str
    histogram_weight: float
    contrastive_weight: float
    target_lbp: LBPOptions
    grid: int
    head_hidden: int
    temperature: float
    projection_dim: int
    augment: Any


# the ConfigStore group that holds the schemas; a config group's YAML takes one in its defaults list
SCHEMA_GROUP = "schema"


def _top_level(kind: type) -> dict[str, Any]:
    """The typed nodes of ``kind``'s fields, for a config group that sets top-level keys (``# @package
    _global_``): a dataclass there would type the whole config's root."""
    from omegaconf import OmegaConf

    typed = OmegaConf.structured(kind)
    return {name: typed._get_node(name) for name in typed}


def register_schemas() -> None:
    """Store the schemas in Hydra's ConfigStore as ``schema/<name>``, each taken by the defaults list of the
    YAML it types: ``schema/data`` (conf/data/shared/loader.yaml), the network's (conf/model/fer_attention.yaml
    takes ``schema/net`` for ``model.net`` and types the ``lbp``, ``ablation`` and ``dilation`` groups),
    ``schema/trainer``, ``schema/pretext`` and ``schema/runtime`` (``threads`` and ``malloc``), and the
    commands' own top-level keys (:mod:`fer_attention.task_options`: ``schema/predict``, ``schema/eval``,
    ``schema/export``, ``schema/data_cli``)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    schemas = {
        **SCHEMAS,
        "data": DataOptions,
        "model": ModelOptions,
        "trainer": TrainerOptions,
        "pretext": PretextOptions,
    }
    top_level = {
        name: _top_level(kind) for name, kind in {"runtime": RuntimeOptions, **COMMAND_SCHEMAS}.items()
    }
    for name, schema in {**schemas, **top_level}.items():
        store.store(group=SCHEMA_GROUP, name=name, node=schema)


register_schemas()


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
    return OmegaConf.to_container(cfg.model.net, resolve=True, enum_to_str=True)


def _select(cfg, key: str, default=None):
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key, default=default)


def _unknown_schema_keys(node, path: str = "") -> Iterator[tuple[str, Any, str, list[str]]]:
    """``(key, value, parent key, the parent's keys)`` of every key that a node typed by a schema does not
    have. Hydra's ``+key=value`` adds keys past a schema on purpose; nothing here reads such a key."""
    from omegaconf import OmegaConf

    kind = OmegaConf.get_type(node)
    fields = [f.name for f in dataclasses.fields(kind)] if dataclasses.is_dataclass(kind) else None
    for name in node:
        key = f"{path}{name}"
        if fields is not None and name not in fields:
            shown = node[name] if not OmegaConf.is_interpolation(node, name) else "${...}"
            yield key, shown, path.rstrip("."), fields
        elif not (path == "" and name == "hydra") and not OmegaConf.is_interpolation(node, name):
            child = None if OmegaConf.is_missing(node, name) else node[name]
            if OmegaConf.is_dict(child):
                yield from _unknown_schema_keys(child, f"{key}.")


def check_schema_keys(cfg) -> None:
    """Raise :class:`ConfigError` (one line) for a key added (``+model.net.attention.fuse=add``) under a
    node that a schema types: its schema has no such key, so nothing would read it."""
    for key, value, parent, fields in _unknown_schema_keys(cfg):
        raise ConfigError(
            f"{key}={value}: {parent} has no key '{key.rsplit('.', 1)[-1]}' (its keys: {', '.join(fields)})"
        )


def source_key(cfg, key: str) -> str:
    """The key a user sets for ``key``: ``key`` itself or, where a node on its path is a plain interpolation
    of another key (``model.net.lbp: ${lbp}``), the key it takes its value from (``lbp.method`` for
    ``model.net.lbp.method``)."""
    from omegaconf import OmegaConf

    parts = key.split(".")
    for depth in range(len(parts)):
        parent = cfg if depth == 0 else OmegaConf.select(cfg, ".".join(parts[:depth]))
        name = parts[depth]
        if not OmegaConf.is_dict(parent) or name not in parent:
            return key
        if OmegaConf.is_interpolation(parent, name):
            raw = str(OmegaConf.to_container(parent, resolve=False)[name])
            inner = raw[2:-1]
            plain = raw.startswith("${") and raw.endswith("}") and not any(c in inner for c in "${}:")
            if plain and not inner.startswith("."):
                return source_key(cfg, ".".join([inner, *parts[depth + 1 :]]))
            return key
    return key


def validate_config(cfg) -> None:
    """Check the values a run depends on before any data is loaded or any model is built: what the schemas'
    types and choices cannot say (a value against another, a range, a file that must exist). Each rule is
    written once, beside what it guards (the network's options, the data's classes and folds, the runtime's
    settings), and reached from here.

    Raises :class:`ConfigError` with one line naming the key, the bad value and what is allowed.
    """
    from omegaconf import OmegaConf

    _check_data(cfg, needs_classes=_select(cfg, "model.net") is not None)
    ckpt_path = _select(cfg, "ckpt_path")
    if ckpt_path not in (None, "") and _select(cfg, "resume"):
        raise ConfigError(f"resume=true and ckpt_path={ckpt_path}: give one of them")
    if ckpt_path not in (None, "", "last") and not Path(str(ckpt_path)).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path} does not exist")
    if "malloc" in cfg or "threads" in cfg:  # the rules of RuntimeOptions
        malloc = _select(cfg, "malloc")
        try:
            RuntimeOptions(
                _select(cfg, "threads"), OmegaConf.to_container(malloc) if malloc is not None else {}
            )
        except ValueError as err:
            raise ConfigError(str(err)) from None
    if _select(cfg, "trainer.sync_batchnorm") and _select(cfg, "trainer.accelerator") == "cpu":
        raise ConfigError(
            "trainer.sync_batchnorm=true needs GPUs; set it to false with trainer.accelerator=cpu"
        )
    if _select(cfg, "model.net") is not None:
        _check_net(cfg)


def _check_data(cfg, needs_classes: bool) -> None:
    """The data's class names (required when a network is trained on them; fer-data lists what a folder
    has without them), its folds, root and image size."""
    # function-local: splits imports scikit-learn, which fer-report's config use does not need
    from fer_attention.data.records import check_classes
    from fer_attention.data.splits import check_folds

    if _select(cfg, "data") is None:
        return
    try:
        if needs_classes or _select(cfg, "data.class_names") is not None:
            check_classes(_select(cfg, "data.class_names"), dataset=_select(cfg, "data.name"))
        num_folds, fold = _select(cfg, "data.num_folds"), _select(cfg, "data.fold")
        if _select(cfg, "data.protocol") == "kfold" and num_folds is not None and fold is not None:
            check_folds(num_folds, fold)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    root = _select(cfg, "data.root")
    if root is not None and not Path(str(root)).exists():
        raise ConfigError(f"data.root={root} does not exist")
    image_size = _select(cfg, "data.image_size")
    if image_size is not None and image_size < 8:
        raise ConfigError(f"data.image_size={image_size!r} must be an integer >= 8")


def _check_net(cfg) -> None:
    """The network's rules (:func:`fer_attention.models.fer_attention_net.check_net`), each error naming the
    key that sets the option, and the class count against the class names."""
    from omegaconf import OmegaConf

    # function-local: the network imports torch, which config.py does not (fer-report imports it)
    from fer_attention.models.fer_attention_net import check_net

    net = OmegaConf.to_container(cfg.model.net, resolve=True, enum_to_str=True)
    names = _select(cfg, "model.class_names")
    if names is not None and net["num_classes"] != len(names):
        raise ConfigError(
            f"model.net.num_classes={net['num_classes']} but model.class_names has {len(names)} names: "
            "model.net.num_classes counts them, leave it unset"
        )
    try:
        check_net(net, lambda option: source_key(cfg, f"model.net.{option}"))
    except ValueError as err:
        raise ConfigError(str(err)) from None
