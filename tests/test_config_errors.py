"""Every bad config value stops the run before any data is loaded, with one line naming the key, the
value and what is allowed; the command line prints that line and exits 1, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fer_attention.errors import ConfigError
from fer_attention.training.task import train

from .conftest import TINY

REPO = Path(__file__).resolve().parents[1]

CASES = [
    (["lbp.P=0"], r"lbp.P=0"),
    (["lbp.R=0"], r"lbp.R=0"),
    (["lbp.method=default", "lbp.P=40"], r"lbp.P=40 must be <= 31 for method 'circle'"),  # the old name
    (["dilation.rates=[2,4,8]"], r"rate 8 needs a feature map larger than 8x8, but the backbone gives 6x6"),
    (["dilation.rates=[0,1,1]"], r"dilation.rates"),
    (["dilation.rates=[]"], r"dilation.rates=\[\] is empty"),
    (["data.image_size=16"], r"data.image_size=16 is too small for model.net.backbone.last_stage=4"),
    (
        ["model.net.backbone.last_stage=5", "data.image_size=24"],
        r"data.image_size=24 is too small for model.net.backbone.last_stage=5: features would be 1x1; "
        r"need data.image_size >= 48 or an earlier model.net.backbone.last_stage",
    ),
    (["data.fold=5"], r"data.fold=5 must be in 0..2 \(data.num_folds=3\)"),
    (["data.num_folds=1", "data.fold=0"], r"data.num_folds=1 must be at least 2"),
    (["model.net.num_classes=6"], r"model.net.num_classes=6 but model.class_names has 7 names"),
    (
        ["lbp=none", "ablation.lbp=true"],
        r"^ablation.lbp=true needs LBP options but lbp=null: choose a variant \(lbp=circle, ...\) or switch "
        r"the stream off with ablation.lbp=false$",
    ),
    (["model.net.classifier.dropout=1.0"], r"model.net.classifier.dropout=1.0 must be in \[0, 1\)"),
    (["data.root=/no/such/dir"], r"data.root=/no/such/dir does not exist"),
    (["ckpt_path=/no/such.ckpt"], r"ckpt_path=/no/such.ckpt does not exist"),
    (["resume=true", "ckpt_path=last"], r"resume=true and ckpt_path=last: give one of them"),
    (["model.net.backbone.weights=/no/vgg.pth"], r"model.net.backbone.weights=/no/vgg.pth does not exist"),
    (["model.net.backbone.last_stage=7"], r"model.net.backbone.last_stage=7 must be in 1..5"),
    (["model.net.backbone.width=0"], r"model.net.backbone.width=0.0 must be a number > 0"),
    (
        ["model.net.backbone.weights=imagenet"],
        r"model.net.backbone.weights='imagenet' needs model.net.backbone.width=1.0, got 0.125",
    ),
    (
        ["malloc.mmap_threshold_mb=0"],
        r"malloc.mmap_threshold_mb=0 must be an integer in 1..4096 \(MB\) or null",
    ),
    (["malloc.trim_threshold_mb=4097"], r"malloc.trim_threshold_mb=4097 must be an integer in 1..4096"),
    (["threads=0"], r"^threads=0 must be a positive integer or null$"),
    (
        ["trainer=ddp", "trainer.accelerator=cpu", "trainer.sync_batchnorm=true"],
        r"sync_batchnorm=true needs GPUs",
    ),
]


@pytest.mark.parametrize("overrides,message", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_config_value_names_key_value_and_allowed(make_cfg, overrides, message, monkeypatch):
    from fer_attention.training import task

    def no_data(*_a, **_k):
        raise AssertionError("data was loaded before the config was validated")

    monkeypatch.setattr(task, "build_datamodule", no_data)
    cfg = make_cfg([*TINY, *overrides])
    with pytest.raises(ConfigError, match=message) as err:
        train(cfg)
    assert "\n" not in str(err.value)


def test_command_line_prints_one_error_line_and_exits_1(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "fer_attention.cli.train", "data.fold=9", f"paths.log_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: data.fold=9 must be in 0..4 (data.num_folds=5)"]


def test_a_folder_dataset_needs_only_its_class_names(make_cfg, tmp_path, monkeypatch):
    """data=folder takes the class names alone: without them, one line asks for them before any data."""
    from fer_attention.training import task

    monkeypatch.setattr(task, "build_datamodule", lambda *_a, **_k: pytest.fail("data was loaded"))
    overrides = ["data=folder", f"data.root={tmp_path}", "model.net.backbone.width=0.125"]
    with pytest.raises(ConfigError) as err:
        train(make_cfg(overrides))
    assert str(err.value) == (
        "data.class_names must be set for dataset 'folder' (e.g. 'data.class_names=[angry,happy,sad]')"
    )
    cfg = make_cfg([*overrides, "data.class_names=[angry,happy,sad]"], subdir="named")
    assert cfg.model.net.num_classes == 3 and "num_classes" not in cfg.data


def run_fer_train(monkeypatch, capsys, tmp_path, overrides: list[str]) -> tuple[int, list[str]]:
    """``fer-train <overrides>`` in this process, as the command line runs it: (exit code, stderr lines)."""
    from hydra.core.global_hydra import GlobalHydra

    from fer_attention.cli import train as cli

    monkeypatch.setattr(sys, "argv", ["fer-train", *overrides, f"paths.log_dir={tmp_path}"])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    GlobalHydra.instance().clear()
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.main()
    finally:
        GlobalHydra.instance().clear()
    return exit_info.value.code, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ["model.net.attention.fuse=add"],
            "Could not override 'model.net.attention.fuse': Key 'fuse' not in 'AttentionOptions'; its keys: "
            "fusion, mode, mask_channels",
        ),
        (
            ["model.net.backbone.width=wide"],
            "Error merging override model.net.backbone.width=wide: Value 'wide' of type 'str' could not be "
            "converted to Float",
        ),
        (
            ["data.num_classes=3"],
            "Could not override 'data.num_classes': Key 'num_classes' not in 'DataOptions'",
        ),
        (["lbp=none", "lbp.method=circle"], "Could not override 'lbp.method': Key 'method' is not in struct"),
        (
            ["lbp.P=eight"],
            "Error merging override lbp.P=eight: Value 'eight' of type 'str' could not be converted",
        ),
        # the choices are Enums: a value not among them names the key and the values allowed
        (
            ["model.net.attention.fusion=bogus"],
            "Error merging override model.net.attention.fusion=bogus: Invalid value 'bogus', expected one of "
            "[concat, add]",
        ),
        (
            ["model.net.attention.mode=soft"],
            "Error merging override model.net.attention.mode=soft: Invalid value 'soft', expected one of "
            "[residual, plain]",
        ),
        (
            ["model.net.classifier.pool=max"],
            "Error merging override model.net.classifier.pool=max: Invalid value 'max', expected one of "
            "[avg, flatten]",
        ),
        (
            ["model.net.backbone.arch=resnet"],
            "Error merging override model.net.backbone.arch=resnet: Invalid value 'resnet', expected one of "
            "[vgg16, vgg16_bn]",
        ),
        (
            ["lbp.method=foo"],
            "Error merging override lbp.method=foo: Invalid value 'foo', expected one of [basic, circle, ror, "
            "uniform, nri_uniform, var, default]",
        ),
        (
            ["data.protocol=fold"],
            "Error merging override data.protocol=fold: Invalid value 'fold', expected one of [fixed, kfold, auto]",
        ),
        (
            ["data.face_crop=mtcnn"],
            "Error merging override data.face_crop=mtcnn: Invalid value 'mtcnn', expected one of "
            "[auto, none, haar, box]",
        ),
        (
            ["data.on_bad_file=ignore"],
            "Error merging override data.on_bad_file=ignore: Invalid value 'ignore', expected one of [error, skip]",
        ),
        (
            ["data.sampler=balanced"],
            "Error merging override data.sampler=balanced: Invalid value 'balanced', expected one of [weighted]",
        ),
        # runtime and trainer have schemas too
        (
            ["malloc.mmap_threshold_mb=lots"],
            "Error merging override malloc.mmap_threshold_mb=lots: Value 'lots' of type 'str' could not be "
            "converted to Integer",
        ),
        (
            ["trainer.max_epochs=[1,2]"],
            "Error merging override trainer.max_epochs=[1,2]: Value '[1, 2]' of type 'list' could not be "
            "converted to Integer",
        ),
        (
            ["trainer.max_epochs=true"],
            "Error merging override trainer.max_epochs=true: Value 'True' of type 'bool' could not be "
            "converted to Integer",
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_an_unknown_key_or_a_wrong_type_fails_at_composition_in_one_line(
    monkeypatch, capsys, tmp_path, overrides, line
):
    """The schemas reject these when Hydra composes the config, before anything runs: one ``error:`` line
    naming the full key, no traceback, exit 1."""
    code, stderr = run_fer_train(monkeypatch, capsys, tmp_path, [*overrides, "data.fold=9"])
    assert code == 1
    errors = [text for text in stderr if text.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {line}"), stderr
    assert not any("Traceback" in text or "HYDRA_FULL_ERROR" in text for text in stderr), stderr


def test_a_key_added_past_a_schema_stops_the_command_before_its_task(make_cfg, capsys):
    """Hydra's ``+key=value`` adds a key even where a schema has none; the command stops on it in one line
    before its task runs."""
    from fer_attention.cli.common import run_task

    cfg = make_cfg([*TINY, "+model.net.attention.fuse=add"])
    with pytest.raises(SystemExit) as exit_info:
        run_task(lambda _cfg: pytest.fail("the task ran"), cfg)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: model.net.attention.fuse=add: model.net.attention has no key 'fuse' (its keys: fusion, mode, "
        "mask_channels)"
    ]


def test_imagenet_weights_offline_is_one_clear_line(monkeypatch):
    from urllib.error import URLError

    from torchvision.models import vgg as tv_vgg

    from fer_attention.models import vgg

    def offline(*_a, **_k):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_vgg, "vgg16_bn", offline)
    with pytest.raises(ConfigError, match=r"weights=imagenet: could not load torchvision's vgg16_bn") as err:
        vgg._imagenet_state_dict("vgg16_bn")
    assert "pass a state dict file path" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("overrides,message", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_every_key_an_error_names_is_a_real_key_to_paste_back(make_cfg, overrides, message):
    """``key=value`` in an error line must name a key of the composed config, so that the user can
    paste it back on the command line."""
    import re

    from omegaconf import OmegaConf

    cfg = make_cfg([*TINY, *overrides])
    with pytest.raises(ConfigError) as err:
        train(cfg)
    keys = re.findall(r"(?:^|[\s(])([a-z_][a-z_0-9]*(?:\.[A-Za-z_0-9]+)*)=", str(err.value))
    assert keys, str(err.value)
    for key in keys:
        assert OmegaConf.select(cfg, key, default="<missing>") != "<missing>", (key, str(err.value))


@pytest.mark.parametrize(
    ("config_name", "override", "command"),
    [
        ("eval", "+model.test_time_augmentation=tencrop", "fer-eval"),
        ("eval", "++lbp.method=ror", "fer-eval"),
        ("train", "+max_epochs=3", "fer-train"),
        ("predict", "+trainer.precision=bf16-mixed", "fer-predict"),
    ],
)
def test_an_added_key_the_command_never_reads_fails_naming_it(config_name, override, command):
    from fer_attention.config import check_added_keys

    key = override.lstrip("+").partition("=")[0]
    with pytest.raises(ConfigError) as err:
        check_added_keys(config_name, ["data=synthetic", override], command)
    message = str(err.value)
    assert message.startswith(
        f"{override}: {command} does not use '{key}', so it would be ignored; its keys: "
    )
    assert len(message.splitlines()) == 1


def test_added_keys_under_groups_the_command_composes_are_accepted():
    from fer_attention.config import check_added_keys

    check_added_keys("train", ["+callbacks.nan._target_=x.Y", "+trainer.limit_val_batches=2"], "fer-train")
    check_added_keys("eval", ["+trainer.limit_test_batches=2", "test_time_augmentation=tencrop"], "fer-eval")
