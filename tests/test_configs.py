"""Every option of every config group composes, validates and instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from fer_attention.config import config_dir, validate_config
from fer_attention.errors import ConfigError
from fer_attention.training.builders import build_callbacks, build_datamodule, build_loggers, build_model

from .conftest import TINY

CONF = Path(config_dir())


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_config_groups_exist():
    for group in (
        "data",
        "model",
        "trainer",
        "logger",
        "callbacks",
        "paths",
        "hydra",
        "experiment",
        "debug",
        "lbp",
        "dilation",
        "ablation",
        "augment",
    ):
        assert options(group), f"config group {group}/ is empty"


@pytest.mark.parametrize(
    "group,option",
    [(g, o) for g in ("model", "lbp", "dilation", "ablation", "augment", "experiment") for o in options(g)],
)
def test_model_side_options_compose_and_build(make_cfg, group, option):
    overrides = [f"{group}={option}", *TINY]
    if (group, option) in (("experiment", "pretrain_fer2013"), ("experiment", "shipped")):  # pin FER2013
        overrides = [o for o in overrides if not o.startswith(("data.source.", "data.num_folds"))]
    if (group, option) == ("experiment", "transfer"):  # needs model.init_from; null = its scratch row
        overrides.append("model.init_from=null")
    if group == "dilation":
        overrides.append("data.image_size=96")  # large rates need a feature map larger than the rate
    cfg = make_cfg(overrides)
    validate_config(cfg)
    model = build_model(cfg.model, cfg.data)
    size = cfg.data.image_size
    out = model(torch.rand(2, 1, size, size))
    assert out.shape == (2, len(cfg.data.class_names)) and cfg.model.net.num_classes == len(
        cfg.data.class_names
    )


@pytest.mark.parametrize("group", ["trainer", "logger", "callbacks", "debug", "data"])
def test_run_side_options_compose_and_instantiate(make_cfg, group):
    for option in options(group):
        overrides = [f"{group}={option}", *([] if group in ("debug",) else [])]
        if group == "trainer" and option in ("gpu", "ddp") and not torch.cuda.is_available():
            overrides.append("trainer.accelerator=cpu")
            overrides.append("trainer.precision=32-true")
        cfg = make_cfg(overrides, subdir=f"{group}-{option}")
        if group == "data" and cfg.data.class_names is None:  # data=folder, sequences: the user names them
            with pytest.raises(ConfigError, match=rf"^data.class_names must be set for dataset '{option}'"):
                validate_config(cfg)
            cfg = make_cfg([*overrides, "data.class_names=[a,b]"], subdir=f"{group}-{option}-named")
        validate_config(cfg)
        if group == "trainer" and option not in ("gpu", "ddp"):
            trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
            assert trainer.max_epochs == cfg.trainer.max_epochs
        if group == "logger":
            loggers = build_loggers(cfg.logger)
            assert len(loggers) == len([k for k, v in (cfg.logger or {}).items() if v and "_target_" in v])
        if group == "callbacks":
            callbacks = build_callbacks(cfg.callbacks)
            targets = [v["_target_"].rsplit(".", 1)[1] for v in (cfg.callbacks or {}).values() if v]
            assert sorted(type(c).__name__ for c in callbacks) == sorted(targets)
            selecting = [c for c in callbacks if isinstance(c, ModelCheckpoint) and c.monitor is not None]
            # checkpoints and early stopping select on validation accuracy, never on a test metric
            assert all((c.monitor, c.mode) == ("val/acc", "max") for c in selecting)
            assert all(c.monitor.startswith("val/") for c in callbacks if isinstance(c, EarlyStopping))
        if group == "data" and option == "synthetic":
            dm = build_datamodule(cfg.data)
            assert dm.num_classes == 7


def test_eval_config_composes(make_cfg):
    cfg = make_cfg(["ckpt_path=some.ckpt"], config_name="eval")
    assert cfg.ckpt_path == "some.ckpt"
    assert cfg.split == "test"
