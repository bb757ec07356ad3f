"""Video input: every ``stride``-th frame labelled, faces followed across frames by box overlap.

.. code-block:: python

    from fer_attention import load_model

    model = load_model("checkpoints/epoch_021.ckpt")
    rows = model.predict_video("clip.mp4", stride=2, timeline="clip.png")  # one dict per face per frame

One video's way from file to rows, in the order of this module: its file (:func:`is_video`,
:func:`open_video`), its frames (:class:`FrameReader`) and the annotated copy written beside it
(:class:`AnnotatedCopy`), the faces of each labelled frame and their tracks (:class:`FrameFaces`,
:class:`IoUTracker`), the network over several frames' faces at once (:func:`label_frames`), and the
rows (:func:`video_predictions`, :func:`predict_video`).

Frames are decoded with OpenCV's ``VideoCapture`` (any file the opencv wheel's FFmpeg reads; no ffmpeg
binary needed; the copy is written with ``VideoWriter``), converted to 8-bit gray with ITU-R 601-2 luma
(OpenCV's fixed-point ``BGR2GRAY``, within one grey level of PIL's ``L``) and prepared as still images are
(:meth:`FERPredictor.faces`, the same ``detect`` modes: with ``auto`` a video whose frames are no larger
than about twice the model's input size is taken as a video of one face crop). Skipped frames are only
grabbed, not decoded to pixels. Faces of several frames run through the network together in batches. Each
face is a :class:`~fer_attention.inference.prediction.FacePrediction` (:func:`video_predictions`), its row
that :meth:`~fer_attention.inference.prediction.FacePrediction.to_row` (:func:`predict_video`).

Tracking (:class:`IoUTracker`): each face of a labelled frame joins the track whose last box overlaps it
most (intersection over union at least ``iou``, greedily, best overlaps first); a face that joins none
starts a new track; a track not seen for more than ``max_missed`` labelled frames ends. Track ids count
from 0 in order of appearance. Face crops (no boxes) are all track 0.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_attention.data.preprocess import Box, parse_detect
from fer_attention.inference.prediction import FacePrediction
from fer_attention.viz.annotate import draw_faces

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
DEFAULT_FPS = 25.0
# frames whose decoded count falls short of the container's frame count by more than this (and 1%) are
# reported as a truncated video (container counts are estimates for some formats)
FRAME_COUNT_SLACK = 2
# frames held before running the network: faces of several frames go through it as one batch
MAX_PENDING_FRAMES = 64


def is_video(path: Path | str) -> bool:
    """Whether ``path``'s name has a video extension (:data:`VIDEO_EXTENSIONS`, any case) and is not
    hidden (no leading ``.``); the file itself is not opened."""
    name = os.path.basename(str(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def opens_as_video(path: Path) -> bool:
    """Whether OpenCV opens ``path`` as a video and reads a frame of it (whatever its extension)."""
    cap = cv2.VideoCapture(str(path))
    try:
        return bool(cap.isOpened()) and cap.grab()
    finally:
        cap.release()


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


class AnnotatedCopy:
    """The annotated copy of a video: opened at the first decoded frame, then every frame with the faces
    of the latest labelled frame drawn (no copy, and a warning, when no writer can be opened).

    Args:
        path: where the copy goes, or None for no copy.
        video: the video's file, named in the log lines.
        fps: the video's frame rate (``DEFAULT_FPS`` when unknown).
    """

    def __init__(self, path: str | Path | None, video: Path, fps: float | None) -> None:
        self.path = None if path is None else Path(path)
        self.video = video
        self.fps = fps or DEFAULT_FPS
        self.writer: Any = None
        self.rows: list[dict[str, Any]] = []  # the latest labelled frame's rows, drawn on every frame

    @property
    def is_open(self) -> bool:
        """Whether frames are being written (then every frame is decoded, not only the labelled ones)."""
        return self.writer is not None

    def start(self, image: np.ndarray) -> None:
        """Open the writer at the size of ``image``, the first decoded frame; nothing once opened or failed."""
        if self.path is None or self.writer is not None:
            return
        try:
            self.writer, written = open_writer(self.path, self.fps, (image.shape[1], image.shape[0]))
            log.info("%s: annotated copy -> %s", self.video, written)
        except ValueError as err:
            log.warning("%s: %s", self.video, err)
            self.path = None

    def write(self, image: np.ndarray | None, rows: list[dict[str, Any]] | None) -> None:
        """Write one frame (nothing when ``image`` is None), with ``rows`` drawn (a labelled frame's) or the
        latest labelled frame's (None)."""
        if rows is not None:
            self.rows = rows
        if self.writer is not None and image is not None:
            self.writer.write(draw_faces(image, self.rows))

    def close(self) -> None:
        """Release the writer."""
        if self.writer is not None:
            self.writer.release()


class FrameReader:
    """The frames of an open video, in order; a frame that is not labelled is only grabbed, not decoded,
    unless an annotated copy is being written. After the iteration, ``decoded`` frames were read and
    ``failure`` says why decoding broke off (None when the video simply ended).

    Args:
        cap: an open ``cv2.VideoCapture``.
        fps: the video's frame rate, or None (times then come from the decoder's position).
        stride: label every ``stride``-th frame.
    """

    def __init__(self, cap: Any, fps: float | None, stride: int) -> None:
        self.cap = cap
        self.fps = fps
        self.stride = stride
        self.decoded = 0
        self.failure: str | None = None

    def frames(self, copy: AnnotatedCopy) -> Iterator[tuple[int, float, bool, np.ndarray | None]]:
        """``(index, time_s, labelled, pixels or None)`` for every frame until the video ends or breaks."""
        while True:
            index = self.decoded
            labelled = index % self.stride == 0
            try:
                if labelled or copy.is_open:
                    ok, image = self.cap.read()
                else:
                    ok, image = self.cap.grab(), None
            except cv2.error as err:
                self.failure = f"decoding failed at frame {index} ({str(err).strip().splitlines()[-1][:120]})"
                return
            if not ok:
                return
            time_s = index / self.fps if self.fps else self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            self.decoded += 1
            yield index, time_s, labelled, image


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


@dataclass
class PendingFrame:
    """A frame read and waiting for the network: its faces and, for the annotated copy, its pixels."""

    index: int
    time_s: float
    labelled: bool
    crops: list[np.ndarray] = field(default_factory=list)
    boxes: list[Box | None] = field(default_factory=list)
    tracks: list[int] = field(default_factory=list)
    image: np.ndarray | None = None


class FrameFaces:
    """The faces of each labelled frame and their track ids. With ``detect="auto"`` the first labelled
    frame's size decides for the whole video whether frames are face crops (all track 0).

    Args:
        model: the :class:`~fer_attention.inference.FERPredictor`.
        detect: ``"auto"``, True or False, already parsed.
        tracker: follows the detected faces across frames.
    """

    def __init__(self, model, detect: bool | str, tracker: IoUTracker) -> None:
        self.model = model
        self.detect = detect
        self.tracker = tracker
        self.crop_mode: bool | None = None
        self.labelled = 0  # labelled frames seen

    def find(self, frame: PendingFrame, image: np.ndarray) -> None:
        """Fill ``frame``'s crops, boxes and tracks from its pixels (BGR or gray)."""
        self.labelled += 1
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if self.crop_mode is None:
            self.crop_mode = self.detect is False or (
                self.detect == "auto" and self.model.is_face_crop(gray.shape)
            )
        frame.crops, frame.boxes = self.model.faces_of_gray(gray, not self.crop_mode)
        frame.tracks = [0] * len(frame.boxes) if self.crop_mode else self.tracker.update(list(frame.boxes))


def frame_batches(
    reader: FrameReader,
    copy: AnnotatedCopy,
    finder: FrameFaces,
    batch_size: int,
    progress: Callable[[int, int | None], None] | None,
    total: int | None,
) -> Iterator[list[PendingFrame]]:
    """The frames read, with the faces of the labelled ones, in batches of about ``batch_size`` faces (at
    most ``MAX_PENDING_FRAMES`` frames), calling ``progress(frames read, total)`` after each frame."""
    pending: list[PendingFrame] = []
    for index, time_s, labelled, image in reader.frames(copy):
        if image is not None:
            copy.start(image)
        frame = PendingFrame(index, time_s, labelled, image=image if copy.is_open else None)
        if labelled:
            finder.find(frame, image)
        pending.append(frame)
        if progress is not None:
            progress(index + 1, total)
        if sum(len(f.crops) for f in pending) >= batch_size or len(pending) >= MAX_PENDING_FRAMES:
            yield pending
            pending = []
    if pending:
        yield pending


def label_frames(
    model, frames: list[PendingFrame], batch_size: int, file: str
) -> list[list[FacePrediction] | None]:
    """The predictions of each frame's faces, all frames' faces run through the network together.

    Returns:
        Per frame, its faces' :class:`~fer_attention.inference.prediction.FacePrediction` (left to right), or None for
        a frame that is not labelled.
    """
    crops = [c for f in frames for c in f.crops]
    probs = model.predict_faces(np.stack(crops), batch_size=batch_size)["probs"] if crops else None
    labelled: list[list[FacePrediction] | None] = []
    k = 0
    for f in frames:
        if not f.labelled:
            labelled.append(None)
            continue
        faces = []
        for j, (box, track) in enumerate(zip(f.boxes, f.tracks, strict=True)):
            faces.append(
                FacePrediction.of_probabilities(
                    probs[k],
                    model.class_names,
                    box,
                    face_index=j,
                    file=file,
                    frame=f.index,
                    time_s=f.time_s,
                    track=track,
                )
            )
            k += 1
        labelled.append(faces)
    return labelled


def closing_failure(
    path: Path, reader: FrameReader, total: int | None, faces: int, labelled: int
) -> FacePrediction | None:
    """The error row that ends a video's rows: decoding broke off or stopped short of the frame count,
    no frame decoded, or no face found in ``labelled`` frames; None when ``faces`` were found in a whole
    video."""
    failure, decoded = reader.failure, reader.decoded
    if failure is None and total is not None and total - decoded > max(FRAME_COUNT_SLACK, 0.01 * total):
        failure = f"decoding stopped at frame {decoded} of {total} (truncated or corrupt video)"
    if failure is not None:
        detail = (
            "; the frames before it keep their rows"
            if faces
            else f"; no face in the {labelled} labelled frames before it"
        )
        return FacePrediction.failure(str(path), f"{path.name}: {failure}{detail}", frame=decoded)
    if decoded == 0:
        return FacePrediction.failure(str(path), f"{path.name}: no frame could be decoded")
    if faces == 0:
        return FacePrediction.failure(
            str(path), f"no face found in {labelled} labelled frames", detected=False
        )
    return None


def video_predictions(
    model,
    path: str | Path,
    stride: int = 1,
    detect: bool | str = "auto",
    batch_size: int = 64,
    annotated: str | Path | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    iou: float = 0.3,
    max_missed: int = 5,
) -> Iterator[FacePrediction]:
    """:func:`predict_video` as :class:`~fer_attention.inference.prediction.FacePrediction` (rows: their
    ``to_row(model.class_names, video=True)``); the arguments are :func:`predict_video`'s, ``detect``
    already parsed (:func:`~fer_attention.data.preprocess.parse_detect`)."""
    path = Path(path)
    try:
        cap, fps, total = open_video(path)
    except ValueError as err:
        yield FacePrediction.failure(str(path), str(err))
        return
    reader = FrameReader(cap, fps, max(1, int(stride)))
    copy = AnnotatedCopy(annotated, path, fps)
    finder = FrameFaces(model, detect, IoUTracker(iou, max_missed))
    batch_size = max(1, int(batch_size))
    faces = 0
    try:
        for frames in frame_batches(reader, copy, finder, batch_size, progress, total):
            for frame, predictions in zip(
                frames, label_frames(model, frames, batch_size, str(path)), strict=True
            ):
                if predictions is not None:
                    faces += len(predictions)
                    yield from predictions
                    copy.write(frame.image, [p.to_row(model.class_names, video=True) for p in predictions])
                else:
                    copy.write(frame.image, None)
    finally:
        cap.release()
        copy.close()
    end = closing_failure(path, reader, total, faces, finder.labelled)
    if end is not None:
        yield end


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
        class, ``error`` (None); error rows have the same keys (:meth:`FacePrediction.to_row
        <fer_attention.inference.prediction.FacePrediction.to_row>` with ``video=True``).

    Raises:
        ValueError: ``detect`` is invalid (on the first iteration).
    """
    detect = parse_detect(detect)
    predictions = video_predictions(
        model, path, stride, detect, batch_size, annotated, progress, iou, max_missed
    )
    for prediction in predictions:
        yield prediction.to_row(model.class_names, video=True, decimals=decimals)
