"""model.init_from (matching tensors, head re-initialisation, one-line errors), frozen / slower backbone,
and the transfer configs. Tiny widths, no data loaded unless a run is trained."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from fer_attention.config import validate_config
from fer_attention.errors import ConfigError
from fer_attention.training.builders import build_model
from fer_attention.training.task import train
from fer_attention.training.transfer import (
    apply_init_from,
    check_transfer_config,
    head_keys,
    read_init_source,
)

from .conftest import TINY

REPO = Path(__file__).resolve().parents[1]
HEAD = ("classifier.head.4.weight", "classifier.head.4.bias")


def net_for(make_cfg, overrides=(), subdir="net", seed=0):
    cfg = make_cfg([*TINY, *overrides], subdir=subdir)
    torch.manual_seed(seed)
    return cfg, build_model(cfg.model, cfg.data)


def save_checkpoint(model, path: Path) -> Path:
    """A checkpoint as fer-train writes it (what init_from reads: state_dict with net.*, hyper_parameters)."""
    state = {f"net.{k}": v.clone() for k, v in model.net.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": dict(model.hparams)}, path)
    return path


def snapshot(net) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_same_architecture_loads_every_tensor(make_cfg, tmp_path):
    _, source = net_for(make_cfg, subdir="a", seed=1)
    path = save_checkpoint(source, tmp_path / "a.ckpt")
    _, target = net_for(make_cfg, subdir="b", seed=2)
    summary = apply_init_from(target.net, path, target.class_names)
    src = source.net.state_dict()
    for key, value in target.net.state_dict().items():
        assert torch.equal(value, src[key]), key
    assert summary["loaded"] == len(src) and summary["head"] == "loaded (same classes)"
    assert summary["not_in_file"] == [] and summary["not_in_network"] == []


def test_init_from_loads_exactly_the_matching_tensors(make_cfg, tmp_path):
    # a plain VGG16 baseline (image stream + classifier) into the full network: the image stream and the
    # classifier's hidden layer come from the file; the LBP stream, fusion, attention and reconstruction
    # keep their own initialisation; the head is re-initialised (a bare state dict names no classes)
    _, source = net_for(make_cfg, ["ablation=vgg16"], subdir="vgg", seed=1)
    path = tmp_path / "vgg.pt"
    torch.save(source.net.state_dict(), path)
    _, target = net_for(make_cfg, subdir="full", seed=2)
    before = snapshot(target.net)
    summary = apply_init_from(target.net, path, target.class_names)
    src, after = source.net.state_dict(), target.net.state_dict()
    loaded = [k for k in after if k in src and k not in HEAD]
    assert loaded and summary["loaded"] == len(loaded)
    assert all(k.startswith(("image_stream.", "classifier.")) for k in loaded)
    for key, value in after.items():
        expected = src[key] if key in loaded else before[key]
        assert torch.equal(value, expected), key
    assert summary["loaded_by_module"]["image_stream"] == sum(k.startswith("image_stream.") for k in src)
    assert "does not record its classes" in summary["head"]
    assert any(k.startswith("lbp_stream.") for k in summary["not_in_file"])


def test_class_count_change_reinitialises_only_the_head(make_cfg, tmp_path):
    _, source = net_for(make_cfg, subdir="seven", seed=1)
    path = save_checkpoint(source, tmp_path / "seven.ckpt")
    three = ["data.class_names=[angry,happy,sad]"]
    cfg, target = net_for(make_cfg, three, subdir="three", seed=2)
    validate_config(cfg)
    check_transfer_config(cfg)  # no architecture error: only the head differs
    before = snapshot(target.net)
    summary = apply_init_from(target.net, path, target.class_names)
    assert head_keys(target.net) == HEAD
    src, after = source.net.state_dict(), target.net.state_dict()
    for key, value in after.items():
        if key in HEAD:
            assert torch.equal(value, before[key]), key  # fresh initialisation kept
        else:
            assert torch.equal(value, src[key]), key
    assert summary["loaded"] == len(after) - 2 and summary["head"].startswith("re-initialised (classes")


def test_same_classes_in_another_order_and_synonyms_keep_the_head(make_cfg, tmp_path):
    _, source = net_for(make_cfg, subdir="src", seed=1)  # angry, disgust, fear, happy, sad, surprise, neutral
    path = save_checkpoint(source, tmp_path / "src.ckpt")
    names = ["neutral", "happiness", "anger", "sadness", "surprise", "disgust", "fear"]
    _, target = net_for(make_cfg, [f"data.class_names=[{','.join(names)}]"], subdir="renamed", seed=2)
    summary = apply_init_from(target.net, path, target.class_names)
    order = [6, 3, 0, 4, 5, 1, 2]
    src = source.net.state_dict()
    for key in HEAD:
        assert torch.equal(target.net.state_dict()[key], src[key][order]), key
    assert "re-ordered by class name" in summary["head"]


def test_width_mismatch_is_one_line_before_any_data(make_cfg, tmp_path, monkeypatch):
    from fer_attention.training import task

    _, source = net_for(make_cfg, subdir="narrow", seed=1)  # width 0.125
    path = save_checkpoint(source, tmp_path / "narrow.ckpt")

    def no_data(*_a, **_k):
        raise AssertionError("data was loaded before init_from was checked")

    monkeypatch.setattr(task, "build_datamodule", no_data)
    cfg = make_cfg([*TINY, "model.net.backbone.width=0.25", f"model.init_from={path}"], subdir="wide")
    with pytest.raises(ConfigError) as err:
        train(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert message == (
        f"model.init_from={path}: image_stream.features.0.weight has shape (8, 1, 3, 3) in the file but "
        "(16, 1, 3, 3) in this network (another architecture, e.g. another model.net.backbone.width); "
        "nothing was trained"
    )


@pytest.mark.parametrize(
    "content,message",
    [
        (None, r"model.init_from=.*missing.ckpt: no such file$"),
        (b"not a checkpoint", r"model.init_from=.*bad.ckpt: not a readable PyTorch checkpoint"),
        ("list", r"model.init_from=.*bad.ckpt: not a fer-attention checkpoint or state dict \(a list\)"),
        ("other", r"model.init_from=.*bad.ckpt: no tensor name matches this network"),
    ],
    ids=["missing", "garbage", "not-a-dict", "other-network"],
)
def test_bad_init_file_is_one_line_naming_it(make_cfg, tmp_path, content, message):
    path = tmp_path / ("missing.ckpt" if content is None else "bad.ckpt")
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "list":
        torch.save([1, 2, 3], path)
    elif content == "other":
        torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    cfg = make_cfg([*TINY, f"model.init_from={path}"])
    validate_config(cfg)  # the config layer does not read the file: transfer does, before any data
    with pytest.raises(ConfigError, match=message) as err:
        check_transfer_config(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.freeze_backbone_epochs=-1", r"model.freeze_backbone_epochs=-1 must be an integer >= 0"),
        ("model.backbone_lr_scale=0", r"model.backbone_lr_scale=0.0 must be a number > 0 or null"),
        ("experiment=transfer", r"model.init_from is required by this experiment"),
    ],
)
def test_transfer_option_errors(make_cfg, override, message):
    cfg = make_cfg([*TINY, override])
    with pytest.raises(ConfigError, match=message):
        check_transfer_config(cfg)


def test_command_line_init_from_error_is_one_line(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    missing = tmp_path / "nope.ckpt"
    cmd = [sys.executable, "-m", "fer_attention.cli.train", f"model.init_from={missing}"]
    cmd.append(f"paths.log_dir={tmp_path}")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: model.init_from={missing}: no such file"]


class StreamWatch(pl.Callback):
    """Records, at the end of every training epoch, a stream weight, a stream BN running mean, a
    classifier weight and the optimiser's learning rates (class-level, for the test to read)."""

    records: list[dict] = []

    def __init__(self) -> None:
        StreamWatch.records = []

    def on_train_epoch_end(self, trainer, module) -> None:
        StreamWatch.records.append(
            {
                "conv": module.net.image_stream.features[0].weight.detach().clone(),
                "bn": module.net.lbp_stream.features[1].running_mean.clone(),
                "fc": module.net.classifier.head[1].weight.detach().clone(),
                "lrs": [g["lr"] for g in trainer.optimizers[0].param_groups],
                "max_lrs": [g.get("max_lr") for g in trainer.optimizers[0].param_groups],
            }
        )


