"""End-to-end training, evaluation, determinism and resuming on the synthetic faces."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fer_attention.errors import CheckpointError, ConfigError
from fer_attention.runs import read_predictions
from fer_attention.training.task import evaluate, train

from .conftest import TINY, composition_line

METRIC_KEYS = ("val/acc_best", "test/acc", "test/f1_macro", "test/loss", "test/confusion_matrix")


def read_metrics(run_dir) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def test_fast_dev_run_writes_metrics(make_cfg):
    cfg = make_cfg([*TINY, "debug=fdr"])
    metrics = train(cfg)
    assert set(METRIC_KEYS) <= set(metrics)
    written = read_metrics(cfg.paths.output_dir)
    assert written["class_names"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert json.loads((Path(cfg.paths.output_dir) / "status.json").read_text())["state"] == "finished"


def test_metrics_json_contents_and_best_checkpoint(make_cfg):
    cfg = make_cfg([*TINY, "trainer.max_epochs=2", "seed=0"])
    metrics = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    written = read_metrics(run_dir)
    for key in (*METRIC_KEYS, "class_names", "best_ckpt", "overrides", "seconds"):
        assert key in written, key
    cm = written["test/confusion_matrix"]
    assert len(cm) == 7 and all(len(row) == 7 for row in cm)
    n_test = written["splits"]["test"]["faces"]
    assert sum(map(sum, cm)) == n_test
    # accuracy from the confusion matrix equals the logged test accuracy
    assert sum(cm[i][i] for i in range(7)) / n_test == pytest.approx(written["test/acc"], abs=1e-6)
    # and macro F1 is the mean of the per-class F1 (2 TP / (2 TP + FP + FN)) over the classes that occur
    f1 = []
    for k in range(7):
        tp, fp, fn = cm[k][k], sum(row[k] for row in cm) - cm[k][k], sum(cm[k]) - cm[k][k]
        if tp + fp + fn:
            f1.append(2 * tp / (2 * tp + fp + fn))
    assert sum(f1) / len(f1) == pytest.approx(written["test/f1_macro"], abs=1e-6)
    assert Path(written["best_ckpt"]).is_file() and "checkpoints" in written["best_ckpt"]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "confusion_matrix.png").stat().st_size > 1000
    assert (run_dir / "attention" / "epoch_000.png").stat().st_size > 1000
    # per-face predictions of the test split: one row a face, agreeing with the confusion matrix
    assert written["predictions"] == "predictions.npz"
    faces = read_predictions(run_dir / "predictions.npz")
    assert faces["split"] == "test" and list(faces["class_names"]) == written["class_names"]
    assert faces["probs"].shape == (n_test, 7) and faces["probs"].dtype == np.float16
    assert np.allclose(faces["probs"].astype(np.float32).sum(axis=1), 1.0, atol=5e-3)
    assert len(set(faces["ids"].tolist())) == n_test and all(i.startswith("synthetic:") for i in faces["ids"])
    rebuilt = np.zeros((7, 7), dtype=int)
    np.add.at(rebuilt, (faces["labels"], faces["preds"]), 1)
    assert rebuilt.tolist() == cm
    assert "trainer.max_epochs=2" in written["overrides"]
    assert metrics["epochs"] == 2
    assert written["precision"] == "32-true"
    # wall-clock time per epoch in the CSV, for accuracy-against-time curves
    with open(run_dir / "csv" / "metrics.csv") as f:
        epochs = [r for r in csv.DictReader(f) if r.get("time/train_s")]
    elapsed = [float(r["time/train_s"]) for r in epochs]
    assert len(elapsed) == 2 and 0 < elapsed[0] < elapsed[1] <= written["seconds"]
    assert 0 < float(epochs[1]["time/epoch_s"]) <= elapsed[1] - elapsed[0] + 1e-3


def test_same_seed_gives_identical_metrics(make_cfg):
    keys = ("val/acc_best", "test/acc", "test/f1_macro", "test/loss", "test/confusion_matrix")
    runs = []
    for i in range(2):
        cfg = make_cfg(
            [*TINY, "trainer.deterministic=true", "seed=0", "trainer.limit_train_batches=3"], subdir=f"r{i}"
        )
        runs.append(train(cfg))
    assert {k: runs[0][k] for k in keys} == {k: runs[1][k] for k in keys}


def test_resume_from_last_checkpoint(make_cfg):
    # extending a run past its planned length needs a schedule that can go on (one-cycle has ended)
    common = [*TINY, "trainer.limit_train_batches=2", "model/scheduler=cosine"]
    cfg = make_cfg([*common, "trainer.max_epochs=1"], subdir="first")
    first = train(cfg)
    last = first["last_ckpt"]
    cfg2 = make_cfg([*common, "trainer.max_epochs=2", f"ckpt_path={last}"], subdir="second")
    second = train(cfg2)
    assert second["epochs"] == 2
    import torch

    state = torch.load(second["last_ckpt"], map_location="cpu", weights_only=True)
    assert state["epoch"] == 1 and state["global_step"] == 4  # 2 steps per epoch, continued from step 2


def test_eval_reproduces_test_metrics(make_cfg):
    cfg = make_cfg([*TINY, "trainer.max_epochs=1"], subdir="train")
    trained = train(cfg)
    ecfg = make_cfg([f"ckpt_path={trained['best_ckpt']}", "trainer.accelerator=cpu"], "eval", "eval")
    evaluated = evaluate(ecfg)
    for key in ("test/acc", "test/f1_macro", "test/confusion_matrix", "class_names"):
        assert (
            evaluated[key] == pytest.approx(trained[key])
            if key != "test/confusion_matrix"
            else evaluated[key] == trained[key]
        )
    assert read_metrics(ecfg.paths.output_dir)["test/acc"] == pytest.approx(trained["test/acc"])
    # the evaluated split's per-face predictions are the training run's test predictions, face by face
    before = read_predictions(Path(cfg.paths.output_dir) / "predictions.npz")
    after = read_predictions(Path(ecfg.paths.output_dir) / "predictions.npz")
    assert after["ids"].tolist() == before["ids"].tolist()
    assert (after["preds"] == before["preds"]).all() and (after["labels"] == before["labels"]).all()


def test_the_test_split_is_read_with_the_best_on_validation_checkpoint_not_the_last(make_cfg):
    spoil = ["+callbacks.spoil._target_=tests.faults.SpoilClassifierAtEpoch", "+callbacks.spoil.epoch=1"]
    cfg = make_cfg([*TINY, "trainer.max_epochs=2", "seed=0", *spoil], subdir="train")
    trained = train(cfg)
    with open(Path(cfg.paths.output_dir) / "csv" / "metrics.csv") as f:
        val = [float(r["val/acc"]) for r in csv.DictReader(f) if r.get("val/acc")]
    assert len(val) == 2 and trained["val/acc_best"] == pytest.approx(max(val))
    assert Path(trained["best_ckpt"]).name.startswith("epoch_000")

    def evaluated(ckpt: str, name: str) -> dict:
        return evaluate(make_cfg([f"ckpt_path={ckpt}", "trainer.accelerator=cpu"], "eval", name))

    best = evaluated(trained["best_ckpt"], "best")
    assert best["test/confusion_matrix"] == trained["test/confusion_matrix"]
    last = evaluated(trained["last_ckpt"], "last")  # the spoiled weights: every face in the first class
    assert [sum(col) > 0 for col in zip(*last["test/confusion_matrix"], strict=True)] == [True] + [False] * 6
    assert last["test/confusion_matrix"] != trained["test/confusion_matrix"]


def test_the_checkpoint_kept_is_the_first_epoch_of_highest_validation_accuracy(make_cfg):
    """Selection maximises val/acc and keeps the earlier epoch of a tie (not the lowest, not the last)."""
    script = [
        "+callbacks.script._target_=tests.faults.ScriptValidationAccuracy",
        "+callbacks.script.values=[0.2,0.6,0.4,0.6]",
    ]
    cfg = make_cfg([*TINY, "trainer.max_epochs=4", "seed=1", *script], subdir="argmax")
    trained = train(cfg)
    assert Path(trained["best_ckpt"]).name == "epoch_001.ckpt"


def test_the_seed_decides_the_initial_weights_and_repeats_them(make_cfg):
    """A job's seed is the replication axis of every table: the same seed gives the same initial
    weights, another seed other weights (read at learning rate 0, so the checkpoint holds them)."""
    import torch

    def weights(seed: int, name: str) -> dict:
        overrides = [*TINY, "trainer.limit_train_batches=1", "model.optimizer.lr=0.0", f"seed={seed}"]
        state = torch.load(train(make_cfg(overrides, subdir=name))["best_ckpt"], weights_only=True)
        return {k: v for k, v in state["state_dict"].items() if v.is_floating_point() and "running_" not in k}

    first, again, other = weights(0, "seed0"), weights(0, "seed0-again"), weights(1, "seed1")
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not any(
        torch.equal(first[k], other[k]) for k in first if first[k].numel() > 1 and first[k].std() > 0
    )


def test_missing_data_root_is_one_clear_line(make_cfg, tmp_path):
    cfg = make_cfg([*TINY, f"data.root={tmp_path}/nope"])
    with pytest.raises(ConfigError, match=r"^data.root=.*/nope does not exist$"):
        train(cfg)


def test_corrupt_checkpoint_names_the_file(make_cfg, tmp_path):
    bad = tmp_path / "garbage.ckpt"
    bad.write_bytes(b"this is not a checkpoint")
    cfg = make_cfg([f"ckpt_path={bad}"], "eval", "eval")
    with pytest.raises(CheckpointError, match=r"garbage\.ckpt: not a readable PyTorch checkpoint") as err:
        evaluate(cfg)
    assert "weights_only" not in str(err.value) and len(str(err.value).splitlines()) == 1


class Pickled:
    """An arbitrary Python object: a weights_only load refuses to unpickle it."""


def test_a_checkpoint_with_pickled_objects_is_refused_without_unsafe_advice(tmp_path):
    import torch

    from fer_attention.training.checkpoint import read_checkpoint

    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "thing": Pickled()}, pickled)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(pickled)
    message = str(err.value)
    assert message == (
        f"checkpoint {pickled}: not a fer-attention checkpoint: it holds pickled Python objects beyond "
        "tensors and plain data, which are never loaded"
    )


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(make_cfg):
    import torch

    cfg = make_cfg(
        [
            *TINY,
            "trainer.max_epochs=3",
            "trainer.limit_train_batches=3",
            "+callbacks.nan._target_=tests.faults.NanAtStep",
            "+callbacks.nan.step=3",
        ]
    )
    with pytest.raises(FloatingPointError, match=r"train loss is nan at global step 3 \(epoch 1\)"):
        train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert not (run_dir / "metrics.json").exists()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed" and "FloatingPointError" in status["error"]
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (0, 2)  # 2 batches per epoch
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_class_weighted_loss_reaches_the_loss_with_inverse_training_counts(make_cfg, tmp_path):
    import torch

    from fer_attention.training.module import FERModule

    from . import data_fixtures as fx

    root = tmp_path / "faces"
    for split, counts in {"train": {"a": 12, "b": 4, "c": 2}, "val": {"a": 2, "b": 2, "c": 2}}.items():
        fx.make_class_folders(root / split, counts, size=48)
    fx.make_class_folders(root / "test", {"a": 2, "b": 2, "c": 2}, size=48)
    cfg = make_cfg(
        [
            "data=folder",
            f"data.root={root}",
            "data.class_names=[a,b,c]",
            "data.image_size=48",
            "data.batch_size=6",
            "model.net.backbone.width=0.125",
            "model.loss.class_weighted=true",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=1",
            "trainer.accelerator=cpu",
            "~callbacks.progress_bar",
        ]
    )
    metrics = train(cfg)
    # inverse counts 1/12, 1/4, 1/2 normalised to mean 1 over the classes: 0.3, 0.9, 1.8
    module = FERModule.load_from_checkpoint(metrics["best_ckpt"], map_location="cpu", weights_only=True)
    assert module.hparams["loss"]["class_weights"] == pytest.approx([0.3, 0.9, 1.8])
    assert module.criterion.weight.tolist() == pytest.approx([0.3, 0.9, 1.8])
    logits, target = torch.zeros(2, 3), torch.tensor([0, 2])
    logits[0, 0] = 1.0  # class a is easy, class c is not: the weighted mean leans towards c's loss
    per_face = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    expected = (0.3 * per_face[0] + 1.8 * per_face[1]) / (0.3 + 1.8)
    assert float(module.criterion(logits, target)) == pytest.approx(float(expected))


def test_ten_crop_of_a_batch_gives_each_face_its_own_ten_crops():
    import torch

    from fer_attention.models.tta import ten_crop_logits

    class Brightness(torch.nn.Module):
        """Logits that depend on each face's own mean brightness, so faces mixed in the mean show."""

        def forward(self, x):
            v = x.mean(dim=(1, 2, 3))
            return torch.stack([v, v**2, -v], dim=1)

    torch.manual_seed(0)
    faces = torch.rand(3, 1, 48, 48) * torch.tensor([0.2, 0.6, 1.0]).view(3, 1, 1, 1)
    batch = ten_crop_logits(Brightness(), faces)
    alone = torch.cat([ten_crop_logits(Brightness(), f[None]) for f in faces])
    assert batch.shape == (3, 3)
    torch.testing.assert_close(batch, alone, atol=1e-6, rtol=0)
    assert float((alone[0] - alone[2]).abs().max()) > 0.2  # the faces' logits differ


