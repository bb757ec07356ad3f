"""The data configs, FaceDataModule on real-format fixtures (subject-disjoint folds, fixed splits,
sampler, class weights) and the `fer-data` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_attention.cli.data import _rewrite_argv
from fer_attention.cli.data import run_data_command as run
from fer_attention.config import config_dir, validate_config
from fer_attention.errors import ConfigError
from fer_attention.training.builders import build_datamodule

from .conftest import composition_line

try:  # tests/ as a package or as a plain folder on sys.path
    from . import data_fixtures as fx
except ImportError:
    import data_fixtures as fx

REAL = sorted(p.stem for p in (Path(config_dir()) / "data").glob("*.yaml") if p.stem != "synthetic")


@pytest.mark.parametrize("name", REAL)
def test_data_config_composes(make_cfg, name):
    cfg = make_cfg([f"data={name}"], subdir=name)
    assert cfg.data.root is None  # a dataset read from files asks for it, naming data.root
    assert cfg.data.cache_dir == cfg.paths.cache_dir
    assert cfg.data.on_bad_file == "error" and cfg.data.sampler is None and cfg.data.face_crop == "auto"
    if cfg.data.class_names is not None:
        assert len(cfg.data.class_names) == cfg.model.net.num_classes
        from hydra.utils import instantiate

        source = instantiate(cfg.data.source)
        assert source.class_names_for(cfg.data.class_names) == tuple(cfg.data.class_names)
    else:  # data=folder, sequences: fer-train stops, before any data, until the user names the classes
        with pytest.raises(ConfigError, match=rf"^data.class_names must be set for dataset '{name}'"):
            validate_config(cfg)
        return
    validate_config(cfg)


def dm_for(make_cfg, name, root, *extra):
    cfg = make_cfg(
        [f"data={name}", f"data.root={root}", "data.progress=false", *extra], subdir=f"{name}-{len(extra)}"
    )
    return build_datamodule(cfg.data)


def subject_fixtures(tmp_path):
    jaffe = fx.make_jaffe(tmp_path / "jaffe", subjects=("KA", "KL", "KM", "NA", "NM", "TM"))
    seq = fx.make_sequences(
        tmp_path / "seq", subjects=("a", "b", "c", "d", "e"), expressions=("happy", "sad")
    )
    folder = tmp_path / "folder"
    for cls in ("happy", "sad"):
        for s in range(6):
            for k in range(2):
                fx.save(folder / cls / f"S{s}_{k}.png", fx.flat(s))
    ck_orig = fx.make_ckplus_original(
        tmp_path / "ck",
        [(f"S{100 + s}", f"{j + 1:03d}", (s + j) % 7 + 1, 4) for s in range(6) for j in range(2)],
    )
    return {
        "ckplus": (fx.ck48_many(tmp_path / "ck48", subjects=9), []),
        "ckplus-original": (ck_orig, ["data.face_crop=none"]),
        "jaffe": (jaffe, ["data.face_crop=none"]),
        "oulu_casia": (
            fx.make_oulu(tmp_path / "oulu", subjects=("P001", "P002", "P003", "P004", "P005"), frames=3),
            ["data.face_crop=none"],
        ),
        "sequences": (seq, ["data.class_names=[happy,sad]"]),
        "folder": (
            folder,
            ["data.class_names=[happy,sad]", "data.source.subject_regex='^(S\\d+)_'"],
        ),
    }


def test_no_subject_in_two_splits_in_any_fold(make_cfg, tmp_path):
    for name, (root, extra) in subject_fixtures(tmp_path).items():
        dm = dm_for(make_cfg, name.split("-")[0], root, "data.num_folds=3", *extra)
        faces = dm.load()
        assert dm.resolved_protocol(faces) == "kfold", name
        tests = []
        for fold in range(3):
            split = dm.split_faces(faces, fold=fold)
            subjects = {k: set(faces.subjects[v].tolist()) for k, v in split.items()}
            assert not subjects["train"] & subjects["val"], name
            assert not subjects["train"] & subjects["test"], name
            assert not subjects["val"] & subjects["test"], name
            assert sum(len(v) for v in split.values()) == len(faces), name
            tests.append(split["test"])
        # the test folds partition the dataset
        assert sorted(np.concatenate(tests).tolist()) == list(range(len(faces))), name


def test_fixed_split_datasets_through_the_datamodule(make_cfg, tmp_path):
    fx.make_fer2013_csv(tmp_path / "fer" / "fer2013.csv", fx.fer2013_standard_rows())
    fx.make_rafdb(tmp_path / "raf", fx.rafdb_entries(42, 14))
    fx.make_affectnet(tmp_path / "aff", [0, 1, 2, 3, 4, 5, 6] * 4, [0, 1, 2, 3, 4, 5, 6])
    fx.make_ferplus(
        tmp_path / "ferplus",
        [("Training", f"f{i}.png", [0] * (i % 8) + [9] + [0] * (9 - i % 8)) for i in range(16)]
        + [("PublicTest", "v.png", [9] + [0] * 9), ("PrivateTest", "t.png", [0, 9] + [0] * 8)],
    )
    expected = {
        "fer2013": {"train": 14, "val": 2, "test": 2},
        "rafdb": {"train": 35, "val": 7, "test": 14},
        "affectnet": {"train": 21, "val": 7, "test": 7},
        "ferplus": {"train": 16, "val": 1, "test": 1},
    }
    roots = {
        "fer2013": tmp_path / "fer",
        "rafdb": tmp_path / "raf",
        "affectnet": tmp_path / "aff",
        "ferplus": tmp_path / "ferplus",
    }
    for name, counts in expected.items():
        extra = ["data.source.val_fraction=0.25"] if name == "affectnet" else []
        dm = dm_for(make_cfg, name, roots[name], "data.image_size=32", *extra)
        dm.setup()
        assert {k: len(v) for k, v in dm.split_indices.items()} == counts, name


def test_protocol_auto_and_missing_class_names(make_cfg, tmp_path):
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        fx.make_class_folders(tmp_path / "split" / split, {"a": n, "b": n})
    dm = dm_for(make_cfg, "folder", tmp_path / "split", "data.class_names=[a,b]")
    dm.setup()
    assert dm.resolved_protocol() == "fixed" and len(dm.split_indices["val"]) == 4
    with pytest.raises(ValueError, match=r"data\.class_names must be set for dataset 'folder'"):
        dm_for(make_cfg, "folder", tmp_path / "split")


def test_weighted_sampler_and_class_weights(make_cfg, tmp_path):
    root = tmp_path / "imb"
    for s in range(6):
        for k in range(9):
            fx.save(root / "common" / f"S{s}_{k}.png", fx.flat(k))
        fx.save(root / "rare" / f"S{s}_0.png", fx.flat(200))
    extra = [
        "data.class_names=[common,rare]",
        "data.source.subject_regex='^(S\\d+)_'",
        "data.num_folds=3",
    ]
    dm = dm_for(make_cfg, "folder", root, "data.sampler=weighted", "data.batch_size=500", *extra)
    dm.setup()
    counts = dm.class_counts("train")
    weights = dm.class_weights()
    assert np.mean(weights) == pytest.approx(1.0)
    assert weights[1] / weights[0] == pytest.approx(counts[0] / counts[1])
    loader = dm.train_dataloader()
    assert loader.sampler.weights is not None and len(loader.sampler) == len(dm.datasets["train"])
    import torch

    torch.manual_seed(0)
    labels = torch.cat([y for _, y in loader] + [y for _, y in loader])
    assert 0.35 < labels.float().mean().item() < 0.65  # balanced draws, though only 10% of faces are rare
    plain = dm_for(make_cfg, "folder", root, *extra)
    plain.setup()
    assert plain.train_dataloader().sampler.weights is None


def test_training_runs_on_a_real_format_dataset(make_cfg, tmp_path):
    from fer_attention.training.task import train

    root = fx.ck48_many(tmp_path / "ck48", subjects=10)
    cfg = make_cfg(
        [
            "data=ckplus",
            f"data.root={root}",
            "data.num_folds=3",
            "model.net.backbone.width=0.125",
            "trainer.accelerator=cpu",
            "~callbacks.progress_bar",
            "debug=fdr",
        ]
    )
    metrics = train(cfg)
    assert metrics["class_names"] == ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
    assert (Path(cfg.paths.output_dir) / "metrics.json").is_file()
    assert any(Path(cfg.paths.cache_dir).glob("ckplus_48px_none_*.npz"))


# ----- fer-data -----
def test_argv_rewrite():
    assert _rewrite_argv(["fer-data", "summary", "data=ckplus"]) == [
        "fer-data",
        "action=summary",
        "data=ckplus",
    ]
    assert _rewrite_argv(["fer-data", "prepare"]) == ["fer-data", "action=prepare"]
    assert _rewrite_argv(["fer-data", "action=summary"]) == ["fer-data", "action=summary"]
    assert _rewrite_argv(["fer-data", "--help"]) == ["fer-data", "--help"]
    # a deletion override (no "=") is an override, not the action
    assert _rewrite_argv(["fer-data", "~data.face_crop", "action=summary"]) == [
        "fer-data",
        "~data.face_crop",
        "action=summary",
    ]
    # an unknown action is refused by the schema, with the actions it has
    assert _rewrite_argv(["fer-data", "show"]) == ["fer-data", "action=show"]
    assert composition_line("data_cli", ["action=show"]).endswith("expected one of [prepare, summary]")


def test_summary_kfold_and_prepare(make_cfg, tmp_path):
    root = fx.ck48_many(tmp_path / "ck48", subjects=9)
    (root / "anger" / "S999_001_00000001.png").write_bytes(b"")
    over = [
        "data=ckplus",
        f"data.root={root}",
        "data.num_folds=3",
        "data.on_bad_file=skip",
        "data.progress=false",
    ]
    out = run(make_cfg(["action=summary", *over], config_name="data_cli", subdir="s"))
    assert out["images"] == 81 and out["subjects"] == 9 and out["protocol"] == "kfold"
    assert sum(out["classes"].values()) == 81
    assert len(out["folds"]) == 3 and out["subjects_in_two_splits"] == []
    assert sum(f["test"]["faces"] for f in out["folds"]) == 81
    assert all(f["train"]["faces"] + f["val"]["faces"] + f["test"]["faces"] == 81 for f in out["folds"])
    assert out["skipped_count"] == 1 and out["skipped"][0]["reason"] == "empty file (0 bytes)"
    json.dumps(out)
    prep = run(make_cfg(["action=prepare", *over], config_name="data_cli", subdir="p"))
    assert prep["images"] == 81 and Path(prep["cache_file"]).is_file()


def test_summary_fixed_and_discovered_classes(make_cfg, tmp_path):
    fx.make_fer2013_csv(tmp_path / "fer2013.csv", fx.fer2013_standard_rows())
    out = run(
        make_cfg(
            ["action=summary", "data=fer2013", f"data.root={tmp_path}", "data.progress=false"],
            config_name="data_cli",
        )
    )
    assert out["protocol"] == "fixed"
    assert {k: v["faces"] for k, v in out["splits"].items()} == {"train": 14, "val": 2, "test": 2}
    assert out["empty_splits"] == []
    # a partial copy without PrivateTest: the summary says which split is empty (and logs it)
    partial = [r for r in fx.fer2013_standard_rows() if r[1] != "PrivateTest"]
    fx.make_fer2013_csv(tmp_path / "partial" / "fer2013.csv", partial)
    part = run(
        make_cfg(
            ["action=summary", "data=fer2013", f"data.root={tmp_path / 'partial'}", "data.progress=false"],
            config_name="data_cli",
            subdir="partial",
        )
    )
    assert part["empty_splits"] == ["test"] and part["splits"]["test"]["faces"] == 0
    fx.make_class_folders(tmp_path / "faces", {"Happy": 1, "sad": 1})
    found = run(
        make_cfg(
            ["action=summary", "data=folder", f"data.root={tmp_path / 'faces'}"],
            config_name="data_cli",
            subdir="f",
        )
    )
    assert found["discovered_classes"] == ["Happy", "sad"]
    assert found["hint"] == "data.class_names=[Happy,sad]"


def test_fer_data_command_line(tmp_path):
    root = fx.ck48_many(tmp_path / "ck48", subjects=4)
    exe = Path(sys.executable).with_name("fer-data")
    assert exe.exists(), f"{exe}: the package's console scripts are not installed (make install)"
    env = {**os.environ, "FER_LOG_DIR": str(tmp_path / "logs")}
    proc = subprocess.run(
        [str(exe), "summary", "data=ckplus", f"data.root={root}", "data.num_folds=2", "data.progress=false"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # stdout is exactly the JSON
    assert out["images"] == 36 and len(out["folds"]) == 2


def test_fer_data_user_errors(make_cfg, tmp_path):
    from fer_attention.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"^data\.root={tmp_path / 'nope'} does not exist$"):
        run(
            make_cfg(
                ["action=summary", "data=ckplus", f"data.root={tmp_path / 'nope'}"], config_name="data_cli"
            )
        )
    root = fx.ck48_many(tmp_path / "ck48", subjects=2)
    with pytest.raises(
        ConfigError, match=r"^fer-data prepare needs data\.cache_dir \(or paths\.cache_dir\); it is null$"
    ):
        run(
            make_cfg(
                ["action=prepare", "data=ckplus", f"data.root={root}", "data.cache_dir=null"],
                config_name="data_cli",
                subdir="b",
            )
        )
    assert composition_line("data_cli", ["action=show"]) == (
        "Error merging override action=show: Invalid value 'show', expected one of [prepare, summary]"
    )


@pytest.mark.parametrize("workers", [0, 2])
def test_training_batches_depend_only_on_seed_and_epoch(make_cfg, workers):
    """Order and augmentation of an epoch are the same in a fresh process state (a resumed run) as in one
    that went through earlier epochs; DataLoader workers are seeded from (seed, epoch) too."""
    import lightning.pytorch as pl
    import torch

    from fer_attention.callbacks.epoch_seed import EpochSeed

    cfg = make_cfg(
        ["data.source.num_subjects=10", "data.source.frames_per_sequence=1", f"data.num_workers={workers}"]
    )

    def epoch_batches(epoch: int, history: int) -> list[torch.Tensor]:
        pl.seed_everything(0, workers=True, verbose=False)
        dm = build_datamodule(cfg.data)
        dm.setup("fit")
        loader = dm.train_dataloader()
        trainer = type("T", (), {"current_epoch": epoch, "global_rank": 0})()
        for past in range(history):  # earlier epochs consume random numbers
            EpochSeed(0).on_train_epoch_start(
                type("T", (), {"current_epoch": past, "global_rank": 0})(), None
            )
            loader.sampler.set_epoch(past)
            list(loader)
        EpochSeed(0).on_train_epoch_start(trainer, None)
        loader.sampler.set_epoch(epoch)
        return [x for x, _ in loader]

    fresh, continued = epoch_batches(2, history=0), epoch_batches(2, history=2)
    assert all(torch.equal(a, b) for a, b in zip(fresh, continued, strict=True))
    other = epoch_batches(1, history=0)
    assert not torch.equal(torch.cat(fresh), torch.cat(other))


def test_subject_folds_hold_a_fold_of_subjects_each_stratified_and_independent_of_global_rng():
    from fer_attention.data.splits import subject_kfold_split

    # 20 subjects, 5 per class, 3 faces each: 5 folds give 4 test, 4 validation and 12 training subjects
    subjects = np.repeat(np.arange(20), 3)
    labels = np.repeat(np.arange(20) % 4, 3)
    splits = []
    for fold in range(5):
        np.random.seed(fold)  # the split may depend on its seed argument only
        split = subject_kfold_split(labels, subjects, num_folds=5, fold=fold, seed=0)
        counts = {k: len(np.unique(subjects[v])) for k, v in split.items()}
        assert counts == {"train": 12, "val": 4, "test": 4}, (fold, counts)
        for name in ("test", "val"):  # stratified: one subject of each class
            assert sorted(labels[split[name]][::3].tolist()) == [0, 1, 2, 3], (fold, name)
        splits.append(split)
    np.random.seed(123)
    again = subject_kfold_split(labels, subjects, num_folds=5, fold=2, seed=0)
    assert all(np.array_equal(again[k], splits[2][k]) for k in again)
    other = subject_kfold_split(labels, subjects, num_folds=5, fold=2, seed=1)
    assert not np.array_equal(other["test"], splits[2]["test"])
