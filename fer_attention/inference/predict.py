"""The `fer-predict` task: the expression of every face in images and videos, written as rows.

Writes one row per face to ``output`` (``.jsonl`` or ``.csv``; default ``predictions.jsonl`` in the run
dir ``logs/predict/runs/<date_time>/``): ``file``, ``face`` (index in the file or frame), the box ``x``,
``y``, ``w``, ``h`` (null for a face crop), ``detected`` (whether a face detector found the face),
``label``, one probability per class, and ``error``; when the input holds videos also ``frame``,
``time_s`` and ``track`` (null for images). A file that cannot be read, is not an image or video or has
no face gives one row with ``error`` set (and a log line); the run goes on. The exit code is 1 only when
no input could be processed at all. ``ckpt`` is a checkpoint or an `fer-export` ``.onnx`` model.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from fer_attention.data.preprocess import Box, check_min_face, parse_detect, to_gray
from fer_attention.data.sources.base import is_image, natural_key
from fer_attention.errors import ConfigError
from fer_attention.inference.prediction import FacePrediction, PredictionOutputs
from fer_attention.inference.predictor import FERPredictor, load_model
from fer_attention.inference.video import is_video, opens_as_video, video_predictions

log = logging.getLogger("fer_attention.inference.predict")

OUTPUT_FORMATS = (".jsonl", ".csv")


def collect_inputs(spec: str) -> tuple[list[Path], Path]:
    """The input files of `fer-predict`.

    Args:
        spec: ``input``: a file, a folder (searched recursively for image and video files by extension)
            or a glob (``**`` recursive); ``~`` is expanded.

    Returns:
        ``(files, root)``: the files in natural order, and the folder that the names of the annotated,
        attention and timeline pictures are taken relative to.

    Raises:
        ConfigError: ``spec`` matches no file.
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        files = [
            Path(root) / name
            for root, _, names in os.walk(path)
            for name in names
            if is_image(name) or is_video(name)
        ]
        root = path
    elif path.is_file():
        files, root = [path], path.parent
    else:
        files = [Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()]
        root = Path(os.path.commonpath([str(p.parent) for p in files])) if files else Path(".")
    if not files:
        raise ConfigError(f"input={spec} matches no file (a file, a folder of images or videos, or a glob)")
    return sorted(files, key=lambda p: natural_key(str(p))), root


def output_path(cfg: DictConfig) -> Path:
    """Where the rows go: ``cfg.output``, or ``predictions.jsonl`` in ``cfg.paths.output_dir`` when it is
    unset; :class:`ConfigError` unless it ends with .jsonl or .csv."""
    out = Path(str(cfg.output)) if cfg.get("output") else Path(cfg.paths.output_dir) / "predictions.jsonl"
    if out.suffix.lower() not in OUTPUT_FORMATS:
        raise ConfigError(f"output={out} must end with .jsonl or .csv")
    return out


@dataclass(frozen=True)
class PredictOptions:
    """What a `fer-predict` run does with each file (from conf/predict.yaml), each value checked once."""

    detect: bool | str
    min_face: float
    tta: str | None
    batch_size: int
    annotate: bool
    attention: bool
    stride: int
    iou: float
    max_missed: int
    timeline: bool

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> PredictOptions:
        """The options of the composed ``predict`` config, whose types and choices its schema has checked
        (:class:`fer_attention.task_options.PredictConfig`); the ranges are checked here.

        Raises:
            ConfigError: ``video.stride`` < 1 or ``min_face`` outside [0, 1].
            ValueError: ``detect`` is not auto, true or false.
        """
        video = cfg.video
        if video.stride < 1:
            raise ConfigError(f"video.stride={video.stride} must be an integer >= 1")
        return cls(
            detect=parse_detect(cfg.detect),
            min_face=check_min_face(cfg.min_face),
            tta=None if cfg.test_time_augmentation is None else str(cfg.test_time_augmentation),
            batch_size=max(1, cfg.batch_size),
            annotate=cfg.save_annotated,
            attention=cfg.save_attention,
            stride=video.stride,
            iou=video.iou,
            max_missed=video.max_missed,
            timeline=video.timeline,
        )


class ImageBatcher:
    """The faces of several images, held until about ``batch_size`` of them are waiting, then run through
    the network together (:meth:`FERPredictor.predict_prepared`)."""

    def __init__(self, model: FERPredictor, batch_size: int, return_attention: bool) -> None:
        self.model = model
        self.batch_size = batch_size
        self.return_attention = return_attention
        self.pending: list[tuple[Path, list[np.ndarray], list[Box | None]]] = []

    def add(self, path: Path, faces: list[np.ndarray], boxes: list[Box | None]) -> None:
        """Hold one image's faces (from :meth:`FERPredictor.faces`)."""
        self.pending.append((path, faces, boxes))

    @property
    def full(self) -> bool:
        """Whether at least ``batch_size`` faces are waiting."""
        return sum(len(faces) for _, faces, _ in self.pending) >= self.batch_size

    def run(self) -> list[tuple[Path, list[FacePrediction]]]:
        """Predict every waiting face and empty the batch: ``(path, its faces' predictions)`` per image."""
        if not self.pending:
            return []
        paths = [path for path, _, _ in self.pending]
        results = self.model.predict_prepared(
            [(faces, boxes) for _, faces, boxes in self.pending],
            return_attention=self.return_attention,
            batch_size=self.batch_size,
            files=[str(path) for path in paths],
        )
        self.pending = []
        return list(zip(paths, results, strict=True))


def _may_be_video(path: Path) -> bool:
    return is_video(path) or not is_image(path)


