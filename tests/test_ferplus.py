"""FER+ as a first-class dataset: the FERPlus folders' label rules, the vote distributions as training targets
(``data.source.target=votes``), hard labels for validation and test, the bad inputs, and the counts of the
real copy in ../shared/data/ferplus (skipped where it is absent)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from fer_attention.cli.data import run_data_command
from fer_attention.config import config_dir
from fer_attention.data.cache import load_faces
from fer_attention.data.sources.base import BadInputs
from fer_attention.data.sources.ferplus import CLASS_NAMES, FERPlusSource, train_vote_label, vote_target
from fer_attention.errors import DataError
from fer_attention.training.builders import build_datamodule, build_model
from fer_attention.training.task import train

from .data_fixtures import SHARED_DATA

FERPLUS = SHARED_DATA / "ferplus"
# per class in FER+'s column order (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt)
REAL_TEST_PER_CLASS = [1160, 908, 424, 424, 312, 20, 96, 27]


def votes_for(top: int, n_top: int = 7, second: int = 3) -> list[int]:
    """10 vote counts: ``n_top`` for class ``top``, ``second`` for the next class."""
    votes = [0] * 10
    votes[top] += n_top
    votes[(top + 1) % 8] += second
    return votes


# (file, 10 votes, how the PNG is written: ok | missing | big (64x64) | rgb)
TRAIN = [
    ("fer0000000.png", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0], "ok"),  # happiness
    ("fer0000001.png", [5, 5, 0, 0, 0, 0, 0, 0, 0, 0], "ok"),  # tie neutral / happiness
    ("fer0000002.png", [1, 0, 0, 0, 0, 0, 0, 0, 9, 0], "ok"),  # unknown-majority
    ("fer0000003.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10], "ok"),  # not a face
    ("fer0000004.png", [0, 0, 0, 0, 0, 0, 0, 0, 4, 6], "ok"),  # no emotion votes at all
    ("fer0000005.png", [6, 0, 2, 0, 0, 0, 0, 0, 2, 0], "ok"),  # neutral, with surprise and unknown votes
    ("fer0000006.png", [4, 0, 0, 0, 0, 0, 0, 0, 4, 2], "ok"),  # tie neutral / unknown
    ("fer0000007.png", [0, 0, 7, 3, 0, 0, 0, 0, 0, 0], "missing"),
    ("fer0000008.png", [0, 0, 0, 0, 0, 8, 2, 0, 0, 0], "big"),
    ("fer0000009.png", [0, 0, 0, 0, 0, 0, 9, 1, 0, 0], "rgb"),
    *[(f"fer00000{10 + c}.png", votes_for(c), "ok") for c in range(8)],
]
VALID = [
    ("fer0028638.png", [3, 3, 2, 0, 0, 0, 0, 0, 2, 0], "ok"),  # tie
    *[(f"fer002864{c}.png", votes_for(c, 8, 2), "ok") for c in range(4)],
    ("fer0028650.png", [0, 0, 0, 0, 0, 0, 5, 0, 3, 2], "ok"),  # fear by plurality, not by majority
]
TEST = [
    ("fer0032220.png", [0, 0, 0, 4, 4, 0, 0, 0, 2, 0], "ok"),  # tie sadness / anger
    ("fer0032221.png", [2, 0, 0, 0, 0, 0, 0, 0, 8, 0], "ok"),  # unknown-majority
    *[(f"fer003223{c}.png", votes_for(c, 9, 0), "ok") for c in range(8)],
]
LAYOUT = {"FER2013Train": TRAIN, "FER2013Valid": VALID, "FER2013Test": TEST}


def write_folders(root: Path, layout=LAYOUT) -> Path:
    """The FERPlus folders under ``root``: each face a 48x48 grey PNG of noise, ``label.csv`` by hand."""
    for folder, rows in layout.items():
        (root / folder).mkdir(parents=True)
        lines = []
        for i, (name, votes, kind) in enumerate(rows):
            lines.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
            noise = np.random.default_rng(1000 * len(folder) + i).integers(0, 256, (64, 64), dtype=np.uint8)
            if kind == "ok":
                Image.fromarray(noise[:48, :48]).save(root / folder / name)
            elif kind == "big":
                Image.fromarray(noise).save(root / folder / name)
            elif kind == "rgb":
                Image.fromarray(np.stack([noise[:48, :48]] * 3, axis=-1)).save(root / folder / name)
        (root / folder / "label.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_folders(tmp_path / "ferplus")


def load(root: Path, cache_dir: Path | None = None, on_bad_file: str = "skip", **settings):
    return load_faces(
        FERPlusSource(**settings),
        root,
        48,
        CLASS_NAMES,
        cache_dir=cache_dir,
        on_bad_file=on_bad_file,
        progress=False,
    )


def names(faces, split: str) -> list[str]:
    return [Path(s).name for s, sp in zip(faces.sources, faces.splits, strict=True) if sp == split]


def labels(faces, split: str) -> list[str]:
    return [CLASS_NAMES[i] for i in faces.labels[faces.splits == split]]


def ferplus_cfg(make_cfg, root: Path, *overrides: str, config_name: str = "train", subdir: str = "run"):
    return make_cfg(
        [
            "data=ferplus",
            f"data.root={root}",
            f"data.cache_dir={root.parent / 'cache'}",
            "data.on_bad_file=skip",
            "data.progress=false",
            *overrides,
        ],
        config_name=config_name,
        subdir=subdir,
    )


# ----- label rules and soft targets -----
def test_vote_rules_for_evaluation_and_for_training_on_votes():
    assert train_vote_label([5, 5, 0, 0, 0, 0, 0, 0, 0, 0]) == (0, None)  # a tie: the first, kept
    assert train_vote_label([4, 0, 0, 0, 0, 0, 0, 0, 4, 2]) == (0, None)  # an emotion as high as unknown
    assert train_vote_label([1, 0, 0, 0, 0, 0, 0, 0, 9, 0]) == (None, "top vote is unknown")
    assert train_vote_label([0, 0, 0, 0, 0, 0, 0, 0, 4, 6]) == (None, "top vote is NF")
    assert train_vote_label([0] * 10) == (None, "no votes")
    assert vote_target([6, 0, 2, 0, 0, 0, 0, 0, 2, 0]) == [0.75, 0, 0.25, 0, 0, 0, 0, 0]


def test_label_rule_exclusions_bad_files_and_cached_soft_targets(tiny, tmp_path):
    faces = load(tiny, tmp_path / "cache")
    assert labels(faces, "train") == ["happiness", "neutral", *CLASS_NAMES]
    assert names(faces, "train")[:2] == ["fer0000000.png", "fer0000005.png"]
    assert labels(faces, "val") == ["neutral", "happiness", "surprise", "sadness", "fear"]
    assert labels(faces, "test") == list(CLASS_NAMES)
    assert faces.info["excluded"] == {
        "tie between the top votes": 4,
        "top vote is unknown": 2,
        "top vote is NF": 2,
    }
    assert faces.info["excluded_by_split"] == {
        "train": {"tie between the top votes": 2, "top vote is unknown": 1, "top vote is NF": 2},
        "val": {"tie between the top votes": 1},
        "test": {"tie between the top votes": 1, "top vote is unknown": 1},
    }
    assert faces.info["eval_label"] == "plurality" and faces.info["target"] == "label"
    skipped = {Path(f).name: reason for f, reason in faces.skipped}
    assert skipped["fer0000007.png"].startswith("listed in ") and skipped["fer0000007.png"].endswith(
        "but missing"
    )
    assert skipped["fer0000008.png"] == "expected a 48x48 8-bit grey image (mode L), got 64x64 mode L"
    assert skipped["fer0000009.png"] == "expected a 48x48 8-bit grey image (mode L), got 48x48 mode RGB"
    assert len(skipped) == 3
    # every face carries its vote distribution over the 8 emotions, in data.class_names' order
    yaml_names = OmegaConf.load(Path(config_dir()) / "data" / "ferplus.yaml").class_names
    assert tuple(yaml_names) == CLASS_NAMES
    assert faces.targets.shape == (len(faces), 8) and faces.targets.dtype == np.float32
    assert np.allclose(faces.targets.sum(axis=1), 1.0)
    assert faces.targets[0, list(yaml_names).index("happiness")] == 1.0
    assert faces.targets[1].tolist() == [0.75, 0, 0.25, 0, 0, 0, 0, 0]
    assert np.array_equal(faces.targets.argmax(axis=1), faces.labels)
    cached = load(tiny, tmp_path / "cache")
    assert cached.info["cache_hit"] and np.array_equal(cached.targets, faces.targets)


def test_training_on_votes_keeps_emotion_ties_and_evaluates_the_same_hard_labels(tiny):
    by_label, by_votes = load(tiny), load(tiny, target="votes")
    assert names(by_votes, "train")[:4] == [
        "fer0000000.png",
        "fer0000001.png",
        "fer0000005.png",
        "fer0000006.png",
    ]
    assert labels(by_votes, "train")[:4] == ["happiness", "neutral", "neutral", "neutral"]
    assert by_votes.targets[1].tolist() == [0.5, 0.5, 0, 0, 0, 0, 0, 0]
    assert by_votes.targets[3].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]  # unknown and NF votes dropped
    assert by_votes.info["excluded_by_split"]["train"] == {"top vote is unknown": 1, "top vote is NF": 2}
    for split in ("val", "test"):
        assert names(by_votes, split) == names(by_label, split)
        assert labels(by_votes, split) == labels(by_label, split)
    # the vote rule decides the evaluated labels only
    majority = load(tiny, target="votes", vote="majority")
    assert names(majority, "train") == names(by_votes, "train")
    assert "fer0028650.png" not in names(majority, "val") and majority.info["eval_label"] == "majority"


# ----- bad input -----
def test_bad_files_stop_the_run_naming_the_file(tmp_path):
    with pytest.raises(DataError, match=r"fer0000007\.png: listed in .*label\.csv line 8 but missing$"):
        load(write_folders(tmp_path / "a"), on_bad_file="error")
    big = write_folders(tmp_path / "b", {"FER2013Train": [TRAIN[0], TRAIN[8]]})
    with pytest.raises(DataError, match=r"fer0000008\.png: expected a 48x48 8-bit grey image .* got 64x64"):
        load(big, on_bad_file="error")


def test_fer_data_summary_counts_bad_files_and_exclusions(tiny, make_cfg):
    out = run_data_command(ferplus_cfg(make_cfg, tiny, config_name="data_cli"))
    assert out["skipped_count"] == 3 and len(out["skipped"]) == 3
    assert out["excluded"] == {"tie between the top votes": 4, "top vote is unknown": 2, "top vote is NF": 2}
    assert {s: out["splits"][s]["faces"] for s in ("train", "val", "test")} == {
        "train": 10,
        "val": 5,
        "test": 8,
    }
    assert out["info"]["eval_label"] == "plurality"


def test_target_votes_needs_a_dataset_with_votes(make_cfg, tiny):
    cfg = make_cfg(["data=fer2013", "data.root=/nowhere", "+data.source.target=votes"])
    with pytest.raises(ValueError) as err:
        build_datamodule(cfg.data)
    assert str(err.value) == (
        "data.source.target=votes but dataset 'fer2013' has no vote counts; only data=ferplus (FER2013Train/"
        "Valid/Test folders, or fer2013new.csv beside fer2013.csv) has them: use data=ferplus or "
        "data.source.target=label"
    )
    plain = build_datamodule(
        make_cfg(["data=fer2013", "data.root=/nowhere", "+data.source.target=label"]).data
    )
    assert plain.target == "label" and "target" not in plain.source_cfg
    with pytest.raises(ValueError, match=r"^data\.source\.target='soft' is not one of label, votes$"):
        build_datamodule(ferplus_cfg(make_cfg, tiny, "data.source.target=soft").data)


# ----- the loss -----
def test_a_training_step_on_votes_is_cross_entropy_against_the_vote_distribution(make_cfg, tiny):
    cfg = ferplus_cfg(make_cfg, tiny, "data.source.target=votes", "model.net.backbone.width=0.125")
    dm = build_datamodule(cfg.data)
    dm.setup()
    x, y, target = next(iter(dm.train_dataloader()))
    assert len(x) == 12 and torch.allclose(target.sum(dim=1), torch.ones(12))
    assert all(len(next(iter(loader))) == 2 for loader in (dm.val_dataloader(), dm.test_dataloader()))
    model = build_model(cfg.model, cfg.data).eval()
    head = [m for m in model.net.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():  # an untrained network is close to uniform: spread its logits apart
        head.bias.copy_(torch.linspace(-2.0, 2.0, 8))
        head.weight.mul_(50.0)
    with pytest.warns(UserWarning, match="self.log"):
        loss = model._step((x, y, target), "train")
    with torch.no_grad():
        logits = model.net(x)
    soft = -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()
    assert loss.item() == pytest.approx(soft.item(), rel=1e-5)
    assert abs(loss.item() - torch.nn.functional.cross_entropy(logits, y).item()) > 1e-3
    # the metrics count the hard labels
    acc = model.metrics["train_stage"]["acc"].compute().item()
    assert acc == pytest.approx((logits.argmax(dim=1) == y).float().mean().item())
    # label smoothing mixes in the uniform distribution, class weights weight each class's term
    weights = [float(w) for w in np.linspace(0.5, 2.0, 8)]
    smoothed = build_model(
        OmegaConf.merge(cfg.model, {"loss": {"label_smoothing": 0.1, "class_weights": weights}}), cfg.data
    ).eval()
    smoothed.net.load_state_dict(model.net.state_dict())
    with pytest.warns(UserWarning, match="self.log"):
        loss = smoothed._step((x, y, target), "train")
    mixed = target * 0.9 + 0.1 / 8
    expected = -(torch.tensor(weights) * mixed * logits.log_softmax(dim=1)).sum(dim=1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_run_on_votes_says_so_in_metrics_json_and_tests_hard_labels(make_cfg, tiny):
    cfg = ferplus_cfg(
        make_cfg,
        tiny,
        "data.source.target=votes",
        "data.batch_size=8",
        "model.net.backbone.width=0.125",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "~callbacks.progress_bar",
    )
    train(cfg)
    written = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert written["train_target"] == "votes" and written["eval_label"] == "plurality"
    assert {s: written["splits"][s]["faces"] for s in ("train", "val", "test")} == {
        "train": 12,
        "val": 5,
        "test": 8,
    }
    cm = written["test/confusion_matrix"]
    assert [sum(row) for row in cm] == [1] * 8  # one hard-labelled test face per class
    assert np.isfinite(written["test/loss"])
    label_dm = build_datamodule(ferplus_cfg(make_cfg, tiny, subdir="label").data)
    label_dm.setup()
    assert label_dm.label_rules() == {"train_target": "label", "eval_label": "plurality"}
    assert len(next(iter(label_dm.train_dataloader()))) == 2


# ----- the real FER+ folders -----
@pytest.fixture(scope="module")
def real_rows() -> int:
    if not FERPLUS.is_dir():
        pytest.skip(f"{FERPLUS} is not here (shared/data)")
    rows = 0
    for folder in ("FER2013Train", "FER2013Valid", "FER2013Test"):
        with open(FERPLUS / folder / "label.csv", newline="") as fh:
            rows += sum(1 for fields in csv.reader(fh) if fields)
    return rows


def test_real_ferplus_counts(real_rows):
    assert real_rows == 35710
    counts = {}
    for target in ("label", "votes"):
        manifest = FERPlusSource(target=target).index(FERPLUS, CLASS_NAMES, BadInputs("error"))
        assert len(manifest) + sum(manifest.excluded.values()) == real_rows
        splits = np.asarray(manifest.splits)
        counts[target] = {s: int((splits == s).sum()) for s in ("train", "val", "test")}
        test_labels = np.asarray(manifest.labels)[splits == "test"]
        assert np.bincount(test_labels, minlength=8).tolist() == REAL_TEST_PER_CLASS
        if target == "label":
            assert dict(manifest.excluded) == {
                "tie between the top votes": 1778,
                "top vote is unknown": 222,
                "top vote is NF": 3,
            }
    assert counts["label"] == {"train": 26940, "val": 3396, "test": 3371}
    assert counts["votes"] == {"train": 28385, "val": 3396, "test": 3371}


def test_vote_targets_on_a_dataset_without_votes_is_one_line_naming_ferplus(monkeypatch, capsys, tmp_path):
    from .test_config_errors import run_fer_train

    code, err = run_fer_train(monkeypatch, capsys, tmp_path, ["data=fer2013", "data.source.target=votes"])
    assert code == 1 and len(err) == 1
    assert err[0].startswith("error: Could not override 'data.source.target'")
    assert err[0].endswith(
        "; only data=ferplus (FER2013Train/Valid/Test folders, or fer2013new.csv beside "
        "fer2013.csv) has vote counts to train on (data=ferplus data.source.target=votes)"
    )