def test_ten_crop_test_time_augmentation(make_cfg, monkeypatch):
    import torch
    from torchvision.transforms.functional import hflip

    from fer_attention.models.tta import ten_crop_logits

    class LeftColumn(torch.nn.Module):
        """Logits from the face's leftmost column: every crop and mirror sees a different column."""

        def forward(self, x):
            v = x[:, 0, :, 0].mean(1)
            return torch.stack([v**2, torch.full_like(v, 0.25)], dim=1)

    x = torch.linspace(0, 1, 48).repeat(48, 1).view(1, 1, 48, 48)  # brightness rises left to right
    net = LeftColumn()
    plain, ten = net(x), ten_crop_logits(net, x)
    # plain sees column 0 (dark); the mirrored crops see a bright column: ten-crop answers differently
    assert plain.argmax(1).item() == 1 and ten.argmax(1).item() == 0

    # 43 = 90% of 48: four corners and the centre, of the face and of its mirror image
    def five(f):
        return [f[..., :43, :43], f[..., :43, 5:], f[..., 5:, :43], f[..., 5:, 5:], f[..., 2:45, 2:45]]

    crops = five(x) + five(hflip(x))
    resized = [torch.nn.functional.interpolate(c, size=(48, 48), mode="bilinear") for c in crops]
    torch.testing.assert_close(ten, torch.stack([net(c) for c in resized]).mean(0), atol=1e-5, rtol=0)
    constant = torch.full((2, 1, 48, 48), 0.5)  # every crop of a constant face is the same face
    assert torch.allclose(ten_crop_logits(net, constant), net(constant), atol=1e-5)

    # the configured mode is what the test split runs: a trained run's own test, and fer-eval on it
    from fer_attention.training import module as module_lib

    faces_seen = []

    def spy(net, faces):
        faces_seen.append(len(faces))
        return ten_crop_logits(net, faces)

    monkeypatch.setattr(module_lib, "ten_crop_logits", spy)
    cfg = make_cfg([*TINY, "trainer.limit_train_batches=1"])
    trained = train(cfg)
    assert faces_seen == []
    ckpt = f"ckpt_path={trained['best_ckpt']}"
    plain_eval = evaluate(make_cfg([ckpt, "trainer.accelerator=cpu"], "eval", "eval"))
    assert faces_seen == [] and plain_eval["test/acc"] == pytest.approx(trained["test/acc"])
    tencrop_eval = evaluate(
        make_cfg([ckpt, "trainer.accelerator=cpu", "test_time_augmentation=tencrop"], "eval", "eval")
    )
    assert sum(faces_seen) == sum(sum(row) for row in tencrop_eval["test/confusion_matrix"])
    assert (plain_eval["test_time_augmentation"], tencrop_eval["test_time_augmentation"]) == (None, "tencrop")
    assert composition_line(
        "eval", [f"ckpt_path={trained['best_ckpt']}", "test_time_augmentation=fivecrop"]
    ) == (
        "Error merging override test_time_augmentation=fivecrop: Invalid value 'fivecrop', expected one of "
        "[tencrop]"
    )


def test_a_limited_test_split_writes_the_predictions_of_the_faces_it_tested(make_cfg):
    cfg = make_cfg(
        [*TINY, "trainer.limit_train_batches=1", "trainer.limit_test_batches=1", "data.eval_batch_size=4"]
    )
    metrics = train(cfg)
    faces = read_predictions(Path(cfg.paths.output_dir) / "predictions.npz")
    assert len(faces["ids"]) == 4 < metrics["splits"]["test"]["faces"]
    assert json.loads((Path(cfg.paths.output_dir) / "status.json").read_text())["state"] == "finished"
