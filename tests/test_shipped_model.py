"""The model that ships with the package: `make model`'s builder on a tiny run, `load_model()` and
`fer-predict` with no checkpoint, a broken install's one line, and (with ../shared data) the committed
model's accuracy against its card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from experiments import ship_model
from fer_attention.data.synthetic import render_synthetic_faces
from fer_attention.errors import CheckpointError
from fer_attention.inference import load_model, shipped
from fer_attention.inference.predict import predict_files
from fer_attention.training.task import train

from .conftest import SHARED_DATA, TINY, compose_cfg


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny synthetic run turned into a shipped model in a temporary folder."""
    run_dir = tmp_path_factory.mktemp("ship_run")
    cfg = compose_cfg(run_dir, [*TINY, "trainer.limit_train_batches=3", "seed=0"])
    train(cfg)
    out = tmp_path_factory.mktemp("shipped")
    card = ship_model.build(run_dir, "experiments/results/demo", "make model", out)
    return run_dir, out, card


def test_the_builder_writes_fp16_weights_int8_onnx_a_card_and_its_picture(built):
    run_dir, out, card = built
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [card["files"]["fp16"], card["files"]["int8_onnx"], "card.json", "MODEL_CARD.md", "confusion.png"]
    )
    fp16 = torch.load(out / card["files"]["fp16"], map_location="cpu", weights_only=True)
    floats = [v for v in fp16["state_dict"].values() if torch.is_floating_point(v)]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert "optimizer_states" not in fp16
    # the card's test accuracy is the fp16 weights' own, within rounding of the training run's
    assert card["test_acc"] == pytest.approx(metrics["test/acc"], abs=0.05)
    assert card["classes"] == metrics["class_names"] and card["val_acc"] == metrics["val/acc_best"]
    assert sum(map(sum, card["confusion_matrix"])) == metrics["splits"]["test"]["faces"]
    assert set(card["per_class_recall"]) == set(card["classes"])
    text = (out / "MODEL_CARD.md").read_text()
    assert f"**{100 * card['test_acc']:.2f}%**" in text and "`make model`" in text
    assert (out / "confusion.png").stat().st_size > 1000


def test_load_model_with_no_path_is_the_shipped_model_and_says_so(built, monkeypatch):
    run_dir, out, card = built
    monkeypatch.setattr(shipped, "SHIPPED_DIR", out)
    from fer_attention.inference import predictor

    monkeypatch.setattr(predictor, "SHIPPED_DIR", out)
    monkeypatch.setattr(predictor, "shipped_card", lambda: shipped.shipped_card(out))
    model = load_model()
    assert model.model_name.startswith(f"shipped model {card['name']} (")
    assert model.class_names == card["classes"]
    faces = render_synthetic_faces(num_subjects=2, frames_per_sequence=1).images[:6]
    mine = model.predict_faces(list(faces))["probs"]
    original = load_model(json.loads((run_dir / "metrics.json").read_text())["best_ckpt"])
    theirs = original.predict_faces(list(faces))["probs"]
    assert np.allclose(mine, theirs, atol=2e-2)  # fp16 weights, fp32 compute


def test_fer_predict_without_a_checkpoint_names_the_model_that_answered(built, monkeypatch, tmp_path):
    _, out, card = built
    from fer_attention.inference import predictor

    monkeypatch.setattr(predictor, "SHIPPED_DIR", out)
    monkeypatch.setattr(predictor, "shipped_card", lambda: shipped.shipped_card(out))
    face = render_synthetic_faces(num_subjects=1, frames_per_sequence=1).images[0]
    Image.fromarray(face).save(tmp_path / "photo.png")
    cfg = compose_cfg(tmp_path / "run", [f"input={tmp_path / 'photo.png'}", "progress=false"], "predict")
    stats = predict_files(cfg)
    assert stats["faces"] == 1 and stats["model"] == shipped.describe(card)


