"""Video files: which names are videos, opening one for its frames, and the annotated copy written beside
it. Frames are decoded with OpenCV's ``VideoCapture`` (any file the opencv wheel's FFmpeg reads; no ffmpeg
binary needed); the copy is written with ``VideoWriter``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

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
DEFAULT_FPS = 25.0


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
