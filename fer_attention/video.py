"""Video input: every ``stride``-th frame labelled, faces followed across frames by box overlap.

.. code-block:: python

    from fer_attention import load_model

    model = load_model("checkpoints/epoch_021.ckpt")
    rows = model.predict_video("clip.mp4", stride=2, timeline="clip.png")  # one dict per face per frame

Frames are decoded with OpenCV's ``VideoCapture`` (any file the opencv wheel's FFmpeg reads; no ffmpeg
binary needed), converted to 8-bit gray with ITU-R 601-2 luma (OpenCV's fixed-point ``BGR2GRAY``, within one
grey level of PIL's ``L``) and prepared as still images are (:meth:`FERPredictor.faces`, the same
``detect`` modes: with ``auto`` a video whose frames are no larger than about twice the model's input size
is taken as a video of one face crop). Skipped frames are only grabbed, not decoded to pixels. Faces of
several frames run through the network together in batches.

Tracking (:class:`IoUTracker`): each face of a labelled frame joins the track whose last box overlaps it
most (intersection over union at least ``iou``, greedily, best overlaps first); a face that joins none
starts a new track; a track not seen for more than ``max_missed`` labelled frames ends. Track ids count
from 0 in order of appearance. Face crops (no boxes) are all track 0.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_attention.data.preprocess import parse_detect
from fer_attention.reporting.annotate import draw_faces

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".avi",
        ".mkv",
        ".webm",
        ".mpg",
        ".mpeg",
        ".wmv",
        ".flv",
        ".3gp",
        ".ogv",
        ".mts",
        ".m2ts",
        ".ts",
        ".mjpeg",
    }
)
VIDEO_KEYS = ("frame", "time_s", "track")
BOX_KEYS = ("x", "y", "w", "h")
# frames whose decoded count falls short of the container's frame count by more than this (and 1%) are
# reported as a truncated video (container counts are estimates for some formats)
FRAME_COUNT_SLACK = 2
# frames held before running the network: faces of several frames go through it as one batch
MAX_PENDING_FRAMES = 64
DEFAULT_FPS = 25.0


def is_video(path: Path | str) -> bool:
    """Whether ``path``'s name has a video extension (:data:`VIDEO_EXTENSIONS`, any case) and is not
    hidden (no leading ``.``); the file itself is not opened."""
    name = os.path.basename(str(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    box: tuple[int, int, int, int]
    missed: int = 0


class IoUTracker:
    """Greedy IoU matching of each labelled frame's boxes to the tracks of the frames before.

    Args:
        iou: the least intersection over union with a track's last box that continues the track.
        max_missed: a track not matched in more than this many consecutive updates ends.
    """

    def __init__(self, iou: float = 0.3, max_missed: int = 5) -> None:
        self.iou = float(iou)
        self.max_missed = int(max_missed)
        self.tracks: dict[int, _Track] = {}
        self.next_id = 0

    def update(self, boxes: list[tuple[int, int, int, int]]) -> list[int]:
        """Match one labelled frame's boxes to the tracks, best overlaps first.

        Args:
            boxes: the frame's ``(x, y, w, h)`` boxes.

        Returns:
            The track id of each box, in their order; a box that matches no track gets a new id (ids
            count from 0 in order of appearance).
        """
        pairs = sorted(
            ((box_iou(b, t.box), i, tid) for i, b in enumerate(boxes) for tid, t in self.tracks.items()),
            key=lambda p: (-p[0], p[1], p[2]),
        )
        ids: list[int | None] = [None] * len(boxes)
        used: set[int] = set()
        for overlap, i, tid in pairs:
            if overlap < self.iou or overlap <= 0:
                break
            if ids[i] is None and tid not in used:
                ids[i] = tid
                used.add(tid)
        for tid in list(self.tracks):
            if tid not in used:
                self.tracks[tid].missed += 1
                if self.tracks[tid].missed > self.max_missed:
                    del self.tracks[tid]
        for i, box in enumerate(boxes):
            if ids[i] is None:
                ids[i] = self.next_id
                self.next_id += 1
            self.tracks[ids[i]] = _Track(tuple(int(v) for v in box))
        return [int(i) for i in ids]


def error_row(
    path: Path | str,
    reason: str,
    class_names: list[str],
    frame: int | None = None,
    detected: bool | None = None,
) -> dict[str, Any]:
    """A row with every key of a face row, ``error`` set and no prediction."""
    row: dict[str, Any] = {"file": str(path), "frame": frame, "time_s": None, "track": None, "face": None}
    row.update(dict.fromkeys(BOX_KEYS))
    row.update({"detected": detected, "label": None, **dict.fromkeys(class_names), "error": reason})
    return row


def open_video(path: Path) -> tuple[Any, float | None, int | None]:
    """``(capture, fps, frame count)``; ValueError with the reason when the file cannot be opened."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ValueError(f"cannot read video {path.name} ({err.strerror or err})") from None
    if size == 0:
        raise ValueError(f"cannot read video {path.name} (empty file, 0 bytes)")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise ValueError(
            f"cannot open video {path.name} (not a format OpenCV can read, or truncated before its index)"
        )
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    return (
        cap,
        float(fps) if fps and 0 < fps < 1000 else None,
        int(count) if count and 0 < count < 1e9 else None,
    )