def test_frozen_backbone_and_scaled_lr_in_a_run(make_cfg, tmp_path):
    _, source = net_for(make_cfg, subdir="src", seed=1)
    path = save_checkpoint(source, tmp_path / "src.ckpt")
    cfg = make_cfg(
        [
            *TINY,
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1",
            f"model.init_from={path}",
            "model.freeze_backbone_epochs=1",
            "model.backbone_lr_scale=0.1",
            "~callbacks.attention_maps",
            "+callbacks.watch._target_=tests.test_transfer.StreamWatch",
        ],
        subdir="run",
    )
    metrics = train(cfg)
    first, second = StreamWatch.records
    src = source.net.state_dict()
    # epoch 0: streams frozen (weights and batch-norm statistics as loaded), the classifier trains
    assert torch.equal(first["conv"], src["image_stream.features.0.weight"])
    assert torch.equal(first["bn"], src["lbp_stream.features.1.running_mean"])
    assert not torch.equal(first["fc"], src["classifier.head.1.weight"])
    # epoch 1: streams released
    assert not torch.equal(second["conv"], first["conv"])
    assert not torch.equal(second["bn"], first["bn"])
    # two parameter groups, the streams' at a tenth of the lr, also under the one-cycle schedule
    for rec in (first, second):
        rest, streams = rec["lrs"]
        assert streams == pytest.approx(0.1 * rest)
        assert rec["max_lrs"][1] == pytest.approx(0.1 * rec["max_lrs"][0])
    assert metrics["init_from"]["loaded"] == len(src) and metrics["init_from"]["path"] == str(path)


