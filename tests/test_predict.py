"""Using a trained model: the Python API (`fer_attention.load_model`) and the `fer-predict` command."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from fer_attention.cli.common import checkpoint_argument, run_task
from fer_attention.data.preprocess import MIN_FACE, detect_faces, prepare_face, to_gray
from fer_attention.data.synthetic import render_synthetic_faces
from fer_attention.errors import CheckpointError, ConfigError
from fer_attention.inference import FERPredictor
from fer_attention.inference.predict import predict_files
from fer_attention.inference.prediction import FacePrediction, row_fields
from fer_attention.training.task import train

from .conftest import SHARED_DATA, TINY, compose_cfg, composition_line

BIN = Path(sys.executable).parent
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


_TINY_CKPT: dict[str, str] = {}


def tiny_checkpoint(tmp_path_factory) -> str:
    """Once per test session (test_export uses it too): a tiny model trained for two batches, its batch-norm statistics then recomputed on a few faces so
    that its outputs depend clearly on the face (after two batches they barely do), saved as a checkpoint
    next to the trained one."""
    from fer_attention.training.module import FERModule

    if "path" in _TINY_CKPT:
        return _TINY_CKPT["path"]
    run_dir = tmp_path_factory.mktemp("tiny")
    cfg = compose_cfg(
        run_dir, [*TINY, "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "test=false"]
    )
    path = train(cfg)["best_ckpt"]
    GlobalHydra.instance().clear()
    module = FERModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    x = torch.from_numpy(render_synthetic_faces(num_subjects=2, frames_per_sequence=1).images)
    for m in module.net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the one batch
    module.net.train()
    with torch.no_grad():
        module.net(x.float().div(255).unsqueeze(1))
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    ckpt["state_dict"] = module.state_dict()
    out = Path(path).with_name("recalibrated.ckpt")
    torch.save(ckpt, out)
    _TINY_CKPT["path"] = str(out)
    return str(out)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def model(ckpt) -> FERPredictor:
    from fer_attention import load_model

    return load_model(ckpt)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return render_synthetic_faces(num_subjects=2, frames_per_sequence=1).images[:6]


def check_result(r, box_expected: bool = False) -> None:
    assert list(r.probabilities) == CLASSES
    assert sum(r.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert r.label == max(r.probabilities, key=r.probabilities.get)
    assert (r.box is not None) == box_expected


def test_load_model_is_lazy_and_reads_the_checkpoint(model, ckpt):
    out = subprocess.run(
        [sys.executable, "-c", "import sys, fer_attention; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "False", out.stderr
    assert model.class_names == CLASSES and model.image_size == 48
    assert model.data_config["name"] == "synthetic"


def test_predict_face_crops_every_input_type(model, faces, tmp_path):
    path = tmp_path / "face.png"
    Image.fromarray(faces[0]).save(path)
    rgb = np.repeat(faces[0][:, :, None], 3, axis=2)
    inputs = [faces[0], rgb, faces[0].astype(np.float32) / 255.0, Image.fromarray(faces[0]), path, str(path)]
    results = model.predict(inputs, detect=False)
    assert len(results) == len(inputs) and all(len(r) == 1 for r in results)
    for [r] in results:
        check_result(r)
    # every form of the same face gives the same input, hence the same probabilities
    ref = np.array(list(results[0][0].probabilities.values()))
    for [r] in results[1:]:
        np.testing.assert_allclose(list(r.probabilities.values()), ref, atol=1e-6)
    # a single image gives a flat list
    [single] = model.predict(faces[1], detect=False)
    check_result(single)


def test_batched_equals_one_by_one_and_attention_maps(model, faces):
    batched = model.predict(list(faces), detect=False, return_attention=True, batch_size=4)
    for face, [r] in zip(faces, batched, strict=True):
        [one] = model.predict(face, detect=False)
        np.testing.assert_allclose(
            list(r.probabilities.values()), list(one.probabilities.values()), atol=1e-5
        )
        assert r.mask.shape == (48, 48) and 0 <= r.mask.min() and r.mask.max() <= 1
        assert r.lbp.shape == (48, 48) and 0 <= r.lbp.min() and r.lbp.max() <= 1
        np.testing.assert_allclose(r.face, face / 255.0, atol=1e-6)
    # preprocessing as training: the eager network on face / 255 gives the same probabilities
    with torch.no_grad():
        x = torch.from_numpy(faces).float().div(255).unsqueeze(1)
        probs = torch.softmax(model.net(x), dim=1).numpy()
    np.testing.assert_allclose([list(r.probabilities.values()) for [r] in batched], probs, atol=1e-5)
    assert np.ptp(probs, axis=0).max() > 0.01  # the test model's answers depend on the face


def test_larger_and_colour_images_are_resized_like_training(model, faces):
    big = np.kron(faces[2], np.ones((3, 3), dtype=np.uint8))  # 144 x 144
    [r] = model.predict(np.stack([big] * 3, axis=2), detect=False)
    check_result(r)
    assert to_gray(np.zeros((5, 7, 4), np.uint8)).shape == (5, 7)
    with pytest.raises(ValueError, match="image array"):
        to_gray(np.zeros((5, 7, 2), np.uint8))


def test_detect_finds_the_face_in_a_photo_and_none_in_an_empty_scene(model):
    from skimage import data

    # the astronaut photo (Eileen Collins, face around columns 170-270, rows 60-170) shifted into a
    # larger noisy scene: the detector must find that face, at its new place
    photo = np.asarray(Image.fromarray(data.astronaut()).convert("L"))
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 60, (640, 760), dtype=np.uint8)
    scene[100:612, 200:712] = photo
    results = model.predict(scene, detect=True)
    assert len(results) >= 1
    centres = [(r.box[0] + r.box[2] / 2, r.box[1] + r.box[3] / 2) for r in results]
    assert any(200 + 140 < cx < 200 + 300 and 100 + 60 < cy < 100 + 200 for cx, cy in centres), centres
    for r in results:
        check_result(r, box_expected=True)
    # no face: a flat grey picture and noise give no result at all, not a made-up box
    assert model.predict(np.full((200, 300), 128, np.uint8), detect=True) == []
    assert model.predict(rng.integers(0, 255, (240, 320), dtype=np.uint8), detect=True) == []
    assert detect_faces(np.zeros((10, 10), np.uint8)) == []


def test_auto_detect_takes_small_images_as_face_crops(model, faces):
    import cv2

    # detect="auto" (the default): an image up to about twice the input size (96 px here) is a face crop
    for side in (48, 64, 96):
        [r] = model.predict(cv2.resize(faces[0], (side, 2 * side // 3 if side == 96 else side)))
        check_result(r)
        assert r.detected is False and r.box is None
    [auto] = model.predict(faces[1])
    [crop] = model.predict(faces[1], detect=False)
    assert auto.probabilities == crop.probabilities
    # a larger image goes through the detector: a plain one has no face
    assert model.predict(np.full((80, 97), 128, np.uint8)) == []
    assert model.predict(np.full((80, 97), 128, np.uint8), detect="auto") == []
    with pytest.raises(ValueError, match="detect='maybe' must be auto, true or false"):
        model.predict(faces[0], detect="maybe")


def test_auto_detect_on_a_real_photo(model, ckpt, tmp_path):
    from skimage import data

    photo = data.astronaut()  # 512 x 512 RGB, one face (Eileen Collins), shipped with scikit-image
    [r] = model.predict(photo)
    check_result(r, box_expected=True)
    assert r.detected is True
    x, y, w, h = r.box
    assert 180 < x + w / 2 < 270 and 70 < y + h / 2 < 160 and 60 < w < 160
    # fer-predict with default settings: the photo through the detector, a crop taken whole
    Image.fromarray(photo).save(tmp_path / "astronaut.jpg")
    Image.fromarray(render_synthetic_faces(num_subjects=1, frames_per_sequence=1).images[0]).save(
        tmp_path / "crop.png"
    )
    cfg = predict_cfg(tmp_path, [f"ckpt_path={ckpt}", f"input={tmp_path}", "progress=false"])
    stats = run_task(predict_files, cfg)
    rows = {Path(r["file"]).name: r for r in map(json.loads, Path(stats["output"]).read_text().splitlines())}
    assert stats["files_ok"] == 2 and stats["faces"] == 2
    assert rows["astronaut.jpg"]["detected"] is True and rows["astronaut.jpg"]["w"] > 60
    assert rows["crop.png"]["detected"] is False and rows["crop.png"]["x"] is None


def test_min_face_is_one_value_for_dataset_crops_and_fer_predict(model, ckpt, tmp_path):
    """conf/predict.yaml's min_face is the one that data.face_crop=haar cuts dataset faces with, so a face
    is cut the same for training and for prediction; it reaches the detector, and a bad one is one line."""
    from skimage import data

    photo = data.astronaut()  # Eileen Collins's face is about 94 px of the 512 px picture
    gray = to_gray(photo)
    assert predict_cfg(tmp_path, ["input=x"]).min_face == MIN_FACE
    dataset_face, fell_back = prepare_face(gray, 48, "haar")
    [predict_face], [box] = model.faces_of_gray(gray, True)
    assert not fell_back and box is not None and np.array_equal(dataset_face, predict_face)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(photo).save(photos / "astronaut.png")
    # 0.25 of 512 px is larger than her face: fer-predict finds none
    args = [f"ckpt_path={ckpt}", f"input={photos}", "progress=false"]
    with pytest.raises(ValueError, match="no input could be processed"):
        predict_files(predict_cfg(tmp_path, [*args, "min_face=0.25"]))
    [row] = map(json.loads, (tmp_path / "run" / "predictions.jsonl").read_text().splitlines())
    assert row["error"] == "no face found" and row["detected"] is False
    with pytest.raises(ConfigError, match=r"^min_face=2.0 must be a number in \[0, 1\]") as info:
        predict_files(predict_cfg(tmp_path, [*args, "min_face=2"]))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("dataset", ["fer2013", "ckplus48"])
def test_real_dataset_images_get_a_label_with_default_settings(ckpt, dataset, tmp_path):
    """FER2013 and CK+48 images are 48x48 face crops: with the default detect=auto every one is labelled
    (with detect=true, Haar misses most of them)."""
    root = SHARED_DATA / dataset
    if not root.is_dir():
        pytest.skip(f"shared/data/{dataset} is not here")
    files = sorted(root.rglob("*.jpg" if dataset == "fer2013" else "*.png"))[::97][:24]
    d = tmp_path / "in"
    d.mkdir()
    for f in files:
        (d / f"{f.parent.name}_{f.name}").write_bytes(f.read_bytes())
    cfg = predict_cfg(tmp_path, [f"ckpt_path={ckpt}", f"input={d}", "progress=false"])
    stats = run_task(predict_files, cfg)
    rows = [json.loads(line) for line in Path(stats["output"]).read_text().splitlines()]
    assert stats["files_ok"] == len(files) == len(rows) and stats["files_failed"] == 0
    assert all(r["label"] in CLASSES and r["error"] is None and r["detected"] is False for r in rows)


def test_real_ckplus_face(model):
    root = SHARED_DATA / "ckplus48"
    files = sorted((root / "happy").glob("*.png"))[:2] if root.is_dir() else []
    if not files:
        pytest.skip("shared/data/ckplus48 is not here")
    for [r] in model.predict(files, detect=False):
        check_result(r)
    # an upscaled real face on a larger canvas: Haar usually finds it; either way the answer is clean
    face = np.asarray(Image.open(files[0]).convert("L").resize((192, 192)))
    canvas = np.full((320, 320), 100, np.uint8)
    canvas[64:256, 64:256] = face
    for r in model.predict(canvas, detect=True):
        check_result(r, box_expected=True)


def test_bad_inputs_raise_one_clear_error(model, tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.jpg: empty file"):
        model.predict(empty)
    with pytest.raises(ValueError, match="cannot read an image"):
        model.predict(3.5)


def test_foreign_checkpoint(tmp_path):
    from fer_attention import load_model

    bad = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hyper_parameters": {"lr": 1}}, bad)
    with pytest.raises(CheckpointError, match="not a fer-attention checkpoint"):
        load_model(bad)


# --- fer-predict ---------------------------------------------------------------------------------


@pytest.fixture
def image_dir(faces, tmp_path) -> Path:
    d = tmp_path / "images"
    (d / "sub").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(faces[i]).save(d / f"face{i}.png")
    Image.fromarray(np.repeat(faces[3][:, :, None], 3, axis=2)).save(d / "sub" / "colour.jpg")
    (d / "zero.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("this is not an image\n")
    (d / "notes.txt").write_text("ignored: not an image extension\n")
    return d


def predict_cfg(tmp_path, overrides):
    return compose_cfg(tmp_path / "run", overrides, config_name="predict")


@pytest.mark.parametrize("config_name", ["predict", "export"])
def test_the_checkpoint_is_ckpt_path_and_the_old_spelling_is_gone(config_name, tmp_path):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="ckpt"):
        compose_cfg(tmp_path / "run", ["ckpt=model.ckpt"], config_name=config_name)
    missing = compose_cfg(tmp_path / "run2", [], config_name=config_name)
    if config_name == "predict":  # fer-predict without a checkpoint answers with the shipped model
        assert missing.ckpt_path is None
        checkpoint_argument(missing)
        return
    with pytest.raises(ConfigError, match=r"^ckpt_path is required: ckpt_path=<checkpoints/epoch_NNN.ckpt"):
        checkpoint_argument(missing)


IMAGE_COLUMNS = ["file", "face", "x", "y", "w", "h", "detected", "label", *CLASSES, "error"]
VIDEO_COLUMNS = ["file", "frame", "time_s", "track", *IMAGE_COLUMNS[1:]]


def test_one_row_type_pins_the_columns_of_image_and_video_rows():
    probs = np.array([0.1, 0.0, 0.0, 0.6, 0.1, 0.1, 0.1], np.float32)
    face = FacePrediction.of_probabilities(probs, CLASSES, (1, 2, 30, 40), face_index=2, file="a.png")
    assert face.label == "happy" and face.detected is True and face.confidence == pytest.approx(0.6)
    assert row_fields(CLASSES) == IMAGE_COLUMNS and row_fields(CLASSES, video=True) == VIDEO_COLUMNS
    row = face.to_row(CLASSES)
    assert list(row) == IMAGE_COLUMNS
    expected = {"file": "a.png", "face": 2, "x": 1, "y": 2, "w": 30, "h": 40, "detected": True}
    assert {k: row[k] for k in expected} == expected
    assert row["label"] == "happy" and row["happy"] == 0.6 and row["error"] is None
    assert json.loads(json.dumps(row)) == row  # JSON-ready values
    frame = FacePrediction.of_probabilities(
        probs, CLASSES, None, file="v.mp4", frame=3, time_s=0.123456, track=1
    )
    row = frame.to_row(CLASSES, video=True, decimals=2)
    assert list(row) == VIDEO_COLUMNS and row["time_s"] == 0.1235 and row["angry"] == 0.1
    assert row["x"] is None and row["detected"] is False
    for video, columns in ((False, IMAGE_COLUMNS), (True, VIDEO_COLUMNS)):
        failed = FacePrediction.failure("b.mp4", "no face found", frame=7, detected=False).to_row(
            CLASSES, video
        )
        assert list(failed) == columns and failed["error"] == "no face found" and failed["detected"] is False
        assert all(failed[k] is None for k in ("face", "x", "label", *CLASSES))
    assert failed["frame"] == 7


def test_fer_predict_writes_rows_and_error_rows(ckpt, model, image_dir, tmp_path):
    cfg = predict_cfg(tmp_path, [f"ckpt_path={ckpt}", f"input={image_dir}", "detect=false", "progress=false"])
    stats = run_task(predict_files, cfg)
    out = tmp_path / "run" / "predictions.jsonl"  # the default: the run dir
    assert stats["output"] == str(out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [list(r) for r in rows] == [IMAGE_COLUMNS] * len(rows)  # error rows too
    by_file = {Path(r["file"]).name: r for r in rows}
    assert set(by_file) == {"face0.png", "face1.png", "face2.png", "colour.jpg", "zero.jpg", "text.jpg"}
    assert stats == {
        "files": 6,
        "files_ok": 4,
        "files_failed": 2,
        "faces": 4,
        "output": str(out),
        "model": str(ckpt),
    }
    for name in ("face0.png", "face1.png", "face2.png", "colour.jpg"):
        r = by_file[name]
        assert r["error"] is None and r["face"] == 0 and r["x"] is None and r["detected"] is False
        assert sum(r[c] for c in CLASSES) == pytest.approx(1.0, abs=1e-4)
        assert r["label"] == max(CLASSES, key=r.get)
    assert by_file["zero.jpg"]["error"] == "empty file (0 bytes)"
    assert by_file["text.jpg"]["error"].startswith("cannot decode image")
    assert by_file["text.jpg"]["label"] is None
    # the Python API's results are the same rows
    [face] = model.predict(image_dir / "face1.png", detect=False)
    row, written = face.to_row(CLASSES), by_file["face1.png"]
    assert {k: v for k, v in row.items() if k not in CLASSES} == {
        k: v for k, v in written.items() if k not in CLASSES
    }
    assert [row[c] for c in CLASSES] == pytest.approx([written[c] for c in CLASSES], abs=1e-5)


def test_fer_predict_csv_glob_detect_and_pictures(ckpt, image_dir, tmp_path):
    out = tmp_path / "out" / "pred.csv"
    cfg = predict_cfg(
        tmp_path,
        [
            f"ckpt_path={ckpt}",
            f"input={image_dir}/face*.png",
            f"output={out}",
            "progress=false",
            "save_attention=true",
            "save_annotated=true",
            "detect=false",
            "batch_size=2",
        ],
    )
    stats = run_task(predict_files, cfg)
    assert stats["faces"] == 3
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == IMAGE_COLUMNS
    assert len(rows) == 3 and all(r["error"] == "" and r["detected"] == "False" for r in rows)
    assert sum(float(rows[0][c]) for c in CLASSES) == pytest.approx(1.0, abs=1e-4)
    assert sorted(p.name for p in (out.parent / "attention").iterdir()) == [
        f"face{i}_face0.png" for i in range(3)
    ]
    assert (out.parent / "attention" / "face0_face0.png").stat().st_size > 1000
    assert len(list((out.parent / "annotated").glob("face*.png"))) == 3
    # forced detection on 48x48 crops: a face is found or the file is reported, the run never stops
    cfg = predict_cfg(
        tmp_path,
        [
            f"ckpt_path={ckpt}",
            f"input={image_dir}/face0.png",
            f"output={out}",
            "progress=false",
            "detect=true",
        ],
    )
    try:
        stats = run_task(predict_files, cfg)
        assert stats["files_ok"] == 1
    except SystemExit:
        assert next(csv.DictReader(open(out)))["error"] == "no face found"


def test_fer_predict_exits_1_when_nothing_worked(ckpt, image_dir, tmp_path, capsys):
    cfg = predict_cfg(
        tmp_path, [f"ckpt_path={ckpt}", f"input={image_dir}/*.jpg", "progress=false", "detect=false"]
    )
    with pytest.raises(SystemExit) as exc:
        run_task(predict_files, cfg)
    assert exc.value.code == 1
    assert "error: no input could be processed (2 files failed" in capsys.readouterr().err
    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["error"] for r in rows)


def test_fer_predict_foreign_checkpoint_is_one_line(image_dir, tmp_path, capsys):
    foreign = tmp_path / "foreign.ckpt"
    foreign.write_text("not a checkpoint")
    cfg = predict_cfg(tmp_path, [f"ckpt_path={foreign}", f"input={image_dir}", "progress=false"])
    with pytest.raises(SystemExit) as exc:
        run_task(predict_files, cfg)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: checkpoint {foreign}: not a readable PyTorch checkpoint (")
    assert len(err.strip().splitlines()) == 1


def test_fer_predict_command(ckpt, image_dir, tmp_path):
    """The installed command exits 0 when some inputs worked."""
    out = tmp_path / "p.jsonl"
    cmd = [
        str(BIN / "fer-predict"),
        f"input={image_dir}",
        f"output={out}",
        "detect=false",
        "progress=false",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    done = subprocess.run([*cmd, f"ckpt_path={ckpt}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "4 faces in 4 of 6 files (2 failed)" in done.stdout
    assert len(out.read_text().splitlines()) == 6


def test_ten_crop_prediction_is_the_mean_over_crops_and_a_bad_mode_is_one_line(ckpt, tmp_path):
    import torch

    from fer_attention.inference import FERPredictor
    from fer_attention.models.tta import ten_crop_logits

    class LeftColumn(torch.nn.Module):
        """Logits from the leftmost column: the mirrored crops see another column than the face."""

        def forward(self, x, return_mask=False):
            v = x[:, 0, :, 0].mean(1)
            logits = torch.stack([v**2, torch.full_like(v, 0.25)], dim=1)
            return (logits, None) if return_mask else logits

    ramp = np.tile(np.linspace(0, 255, 48).astype(np.uint8), (48, 1))[None]  # dark left, bright right
    plain = FERPredictor(LeftColumn(), ["a", "b"], 48).predict_faces(ramp)["probs"]
    ten = FERPredictor(LeftColumn(), ["a", "b"], 48, test_time_augmentation="tencrop").predict_faces(ramp)[
        "probs"
    ]
    x = torch.from_numpy(ramp).unsqueeze(1).float() / 255.0
    np.testing.assert_allclose(ten, torch.softmax(ten_crop_logits(LeftColumn(), x), 1).numpy(), atol=1e-6)
    assert plain.argmax(1).tolist() == [1] and ten.argmax(1).tolist() == [0]
    assert composition_line("predict", [f"ckpt_path={ckpt}", "test_time_augmentation=fivecrop"]) == (
        "Error merging override test_time_augmentation=fivecrop: Invalid value 'fivecrop', expected one of "
        "[tencrop]"
    )