def open_writer(path: Path, fps: float, size: tuple[int, int]) -> tuple[Any, Path]:
    """A ``cv2.VideoWriter`` (mp4v for .mp4, MJPG otherwise; MJPG .avi when mp4v cannot be written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = "mp4v" if path.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened() and fourcc != "MJPG":
        writer.release()
        path = path.with_suffix(".avi")
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        writer.release()
        raise ValueError(f"cannot write the annotated video {path}")
    return writer, path


def predict_video(
    model,
    path: str | Path,
    stride: int = 1,
    detect: bool | str = "auto",
    batch_size: int = 64,
    annotated: str | Path | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    iou: float = 0.3,
    max_missed: int = 5,
    decimals: int = 6,
) -> Iterator[dict[str, Any]]:
    """Rows of every face in every ``stride``-th frame of the video ``path`` (see the module docstring).

    A generator: frames are read and labelled as it is iterated. Bad input gives rows with ``error`` set
    instead of an exception: a video that cannot be opened (one row); a video with no face (one row); a
    video that stops decoding early (the decoded frames' rows, then one row naming the frame).

    Args:
        model: a :class:`~fer_attention.inference.FERPredictor` (from
            :func:`~fer_attention.inference.load_model`).
        path: the video file.
        stride: label every ``stride``-th frame (values below 1 count as 1).
        detect: ``"auto"``, True or False, as for images; with ``"auto"`` the first frame's size decides
            for the whole video.
        batch_size: faces per forward pass.
        annotated: also write a copy of every frame with the boxes, track ids, labels and probabilities
            of the latest labelled frame drawn (mp4v for .mp4/.m4v/.mov, MJPG otherwise; MJPG .avi when
            mp4v cannot be written; a warning and no copy when neither can).
        progress: called with ``(frames read, frame count or None)`` after each frame.
        iou: see :class:`IoUTracker`.
        max_missed: see :class:`IoUTracker`.
        decimals: decimal places of the probabilities.

    Yields:
        One dict per face per labelled frame: ``file``, ``frame`` (0-based index in the video),
        ``time_s`` (frame / fps), ``track``, ``face`` (index within the frame, left to right), the box
        ``x``, ``y``, ``w``, ``h`` (None for face crops), ``detected``, ``label``, one probability per
        class, ``error`` (None); error rows have the same keys.

    Raises:
        ValueError: ``detect`` is invalid (on the first iteration).
    """
    path = Path(path)
    stride = max(1, int(stride))
    batch_size = max(1, int(batch_size))
    detect = parse_detect(detect)
    classes = model.class_names
    try:
        cap, fps, total = open_video(path)
    except ValueError as err:
        yield error_row(path, str(err), classes)
        return
    tracker = IoUTracker(iou, max_missed)
    writer = None
    pending: list[dict[str, Any]] = []
    drawn: list[dict[str, Any]] = []  # rows of the latest labelled frame, for the annotated copy
    counts = {"faces": 0, "labelled": 0}
    crop_mode: bool | None = None

    def flush() -> Iterator[dict[str, Any]]:
        nonlocal drawn
        crops = [c for e in pending for c in e["crops"]]
        probs = model.predict_faces(np.stack(crops), batch_size=batch_size)["probs"] if crops else None
        k = 0
        for e in pending:
            if e["labelled"]:
                rows = []
                for j, (box, track) in enumerate(zip(e["boxes"], e["tracks"], strict=True)):
                    p = probs[k]
                    k += 1
                    row = {
                        "file": str(path),
                        "frame": e["index"],
                        "time_s": round(e["time"], 4),
                        "track": track,
                        "face": j,
                        **dict(zip(BOX_KEYS, box if box is not None else (None,) * 4, strict=True)),
                        "detected": box is not None,
                        "label": classes[int(np.argmax(p))],
                        **{c: round(float(v), decimals) for c, v in zip(classes, p, strict=True)},
                        "error": None,
                    }
                    rows.append(row)
                    yield row
                counts["faces"] += len(rows)
                drawn = rows
            if writer is not None and e["frame"] is not None:
                writer.write(draw_faces(e["frame"], drawn))
        pending.clear()

    index = 0
    failure: str | None = None
    try:
        while True:
            labelled = index % stride == 0
            try:
                if labelled or writer is not None:
                    ok, frame = cap.read()
                else:
                    ok, frame = cap.grab(), None
            except cv2.error as err:
                failure = f"decoding failed at frame {index} ({str(err).strip().splitlines()[-1][:120]})"
                break
            if not ok:
                break
            if annotated is not None and writer is None and frame is not None:
                try:
                    writer, written = open_writer(
                        Path(annotated), fps or DEFAULT_FPS, (frame.shape[1], frame.shape[0])
                    )
                    log.info("%s: annotated copy -> %s", path, written)
                except ValueError as err:
                    log.warning("%s: %s", path, err)
                    annotated = None
            time_s = index / fps if fps else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            entry: dict[str, Any] = {
                "index": index,
                "time": time_s,
                "labelled": labelled,
                "crops": [],
                "boxes": [],
                "tracks": [],
                "frame": frame if writer is not None else None,
            }
            if labelled:
                counts["labelled"] += 1
                gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                if crop_mode is None:
                    crop_mode = detect is False or (detect == "auto" and model.is_face_crop(gray.shape))
                crops, boxes = model.faces_of_gray(gray, False if crop_mode else True)
                entry["crops"], entry["boxes"] = crops, boxes
                entry["tracks"] = [0] * len(boxes) if crop_mode else tracker.update(list(boxes))
            pending.append(entry)
            index += 1
            if progress is not None:
                progress(index, total)
            if sum(len(e["crops"]) for e in pending) >= batch_size or len(pending) >= MAX_PENDING_FRAMES:
                yield from flush()
        yield from flush()
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    decoded = index
    if failure is None and total is not None and total - decoded > max(FRAME_COUNT_SLACK, 0.01 * total):
        failure = f"decoding stopped at frame {decoded} of {total} (truncated or corrupt video)"
    if failure is not None:
        detail = (
            "; the frames before it keep their rows"
            if counts["faces"]
            else f"; no face in the {counts['labelled']} labelled frames before it"
        )
        yield error_row(path, f"{path.name}: {failure}{detail}", classes, frame=decoded)
    elif decoded == 0:
        yield error_row(path, f"{path.name}: no frame could be decoded", classes)
    elif counts["faces"] == 0:
        yield error_row(
            path, f"no face found in {counts['labelled']} labelled frames", classes, detected=False
        )
