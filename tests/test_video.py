"""Video input: frames, tracks, timestamps, the timeline picture, annotated copies and bad videos, on clips
of synthetic faces written with OpenCV here (no video files in the repository)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fer_attention.cli.common import run_task
from fer_attention.data import preprocess
from fer_attention.data.synthetic import render_synthetic_faces
from fer_attention.inference import FERPredictor
from fer_attention.inference import predict as predict_module
from fer_attention.inference import video as video_module
from fer_attention.inference.predict import predict_files
from fer_attention.inference.video import IoUTracker, box_iou, is_video

from .conftest import compose_cfg
from .test_predict import CLASSES, VIDEO_COLUMNS, tiny_checkpoint

FPS = 10.0
FRAMES = 12
FACE = 112  # Haar finds the synthetic faces from about 96 pixels up
SIZE = (320, 240)  # larger than twice the 48x48 input: detect=auto runs the detector


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def model(ckpt) -> FERPredictor:
    from fer_attention import load_model

    return load_model(ckpt)


def write_clip(
    path: Path, frames: int = FRAMES, faces: int = 2, size: tuple[int, int] = SIZE, face_px: int = FACE
) -> Path:
    """A clip of ``faces`` synthetic faces side by side on a grey background, drifting right by 2 pixels
    a frame (MJPG in .avi, mp4v in .mp4)."""
    rendered = render_synthetic_faces(num_subjects=1, frames_per_sequence=1, image_size=face_px, seed=3)
    fourcc = "mp4v" if path.suffix == ".mp4" else "MJPG"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, size)
    assert writer.isOpened()
    w, h = size
    rng = np.random.default_rng(0)
    for i in range(frames):
        frame = np.full((h, w), 90, np.uint8)
        frame += rng.integers(0, 6, frame.shape, dtype=np.uint8)
        for k in range(faces):
            x = min(10 + 2 * i + k * (w // 2), w - face_px)
            y = (h - face_px) // 2
            frame[y : y + face_px, x : x + face_px] = rendered.images[3 * k]
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "two_faces.avi")


def face_rows(rows):
    return [r for r in rows if r["error"] is None]


def test_tracker_follows_boxes_and_ends_lost_tracks():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    t = IoUTracker(iou=0.3, max_missed=1)
    assert t.update([(0, 0, 50, 50), (100, 0, 50, 50)]) == [0, 1]
    assert t.update([(104, 2, 50, 50), (3, 1, 50, 50)]) == [1, 0]  # order of the boxes does not matter
    assert t.update([(6, 2, 50, 50)]) == [0]  # track 1 missed once: kept
    assert t.update([(200, 0, 50, 50), (9, 2, 50, 50)]) == [2, 0]  # a new face
    assert t.update([(9, 2, 50, 50)]) == [0]
    assert t.update([(108, 2, 50, 50)]) == [3]  # track 1 missed twice: ended, the face gets a new id
    assert is_video("a/b.MP4") and is_video("x.avi") and not is_video("x.png") and not is_video(".mp4")


def test_predict_video_frames_tracks_times_and_timeline(model, clip, tmp_path):
    timeline = tmp_path / "timeline.png"
    rows = model.predict_video(clip, stride=2, timeline=timeline)
    faces = face_rows(rows)
    assert len(rows) == len(faces), rows  # no error row
    assert all(list(r) == VIDEO_COLUMNS for r in rows)
    frames = sorted({r["frame"] for r in faces})
    assert frames == list(range(0, FRAMES, 2))  # every 2nd frame
    for r in faces:
        assert r["time_s"] == pytest.approx(r["frame"] / FPS, abs=1e-3)
        assert r["file"] == str(clip) and r["detected"] is True
        assert sum(r[c] for c in CLASSES) == pytest.approx(1.0, abs=1e-4)
        assert r["label"] == max(CLASSES, key=r.get)
        assert r["w"] >= 60 and 0 <= r["x"] < SIZE[0] and 0 <= r["y"] < SIZE[1]
    # Haar finds both faces in (nearly) every frame; the left one is always track 0, the right one track 1
    per_frame = {f: [r for r in faces if r["frame"] == f] for f in frames}
    assert sum(len(v) == 2 for v in per_frame.values()) >= len(frames) - 1
    for r in faces:
        assert r["track"] == (0 if r["x"] < SIZE[0] // 2 else 1), r
        assert r["face"] == (0 if len(per_frame[r["frame"]]) == 1 else int(r["x"] > SIZE[0] // 2))
    # the boxes move right with the faces
    left = [r["x"] for r in faces if r["track"] == 0]
    assert left[-1] > left[0]
    # the timeline: one panel per track
    with Image.open(timeline) as im:
        width, height = im.size
    assert width >= 800 and height >= 400 and timeline.stat().st_size > 10_000
    # stride 1: every frame
    assert sorted({r["frame"] for r in face_rows(model.predict_video(clip))}) == list(range(FRAMES))


def test_video_of_face_crops_and_annotated_copy(model, tmp_path):
    small = write_clip(tmp_path / "crop.mp4", frames=5, faces=1, size=(64, 64), face_px=64)
    out = tmp_path / "annotated.mp4"
    rows = model.predict_video(small, annotated=out)  # 64x64 <= 2 x 48: face crops, no detector
    assert [r["frame"] for r in rows] == [0, 1, 2, 3, 4]
    assert all(r["track"] == 0 and r["detected"] is False and r["x"] is None for r in rows)
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (64, 64, 3)
    # detect=true forces the detector even on small frames: on a clip with no face at all it must find
    # none and say so in one error row, not label the frame as a face
    blank = tmp_path / "blank.mp4"
    writer = cv2.VideoWriter(str(blank), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 64))
    for _ in range(5):
        writer.write(np.full((64, 64, 3), 128, np.uint8))
    writer.release()
    rows = model.predict_video(blank, detect=True, stride=2)
    assert [(r["error"], r["detected"]) for r in rows] == [("no face found in 3 labelled frames", False)]


def test_bad_videos_give_error_rows(model, clip, tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_text("not a video\n")
    [row] = model.predict_video(garbage)
    assert row["error"].startswith("cannot open video garbage.mp4") and row["label"] is None
    assert list(row) == VIDEO_COLUMNS  # error rows have every column
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    [row] = model.predict_video(empty)
    assert row["error"] == "cannot read video empty.avi (empty file, 0 bytes)"
    [row] = model.predict_video(tmp_path / "missing.avi")
    assert row["error"].startswith("cannot read video missing.avi")
    # truncated: the frames that decoded keep their rows, then one row naming the file and the frame
    full = write_clip(tmp_path / "long.avi", frames=30)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    rows = model.predict_video(cut, stride=3)
    *faces, last = rows
    assert faces and all(r["error"] is None for r in faces)
    assert last["error"].startswith("cut.avi: decoding stopped at frame ")
    assert last["frame"] > max(r["frame"] for r in faces) and last["frame"] < 30
    assert f"frame {last['frame']} of 30" in last["error"]


def test_fer_predict_videos_among_images(ckpt, clip, tmp_path, monkeypatch):
    """Images and videos in one folder; ``detect`` is parsed once per run, not again per file or video."""
    parsed, parse_detect = [], preprocess.parse_detect

    def parse_once(detect):
        parsed.append(detect)
        return parse_detect(detect)

    for module in (preprocess, predict_module, video_module):
        monkeypatch.setattr(module, "parse_detect", parse_once)
    d = tmp_path / "inputs"
    d.mkdir()
    (d / "clip.avi").write_bytes(clip.read_bytes())
    (d / "broken.mp4").write_text("not a video")
    blank = cv2.VideoWriter(str(d / "blank.avi"), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    for _ in range(3):
        blank.write(np.full((SIZE[1], SIZE[0], 3), 128, np.uint8))
    blank.release()
    face = render_synthetic_faces(num_subjects=1, frames_per_sequence=1).images[0]
    Image.fromarray(face).save(d / "face.png")
    out = tmp_path / "out" / "rows.csv"
    cfg = compose_cfg(
        tmp_path / "run",
        [
            f"ckpt_path={ckpt}",
            f"input={d}",
            f"output={out}",
            "progress=false",
            "video.stride=3",
            "save_annotated=true",
        ],
        config_name="predict",
    )
    stats = run_task(predict_files, cfg)
    assert stats["files"] == 4 and stats["files_ok"] == 2 and stats["files_failed"] == 2
    assert parsed == ["auto"]
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == VIDEO_COLUMNS
    by_name: dict[str, list] = {}
    for r in rows:
        by_name.setdefault(Path(r["file"]).name, []).append(r)
    assert by_name["broken.mp4"][0]["error"].startswith("cannot open video broken.mp4")
    assert by_name["blank.avi"][0]["error"] == "no face found in 1 labelled frames"
    [img] = by_name["face.png"]  # a 48x48 crop: detect=auto takes it whole
    assert img["frame"] == "" and img["detected"] == "False" and img["error"] == ""
    vid = by_name["clip.avi"]
    assert sorted({int(r["frame"]) for r in vid}) == [0, 3, 6, 9]
    assert {r["track"] for r in vid} == {"0", "1"} and all(r["detected"] == "True" for r in vid)
    assert stats["faces"] == len(vid) + 1
    assert (out.parent / "timelines" / "clip.png").stat().st_size > 10_000
    assert not (out.parent / "timelines" / "blank.png").exists()
    cap = cv2.VideoCapture(str(out.parent / "annotated" / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES  # every frame, labels held between strides
    cap.release()
    assert (out.parent / "annotated" / "face.png").is_file()
    # JSON lines: a single video file as the input
    cfg = compose_cfg(
        tmp_path / "run2", [f"ckpt_path={ckpt}", f"input={clip}", "progress=false"], config_name="predict"
    )
    stats = run_task(predict_files, cfg)
    lines = [json.loads(x) for x in (tmp_path / "run2" / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == stats["faces"] and {r["frame"] for r in lines} == set(range(FRAMES))
    assert isinstance(lines[0]["time_s"], float) and lines[0]["track"] in (0, 1)
    assert all(list(r) == VIDEO_COLUMNS for r in lines)
