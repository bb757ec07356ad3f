"""Video input: every ``stride``-th frame labelled, faces followed across frames by box overlap.

.. code-block:: python

    from fer_attention import load_model

    model = load_model("checkpoints/epoch_021.ckpt")
    rows = model.predict_video("clip.mp4", stride=2, timeline="clip.png")  # one dict per face per frame

Frames are decoded with OpenCV's ``VideoCapture`` (:mod:`fer_attention.inference.video_io`: any file the opencv
wheel's FFmpeg reads; no ffmpeg binary needed), converted to 8-bit gray with ITU-R 601-2 luma (OpenCV's fixed-point ``BGR2GRAY``, within one
grey level of PIL's ``L``) and prepared as still images are (:meth:`FERPredictor.faces`, the same
``detect`` modes: with ``auto`` a video whose frames are no larger than about twice the model's input size
is taken as a video of one face crop). Skipped frames are only grabbed, not decoded to pixels. Faces of
several frames run through the network together in batches. Each face is a
:class:`~fer_attention.inference.prediction.FacePrediction` (:func:`video_predictions`), its row that
:meth:`~fer_attention.inference.prediction.FacePrediction.to_row` (:func:`predict_video`).

Tracking (:class:`IoUTracker`): each face of a labelled frame joins the track whose last box overlaps it
most (intersection over union at least ``iou``, greedily, best overlaps first); a face that joins none
starts a new track; a track not seen for more than ``max_missed`` labelled frames ends. Track ids count
from 0 in order of appearance. Face crops (no boxes) are all track 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_attention.data.preprocess import parse_detect
from fer_attention.inference.prediction import Box, FacePrediction
from fer_attention.inference.video_io import AnnotatedCopy, FrameReader, open_video

# frames whose decoded count falls short of the container's frame count by more than this (and 1%) are
# reported as a truncated video (container counts are estimates for some formats)
FRAME_COUNT_SLACK = 2
# frames held before running the network: faces of several frames go through it as one batch
MAX_PENDING_FRAMES = 64


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
    ``to_row(model.class_names, video=True)``); the arguments are :func:`predict_video`'s."""
    path = Path(path)
    detect = parse_detect(detect)
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
    predictions = video_predictions(
        model, path, stride, detect, batch_size, annotated, progress, iou, max_missed
    )
    for prediction in predictions:
        yield prediction.to_row(model.class_names, video=True, decimals=decimals)
