"""fer-pretrain: the LBP pretexts learn on synthetic faces, the checkpoint loads through model.init_from,
labels are ignored, and bad input folders stop with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fer_attention.data.augment import build_augmentation
from fer_attention.data.records import FaceArrays
from fer_attention.data.synthetic import render_synthetic_faces
from fer_attention.errors import DataError
from fer_attention.training.builders import build_model, to_dict
from fer_attention.training.pretext.data import PretextViews, select_faces
from fer_attention.training.pretext.losses import lbp_histograms
from fer_attention.training.pretext.module import PretextModule
from fer_attention.training.pretext.task import pretrain
from fer_attention.training.transfer import apply_init_from

from . import data_fixtures as fx
from .conftest import TINY

REPO = Path(__file__).resolve().parents[1]
PRETRAIN_TINY = [
    "model.net.backbone.width=0.125",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "~callbacks.progress_bar",
]


def test_lbp_histograms_are_per_cell_distributions():
    faces = torch.rand(2, 1, 48, 48)
    hist = lbp_histograms(faces, "uniform", 8, 1.0, grid=3)
    assert hist.shape == (2, 10, 3, 3)
    assert torch.allclose(hist.sum(dim=1), torch.ones(2, 3, 3))
    flat = lbp_histograms(torch.full((1, 1, 48, 48), 0.5), "uniform", 8, 1.0, grid=3)
    # a flat face: every interior pixel has all neighbours >= centre, uniform code P = 8
    assert flat[0, 8, 1, 1] == 1.0


@pytest.fixture
def one_thread():
    """Ten steps of tiny ops: one intra-op thread is as fast, and immune to a busy machine's scheduling."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("pretext", ["lbp_histogram", "lbp_contrastive"])
