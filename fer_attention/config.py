"""Where the Hydra configs live, and config validation that runs before any data is loaded."""

from __future__ import annotations

from pathlib import Path

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


def register_resolvers() -> None:
    """OmegaConf resolvers the configs use: ``${fer.short_dirname:...}``, ``${fer.job_dirname:...}``."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("fer.short_dirname", short_dirname, replace=True)
    OmegaConf.register_new_resolver("fer.job_dirname", job_dirname, replace=True)


register_resolvers()


# model.init_from placeholder of recipes that fine-tune (experiment=transfer): the run stops until it is set
INIT_REQUIRED = "required"


class ConfigError(ValueError):
    """A config value is invalid; the message is one line naming the key, the value and what is allowed."""


def config_dir() -> str:
    """Absolute path of the `conf/` tree: shipped inside the wheel, or the checkout's top-level `conf/`."""
    for candidate in (_PACKAGE_DIR / "conf", _PACKAGE_DIR.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"fer-attention configs not found next to {_PACKAGE_DIR}; reinstall the package")


def _select(cfg, key: str, default=None):
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key, default=default)


def validate_config(cfg) -> None:
    """Check the values a run depends on before any data is loaded or any model is built.

    Raises :class:`ConfigError` with one line naming the key, the bad value and what is allowed.
    """
    data_classes = _select(cfg, "data.class_names")
    num_classes = _select(cfg, "data.num_classes")
    if data_classes is not None and num_classes is not None and len(data_classes) != num_classes:
        raise ConfigError(
            f"data.num_classes={num_classes} but data.class_names has {len(data_classes)} names"
        )
    num_folds, fold = _select(cfg, "data.num_folds"), _select(cfg, "data.fold")
    if _select(cfg, "data.protocol") == "kfold" and num_folds is not None and fold is not None:
        if num_folds < 2:
            raise ConfigError(f"data.num_folds={num_folds} must be at least 2")
        if not 0 <= fold < num_folds:
            raise ConfigError(f"data.fold={fold} must be in 0..{num_folds - 1} (data.num_folds={num_folds})")
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
    weights = _select(cfg, "model.net.backbone.weights")
    if weights not in (None, "imagenet") and not Path(str(weights)).is_file():
        raise ConfigError(
            f"model.net.backbone.weights={weights} does not exist (null, imagenet or a state dict file)"
        )
    _check_transfer(cfg)
    for key in ("malloc.mmap_threshold_mb", "malloc.trim_threshold_mb"):
        value = _select(cfg, key)
        if value is not None and (not isinstance(value, int) or not 0 < value <= 4096):
            raise ConfigError(f"{key}={value!r} must be an integer in 1..4096 (MB) or null")
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
    from fer_attention.training.transfer import check_transfer_options

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
    from fer_attention.lbp import check_args as check_lbp_args
    from fer_attention.models.reconstruction import check_rates
    from fer_attention.models.vgg import ARCHS, NUM_STAGES, feature_size

    net_classes = _select(cfg, "model.net.num_classes")
    if num_classes is not None and net_classes is not None and net_classes != num_classes:
        raise ConfigError(
            f"model.net.num_classes={net_classes} does not match data.num_classes={num_classes}"
        )
    modules = _select(cfg, "model.net.modules") or {}
    lbp = _select(cfg, "model.net.lbp") or {}
    method = lbp.get("method")
    if modules.get("lbp", True) and method is not None:
        try:
            check_lbp_args(method, lbp.get("P", 8), lbp.get("R", 1.0))
        except ValueError as err:
            raise ConfigError(
                f"{err} (lbp=none for no LBP)" if "lbp.method" in str(err) else str(err)
            ) from None
    backbone = _select(cfg, "model.net.backbone") or {}
    arch = backbone.get("arch", "vgg16_bn")
    if arch not in ARCHS:
        raise ConfigError(f"model.net.backbone.arch='{arch}' is not one of {', '.join(ARCHS)}")
    last_stage = backbone.get("last_stage", 4)
    if not isinstance(last_stage, int) or not 1 <= last_stage <= NUM_STAGES:
        raise ConfigError(
            f"model.net.backbone.last_stage={last_stage!r} must be in 1..{NUM_STAGES} (4 = through conv4_3)"
        )
    width = backbone.get("width", 1.0)
    if not isinstance(width, int | float) or width <= 0:
        raise ConfigError(f"model.net.backbone.width={width!r} must be a number > 0")
    size = _select(cfg, "model.net.image_size") or image_size
    if size is not None:
        fsize = feature_size(size, last_stage)
        if fsize < 3:
            raise ConfigError(
                f"data.image_size={size} is too small for model.net.backbone.last_stage={last_stage}: "
                f"need image_size >= {3 * 2 ** (last_stage - 1)} or an earlier last_stage"
            )
        if modules.get("reconstruction", True):
            try:
                check_rates(list(_select(cfg, "model.net.reconstruction.rates") or []), fsize)
            except ValueError as err:
                raise ConfigError(str(err)) from None
