"""What the benchmark reads from the project's conf/ tree, so that a change to the YAML changes what is
timed: the network (`model.net` as fer-train composes it), the ablation options (conf/ablation/*.yaml),
the training augmentation (conf/augment/), the fast-path switches (conf/model/fer_attention.yaml), the
malloc thresholds (conf/train.yaml) and the int8 settings of `fer-export` (conf/export.yaml)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

from omegaconf import OmegaConf

from fer_attention.config import config_dir

# the sweep of the paper's module table: its order is the order of the training-step rows
MODULES_SWEEP = Path("sweep") / "ablation_modules.yaml"
# the networks are timed with the synthetic faces' seven classes
NUM_CLASSES = 7


def _root(conf_dir: str | Path | None) -> Path:
    return Path(conf_dir if conf_dir is not None else config_dir())


def _load(path: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(path)) or {}


def ablations(conf_dir: str | Path | None = None) -> dict[str, dict]:
    """Every option of the `ablation` group (one per conf/ablation/*.yaml), in the order of the paper's
    module sweep (conf/sweep/ablation_modules.yaml), then any other option by name."""
    root = _root(conf_dir)
    found = {path.stem: _load(path) for path in sorted((root / "ablation").glob("*.yaml"))}
    order: list[str] = []
    if (root / MODULES_SWEEP).is_file():
        swept = OmegaConf.select(OmegaConf.load(root / MODULES_SWEEP), "hydra.sweeper.params.ablation")
        order = [name.strip() for name in str(swept or "").split(",")]
    names = [n for n in order if n in found] + [n for n in found if n not in order]
    return {name: found[name] for name in names}


def net_config(ablation: str, size: int, width: float, conf_dir: str | Path | None = None) -> dict:
    """``model.net`` of fer-train's config (conf/train.yaml and its default groups) with
    ``ablation=<ablation>``, ``size`` x ``size`` faces, VGG16 width ``width`` and NUM_CLASSES classes,
    resolved to plain data: the keyword arguments of FERAttentionNet (and its ``_target_``)."""
    return copy.deepcopy(_net_config(ablation, int(size), float(width), str(_root(conf_dir))))


@functools.lru_cache(maxsize=64)
def _net_config(ablation: str, size: int, width: float, root: str) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [
        f"ablation={ablation}",
        f"model.net.image_size={size}",
        f"model.net.backbone.width={width}",
        f"model.net.num_classes={NUM_CLASSES}",
    ]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=root, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return OmegaConf.to_container(cfg.model.net, resolve=True)


def train_augmentation(option: str = "default", conf_dir: str | Path | None = None) -> list[dict]:
    """The training transforms of `augment=<option>` (its `train` list, for ``build_augmentation``)."""
    return list(_load(_root(conf_dir) / "augment" / f"{option}.yaml").get("train") or [])


def configured_defaults(conf_dir: str | Path | None = None) -> dict:
    """The fast-path switches as conf/ ships them (what `fer-train` runs without overrides)."""
    model = OmegaConf.load(_root(conf_dir) / "model" / "fer_attention.yaml")
    return {
        "channels_last": bool(model.get("channels_last", False)),
        "compile": bool(model.get("compile", False)),
    }


def configured_malloc(conf_dir: str | Path | None = None) -> dict:
    """The malloc thresholds conf/runtime/default.yaml ships (what `fer-train` applies at start)."""
    return dict(_load(_root(conf_dir) / "runtime" / "default.yaml").get("malloc") or {})


def configured_int8(conf_dir: str | Path | None = None) -> dict:
    """The int8 settings conf/export.yaml ships (what `fer-export quantize=int8` uses without overrides)."""
    export = _load(_root(conf_dir) / "export.yaml")
    return {key: export[key] for key in ("activations", "per_channel", "calib_method")}