def test_pretext_loss_falls_on_synthetic_faces(make_cfg, pretext, one_thread):
    cfg = make_cfg([f"pretext={pretext}", *PRETRAIN_TINY], config_name="pretrain", subdir=pretext)
    torch.manual_seed(0)
    module = PretextModule(
        net=to_dict(cfg.model.net), optimizer=to_dict(cfg.model.optimizer), pretext=to_dict(cfg.pretext)
    )
    faces = render_synthetic_faces(num_subjects=3, frames_per_sequence=1, seed=3)
    views = PretextViews(
        faces.images[:16], build_augmentation(to_dict(cfg.pretext.augment)), module.views, fixed_seed=0
    )
    batch = torch.stack([views[i] for i in range(len(views))])
    assert batch.shape == (16, 1 + module.views, 1, 48, 48)
    optimizer = torch.optim.Adam(module.parameters(), lr=2e-3)
    losses = []
    for _ in range(10):
        loss = module.losses(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    # InfoNCE first rises for a step or two (random projections), then falls steadily
    assert np.mean(losses[-3:]) < 0.75 * losses[0], losses


def test_pretrain_writes_a_checkpoint_that_init_from_loads(make_cfg):
    cfg = make_cfg(
        [
            "data=synthetic",
            "data.source.num_subjects=8",
            "data.source.frames_per_sequence=1",
            "data.batch_size=16",
            "trainer.limit_train_batches=2",
            "pretext=lbp_histogram",
            *PRETRAIN_TINY,
        ],
        config_name="pretrain",
        subdir="pretrain",
    )
    metrics = pretrain(cfg)
    ckpt = Path(metrics["pretext_ckpt"])
    assert ckpt.name == "pretext.ckpt" and ckpt.is_file()
    assert metrics["faces"]["train"] + metrics["faces"]["val"] == 8 * 7
    assert metrics["train/hist_kl"] > 0 and "val/hist_kl_constant" in metrics
    assert (Path(metrics["run_dir"]) / "metrics.json").is_file()
    exported = {k[4:]: v for k, v in torch.load(ckpt, weights_only=True)["state_dict"].items()}
    assert not any(k.startswith("classifier.") for k in exported)
    # fine-tune side: the same architecture with the 7 expression classes
    tcfg = make_cfg(TINY, subdir="finetune")
    model = build_model(tcfg.model, tcfg.data)
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    summary = apply_init_from(model.net, ckpt, model.class_names)
    assert summary["kind"] == "pretext" and summary["head"] == "not in the file"
    for key, value in model.net.state_dict().items():
        expected = exported.get(key, before[key])
        assert torch.equal(value, expected), key
    assert summary["loaded"] == len(exported)
    assert set(summary["loaded_by_module"]) == {
        "image_stream",
        "lbp_stream",
        "fusion",
        "attention",
        "reconstruction",
    }


def test_labelled_dataset_contributes_its_train_split_only():
    splits = np.array(["train"] * 6 + ["val"] * 2 + ["test"] * 2)
    faces = FaceArrays(
        images=np.zeros((10, 8, 8), np.uint8),
        labels=np.arange(10) % 3,
        subjects=np.array([f"s{i}" for i in range(10)]),
        class_names=("a", "b", "c"),
        splits=splits,
    )
    train, val = select_faces(faces, ["train"], 0.1, seed=0)
    assert train.tolist() == list(range(6)) and val.tolist() == [6, 7]
    no_split = FaceArrays(
        images=np.zeros((20, 8, 8), np.uint8),
        labels=np.zeros(20, np.int64),
        subjects=np.array([f"s{i // 2}" for i in range(20)]),
        class_names=("face",),
    )
    train, val = select_faces(no_split, ["train"], 0.2, seed=0)
    assert len(train) + len(val) == 20 and len(val) == 4  # 2 of 10 subjects, whole subjects
    assert not set(no_split.subjects[train]) & set(no_split.subjects[val])


def _folder(root: Path, good: int, bad: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(good):
        fx.save(root / "nested" / f"face{i}.png", rng.integers(0, 255, (40, 40), dtype=np.uint8))
    for i in range(bad):
        (root / f"broken{i}.png").parent.mkdir(parents=True, exist_ok=True)
        (root / f"broken{i}.png").write_bytes(b"not an image")
    (root / "notes.txt").write_text("ignored")
    return root


def _pretrain_cfg(make_cfg, root: Path, *extra: str):
    return make_cfg(
        [f"data.root={root}", "data.progress=false", *PRETRAIN_TINY, *extra],
        config_name="pretrain",
        subdir=f"run-{root.name}",
    )


def test_unreadable_folder_is_one_line_naming_it(make_cfg, tmp_path):
    root = _folder(tmp_path / "allbad", good=0, bad=2)
    with pytest.raises(DataError) as err:
        pretrain(_pretrain_cfg(make_cfg, root, "data.on_bad_file=skip"))
    message = str(err.value)
    assert message.startswith(f"{root}: no readable images") and "\n" not in message
    with pytest.raises(DataError, match=r"broken0.png: cannot decode image"):
        pretrain(_pretrain_cfg(make_cfg, root))  # data.on_bad_file=error: the first bad file


def test_bad_images_follow_on_bad_file(make_cfg, tmp_path):
    from fer_attention.training.pretext.task import _load_faces

    root = _folder(tmp_path / "mixed", good=3, bad=1)
    cfg = _pretrain_cfg(make_cfg, root, "data.on_bad_file=skip")
    faces = _load_faces(to_dict(cfg.data))
    assert len(faces) == 3 and len(faces.skipped) == 1 and faces.skipped[0][0].endswith("broken0.png")
    with pytest.raises(DataError, match=r"broken0.png: cannot decode image"):
        _load_faces(to_dict(_pretrain_cfg(make_cfg, root).data))


def test_command_line_empty_folder_is_one_error_line(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    (root / "readme.txt").write_text("no faces here")
    env = {**os.environ, "WANDB_MODE": "offline"}
    cmd = [
        sys.executable,
        "-m",
        "fer_attention.cli.pretrain",
        f"data.root={root}",
        f"paths.log_dir={tmp_path}",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {root}: no images found"), proc.stderr


def test_contrastive_pretext_needs_the_lbp_stream(make_cfg):
    from fer_attention.errors import ConfigError
    from fer_attention.training.pretext.task import check_pretext

    cfg = make_cfg(["pretext=lbp_contrastive", "ablation=no_lbp"], config_name="pretrain")
    with pytest.raises(ConfigError, match=r"needs the LBP stream"):
        check_pretext(cfg)


def test_pretrain_callbacks_are_train_callback_files_with_the_pretext_summary(make_cfg):
    train = make_cfg([], subdir="callbacks-train")
    pre = make_cfg([], config_name="pretrain", subdir="callbacks-pretrain")
    assert list(pre.callbacks) == ["last_checkpoint", "lr_monitor", "progress_bar", "epoch_summary"]
    for name in ("last_checkpoint", "lr_monitor", "progress_bar"):
        assert OmegaConf.to_container(pre.callbacks[name]) == OmegaConf.to_container(train.callbacks[name])
    assert pre.callbacks.epoch_summary._target_ == train.callbacks.epoch_summary._target_
    assert "val/hist_kl_constant" in pre.callbacks.epoch_summary["keys"]
    assert not make_cfg(["callbacks=none"], config_name="pretrain", subdir="callbacks-none").callbacks