def _show_frames(progress: Any, task: Any, done: int, total: int | None) -> None:
    progress.update(task, completed=done, total=total, visible=True)


def predict_video_file(
    model: FERPredictor,
    path: Path,
    options: PredictOptions,
    outputs: PredictionOutputs,
    progress: Any,
    task: Any,
) -> None:
    """Label one video and write its rows, its frames counted on the progress bar's ``task``."""
    progress.update(task, completed=0, total=None, visible=True, description=path.name)
    predictions = video_predictions(
        model,
        path,
        stride=options.stride,
        detect=options.detect,
        batch_size=options.batch_size,
        annotated=outputs.picture("annotated", path, ".mp4") if options.annotate else None,
        progress=partial(_show_frames, progress, task),
        iou=options.iou,
        max_missed=options.max_missed,
    )
    outputs.video(path, predictions)
    progress.update(task, visible=False)


def write_images(batcher: ImageBatcher, outputs: PredictionOutputs) -> None:
    """Run the images waiting in ``batcher`` and write their rows."""
    for path, predictions in batcher.run():
        outputs.image(path, predictions)


def predict_file(
    path: Path,
    model: FERPredictor,
    options: PredictOptions,
    batcher: ImageBatcher,
    outputs: PredictionOutputs,
    progress: Any,
    frames_task: Any,
) -> None:
    """One input file: a video is labelled at once (after the images before it, so that rows stay in input
    order); an image's faces wait in ``batcher``; a file without a face gets an error row."""
    if is_video(path):
        write_images(batcher, outputs)
        predict_video_file(model, path, options, outputs, progress, frames_task)
        return
    try:
        faces, boxes = model.faces_of_gray(to_gray(path), options.detect)
    except ValueError as err:
        if _may_be_video(path) and opens_as_video(path):
            write_images(batcher, outputs)
            predict_video_file(model, path, options, outputs, progress, frames_task)
        else:
            outputs.failure(path, str(err))
        return
    if not faces:
        outputs.failure(path, "no face found", detected=False)
        return
    batcher.add(path, faces, boxes)
    if batcher.full:
        write_images(batcher, outputs)


def predict_all(
    files: list[Path], root: Path, out: Path, model: FERPredictor, options: PredictOptions, show: bool
) -> dict[str, Any]:
    """Every input file in order, its rows written to ``out`` and its pictures beside it, with a progress
    bar of files and one of the current video's frames.

    Returns:
        :func:`predict_files`'s result.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    video = any(_may_be_video(p) for p in files)
    outputs = PredictionOutputs(
        out, root, model.class_names, video, len(files), options.attention, options.annotate, options.timeline
    )
    batcher = ImageBatcher(model, options.batch_size, options.attention)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, disable=not show, transient=True) as progress:
            files_task = progress.add_task("predict", total=len(files))
            frames_task = progress.add_task("frames", total=None, visible=False)
            for path in files:
                predict_file(path, model, options, batcher, outputs, progress, frames_task)
                progress.advance(files_task)
            write_images(batcher, outputs)
    finally:
        outputs.close()
    return {**outputs.stats, "output": str(out)}


def predict_files(cfg: DictConfig) -> dict[str, Any]:
    """The `fer-predict` task: label every face of the input files and write one row per face.

    Rows go to ``output`` (columns :func:`~fer_attention.inference.prediction.row_fields`, the video columns when any
    input may be a video); a file that cannot be read or has no face gives one row with ``error`` set and
    the run goes on. Pictures (``save_annotated``, ``save_attention``, ``video.timeline``) go to
    ``annotated/``, ``attention/`` and ``timelines/`` beside ``output``.

    Args:
        cfg: the composed ``predict`` config (conf/predict.yaml): ``ckpt_path``, ``input``, ``output``,
            ``detect``, ``min_face``, ``device``, ``batch_size``, ``save_annotated``, ``save_attention``,
            ``test_time_augmentation``, ``progress``, ``video.stride``, ``video.iou``, ``video.max_missed``,
            ``video.timeline`` and ``paths.output_dir`` (the default output's folder).

    Returns:
        ``{"output", "files", "files_ok", "files_failed", "faces", "model"}``: the rows' file (a str), the
        counts of input files, files with at least one face, files that failed, and rows of faces, and
        which model answered (the shipped model's description, or the checkpoint file).

    Raises:
        ConfigError: ``output`` does not end with .jsonl or .csv, ``input`` matches no file, or an
            option is invalid (:meth:`PredictOptions.from_cfg`).
        CheckpointError: ``ckpt_path`` cannot be loaded (see :func:`~fer_attention.inference.load_model`).
        ValueError: ``detect`` is invalid, or no input could be processed (exit 1); the rows are written
            all the same.
    """
    out = output_path(cfg)
    options = PredictOptions.from_cfg(cfg)
    files, root = collect_inputs(str(cfg.input))
    ckpt = cfg.get("ckpt_path")
    model = load_model(None if ckpt in (None, "") else str(ckpt), device=str(cfg.get("device", "cpu")))
    log.info("model: %s", model.model_name)
    model.test_time_augmentation = options.tta
    model.min_face = options.min_face
    stats = predict_all(files, root, out, model, options, show=bool(cfg.get("progress", True)))
    log.info(
        "%d faces in %d of %d files (%d failed) -> %s",
        stats["faces"],
        stats["files_ok"],
        stats["files"],
        stats["files_failed"],
        out,
    )
    stats["model"] = model.model_name
    if stats["files_ok"] == 0:
        raise ValueError(
            f"no input could be processed ({stats['files_failed']} files failed, reasons in {out})"
        )
    return stats