def test_a_broken_install_says_in_one_line_how_to_rebuild(built, tmp_path):
    _, out, card = built
    broken = tmp_path / "shipped"
    shutil.copytree(out, broken)
    (broken / card["files"]["int8_onnx"]).unlink()
    with pytest.raises(
        CheckpointError,
        match=r"int8_onnx file .* is missing from this install: rebuild it with "
        r"`make model` in a checkout, or pass ckpt_path=",
    ):
        shipped.shipped_card(broken)
    (broken / "card.json").unlink()
    with pytest.raises(CheckpointError) as err:
        shipped.shipped_card(broken)
    assert str(err.value).startswith("the shipped model is missing from this install (")
    assert "\n" not in str(err.value)


def test_choose_picks_the_best_on_validation_never_test(tmp_path):
    for name, val, test in (("a", 0.60, 0.70), ("b", 0.65, 0.60), ("c", 0.62, 0.75)):
        job = tmp_path / name
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed={name}\n")
        (job / "metrics.json").write_text(json.dumps({"val/acc_best": val, "test/acc": test}))
    chosen = ship_model.choose([str(tmp_path)])
    assert Path(chosen["run"]).name == "b" and chosen["val_acc"] == 0.65 and len(chosen["candidates"]) == 3


def _job(root: Path, name: str, data: str, metrics: dict) -> None:
    (root / name / ".hydra").mkdir(parents=True)
    (root / name / ".hydra" / "config.yaml").write_text(f"data:\n  name: {data}\n")
    (root / name / "metrics.json").write_text(json.dumps(metrics))


def test_choose_weighs_a_model_trained_elsewhere_by_its_fer_eval_on_the_same_validation_faces(tmp_path):
    _job(tmp_path, "ferplus_job", "ferplus", {"val/acc_best": 0.83, "test/acc": 0.80})
    _job(tmp_path, "fer2013_on_ferplus_val", "ferplus", {"val/acc": 0.86, "trained_on": "fer2013"})
    chosen = ship_model.choose([str(tmp_path)])
    assert Path(chosen["run"]).name == "fer2013_on_ferplus_val" and chosen["validation"] == "ferplus"
    assert chosen["candidates"] == {"ferplus_job": 0.83, "fer2013_on_ferplus_val": 0.86}
    assert chosen["trained_on"] == {"fer2013_on_ferplus_val": "fer2013"}
    lines = ship_model.candidate_lines(chosen)
    assert lines[2].startswith("- `fer2013_on_ferplus_val`: 86.00% (a model trained on fer2013")
    assert lines[3] == "- `ferplus_job`: 83.00%"


def test_choose_refuses_candidates_validated_on_different_datasets(tmp_path):
    _job(tmp_path, "a", "ferplus", {"val/acc_best": 0.83})
    _job(tmp_path, "b", "fer2013", {"val/acc_best": 0.65})
    with pytest.raises(
        SystemExit,
        match=r"^error: the candidates were validated on different datasets \(a: ferplus, b: fer2013\)$",
    ):
        ship_model.choose([str(tmp_path)])


COMMITTED = shipped.SHIPPED_DIR / shipped.CARD_FILE


@pytest.mark.skipif(not COMMITTED.is_file(), reason="no model shipped in this checkout yet")
def test_the_committed_model_matches_its_card_on_the_real_test_faces(tmp_path):
    card = shipped.shipped_card()
    root = SHARED_DATA / card["data"]
    if not root.is_dir():
        pytest.skip(f"no {root}")
    overrides = [f"ckpt_path={shipped.shipped_model_path()}", f"data={card['data']}", f"data.root={root}"]
    cfg = compose_cfg(tmp_path / "eval", [*overrides, "trainer.accelerator=cpu"], "eval")
    from fer_attention.training.task import evaluate

    metrics = evaluate(cfg)
    assert 100 * metrics["test/acc"] == pytest.approx(100 * card["test_acc"], abs=0.5)
