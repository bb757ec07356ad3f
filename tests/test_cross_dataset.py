"""Cross-dataset evaluation: classes matched by name through the one synonym table, classes either side
lacks reported and left out, split=all, and the no-common-class error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_attention.classes import SYNONYMS, canonical, map_classes, same_class_set
from fer_attention.errors import ConfigError, ReportError
from fer_attention.reporting.cross import cross_report
from fer_attention.training.task import evaluate, train

from . import data_fixtures as fx
from .conftest import SHARED_DATA, TINY, compose_cfg, composition_line

FER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
CK = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]


def test_synonyms_map_to_one_canonical_name():
    for name, aliases in SYNONYMS.items():
        for alias in (name, *aliases):
            assert canonical(alias) == name and canonical(alias.upper()) == name
    assert canonical("Thinking") == "thinking"  # outside the table: only itself
    assert same_class_set(["anger", "happiness"], ["happy", "angry"])
    assert not same_class_set(["anger", "happy"], ["anger", "happy", "sad"])


def test_fer2013_to_ckplus_mapping_reports_both_sides():
    m = map_classes(FER, CK)
    assert [(c, FER[i], CK[j]) for c, i, j in m.shared] == [
        ("angry", "angry", "anger"),
        ("disgust", "disgust", "disgust"),
        ("fear", "fear", "fear"),
        ("happy", "happy", "happy"),
        ("sad", "sad", "sadness"),
        ("surprise", "surprise", "surprise"),
    ]
    assert m.target_only == ["contempt"] and m.model_only == ["neutral"] and not m.identity
    back = map_classes(CK, FER)
    assert back.target_only == ["neutral"] and back.model_only == ["contempt"]
    assert map_classes(FER, FER).identity
    with pytest.raises(ValueError, match=r"name one class twice \('anger' and 'angry'\)"):
        map_classes(["anger", "angry"], FER)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> str:
    """A 7-class (FER2013 names) model trained for 2 steps on the synthetic faces."""
    root = tmp_path_factory.mktemp("tiny")
    cfg = compose_cfg(root / "train", [*TINY, "trainer.limit_train_batches=2", "~callbacks.attention_maps"])
    return train(cfg)["best_ckpt"]


def _target_folder(root: Path, counts: dict[str, int]) -> Path:
    rng = np.random.default_rng(1)
    for cls, n in counts.items():
        for i in range(n):
            fx.save(root / cls / f"{cls}_{i}.png", rng.integers(0, 255, (48, 48), dtype=np.uint8))
    return root


def test_cross_dataset_metrics_over_shared_classes(make_cfg, tiny_ckpt, tmp_path):
    from fer_attention.data.datamodule import FaceDataModule
    from fer_attention.training.builders import build_datamodule, to_dict
    from fer_attention.training.module import FERModule

    counts = {"anger": 3, "happiness": 4, "contempt": 2}
    root = _target_folder(tmp_path / "target", counts)
    overrides = [
        f"ckpt_path={tiny_ckpt}",
        "trainer.accelerator=cpu",
        "data=folder",
        f"data.root={root}",
        "data.class_names=[anger,happiness,contempt]",
        "data.image_size=64",  # the model's 48 is used (and logged)
        "data.progress=false",
        "split=all",
    ]
    cfg = make_cfg(overrides, "eval", "eval")
    metrics = evaluate(cfg)
    mapping = metrics["class_mapping"]
    assert [(s["model"], s["target"]) for s in mapping["shared"]] == [
        ("angry", "anger"),
        ("happy", "happiness"),
    ]
    assert mapping["target_only"] == ["contempt"]
    assert mapping["model_only"] == ["disgust", "fear", "sad", "surprise", "neutral"]
    assert metrics["faces"] == {"total": 9, "evaluated": 7, "left_out": {"contempt": 2}}
    assert metrics["class_names"] == ["anger", "happiness"]
    cm = metrics["all/confusion_matrix"]
    assert [sum(row) for row in cm] == [3, 4]
    # the same numbers by hand: logits of the two shared classes only, argmax among them
    dcfg = {**to_dict(cfg.data), "image_size": 48}
    dm: FaceDataModule = build_datamodule(dcfg)
    faces = dm.load()
    model = FERModule.load_from_checkpoint(tiny_ckpt, map_location="cpu", weights_only=True).eval()
    keep = faces.labels != 2
    with torch.no_grad():
        logits = model(torch.from_numpy(faces.images[keep]).float().div(255).unsqueeze(1))
    preds = logits[:, [0, 3]].argmax(dim=1).numpy()
    assert metrics["all/acc"] == pytest.approx(float((preds == faces.labels[keep]).mean()))
    assert sum(cm[i][i] for i in range(2)) == int((preds == faces.labels[keep]).sum())
    written = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert written["class_mapping"]["target_only"] == ["contempt"] and "all/f1_macro" in written
    assert written["trained_on"] == "synthetic" and written["data"] == "folder"

    # the cross table: training set as row, test set and split as column, published and re-aggregated
    out = cross_report(Path(cfg.paths.output_dir).parent, tmp_path / "cross", publish=True)
    acc = 100 * metrics["all/acc"]
    assert (
        f"| synthetic | {acc:.2f} (" in out["table"]
        and "| trained on \\ tested on | folder all |" in out["table"]
    )
    assert "7 faces, 2 classes" in out["table"] and "folder all: contempt 2" in out["table"]
    again = cross_report(tmp_path / "cross" / "runs", tmp_path / "again")
    assert again["table"] == out["table"]
    assert "fer-eval ckpt_path=" in (tmp_path / "cross" / "README.md").read_text()
    with pytest.raises(ReportError, match="no fer-eval run"):
        cross_report(tmp_path / "target", tmp_path / "none")


def test_no_class_in_common_is_one_line_with_both_sets(make_cfg, tiny_ckpt, tmp_path):
    cfg = make_cfg(
        [
            f"ckpt_path={tiny_ckpt}",
            "data=folder",
            f"data.root={tmp_path}",
            "data.class_names=[thinking,bored]",
            "split=all",
        ],
        "eval",
        "eval",
    )
    with pytest.raises(ConfigError) as err:
        evaluate(cfg)
    assert str(err.value) == (
        f"no class in common: the model's classes are {FER}, data 'folder' has ['thinking', 'bored'] "
        "(synonyms: fer_attention/classes.py)"
    )


def test_split_all_on_the_models_own_data(make_cfg, tiny_ckpt):
    cfg = make_cfg([f"ckpt_path={tiny_ckpt}", "trainer.accelerator=cpu", "split=all"], "eval", "eval")
    metrics = evaluate(cfg)
    assert "class_mapping" not in metrics  # same classes: the plain test loop
    assert sum(map(sum, metrics["all/confusion_matrix"])) == 15 * 7 * 2  # every synthetic face (TINY)
    assert composition_line("eval", [f"ckpt_path={tiny_ckpt}", "split=train"]) == (
        "Error merging override split=train: Invalid value 'train', expected one of [test, val, all]"
    )


@pytest.mark.skipif(not (SHARED_DATA / "ckplus48").is_dir(), reason="needs ../shared/data/ckplus48")
def test_fer_names_model_on_real_ckplus48(make_cfg, tiny_ckpt):
    cfg = make_cfg(
        [
            f"ckpt_path={tiny_ckpt}",
            "trainer.accelerator=cpu",
            "data=ckplus",
            f"data.root={SHARED_DATA / 'ckplus48'}",
            "data.progress=false",
            "split=all",
        ],
        "eval",
        "ck",
    )
    metrics = evaluate(cfg)
    assert metrics["class_mapping"]["target_only"] == ["contempt"]
    assert metrics["class_mapping"]["model_only"] == ["neutral"]
    left_out = metrics["faces"]["left_out"]["contempt"]
    assert metrics["faces"]["total"] == 981 and metrics["faces"]["evaluated"] == 981 - left_out > 0
    assert len(metrics["all/confusion_matrix"]) == 6