def test_pretext_checkpoint_is_refused_by_fer_eval_with_a_hint(tmp_path):
    from fer_attention.errors import CheckpointError
    from fer_attention.training.checkpoint import read_checkpoint

    path = tmp_path / "pretext.ckpt"
    torch.save(
        {"state_dict": {"net.x": torch.zeros(1)}, "hyper_parameters": {"net": {}, "pretext": {}}}, path
    )
    with pytest.raises(CheckpointError, match=r"pretext checkpoint .*model.init_from="):
        read_checkpoint(path)
    assert read_init_source(path).kind == "pretext"


@pytest.mark.parametrize("experiment", ["pretrain_fer2013", "transfer"])
def test_transfer_experiments_compose(make_cfg, experiment, tmp_path):
    overrides = [f"experiment={experiment}", "trainer.accelerator=cpu"]
    if experiment == "transfer":
        overrides.append("model.init_from=null")
    cfg = make_cfg(overrides, subdir=experiment)
    validate_config(cfg)
    check_transfer_config(cfg)
    assert cfg.model.net.backbone.width == 0.25
    # both are budget=cpu unchanged: pretraining is the FER2013 full row, scratch the CK+ full row
    assert (cfg.data.batch_size, cfg.model.optimizer.lr, cfg.trainer.precision) == (32, 0.003, "bf16-mixed")
    if experiment == "pretrain_fer2013":
        assert cfg.data.name == "fer2013" and cfg.trainer.max_epochs == 15
        assert cfg.task_name == "pretrain_fer2013"


def test_transfer_sweep_composes(make_cfg):
    cfg = make_cfg(["sweep=transfer", "experiment=transfer", "model.init_from=null"])
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN" and cfg.task_name == "transfer"
    assert cfg.hydra.sweeper.params["data.fold"] == "range(0,5)"


def lightning_checkpoint(model, path: Path, **hparams) -> Path:
    """A checkpoint file as Lightning writes one for ``model``, its recorded hyperparameters updated."""
    import lightning

    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(
        {
            "epoch": 0,
            "global_step": 0,
            "pytorch-lightning_version": lightning.__version__,
            "state_dict": state,
            "hyper_parameters": {**dict(model.hparams), **hparams},
            "loops": {},
            "callbacks": {},
            "optimizer_states": [],
            "lr_schedulers": [],
        },
        path,
    )
    return path


def test_without_a_schedule_each_group_trains_at_its_own_scale_of_the_lr():
    from omegaconf import OmegaConf

    from fer_attention.training.optim import configure_optimization

    head, stream = nn.Linear(2, 2), nn.Linear(2, 2)
    sgd = OmegaConf.create({"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.01})
    groups = [(list(head.parameters()), 1.0), (list(stream.parameters()), 0.1)]
    optimizer = configure_optimization(head, sgd, None, groups)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01, 0.001])
