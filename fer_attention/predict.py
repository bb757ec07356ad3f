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

import csv
import glob
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from fer_attention.data.preprocess import parse_detect
from fer_attention.data.sources.base import is_image, natural_key
from fer_attention.errors import ConfigError
from fer_attention.inference import load_model
from fer_attention.models.tta import check_tta
from fer_attention.reporting.annotate import BOX_KEYS, draw_faces
from fer_attention.video import VIDEO_KEYS, is_video, predict_video

log = logging.getLogger("fer_attention.predict")

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


def row_fields(class_names: list[str], video: bool = False) -> list[str]:
    """The columns of the rows, in order.

    Args:
        class_names: the model's classes, one probability column each.
        video: add ``frame``, ``time_s`` and ``track`` after ``file``.

    Returns:
        ``file``, [``frame``, ``time_s``, ``track``,] ``face``, ``x``, ``y``, ``w``, ``h``,
        ``detected``, ``label``, one column per class, ``error``.
    """
    lead = ["file", *VIDEO_KEYS] if video else ["file"]
    return [*lead, "face", *BOX_KEYS, "detected", "label", *class_names, "error"]


class RowWriter:
    """Rows as JSON lines or CSV with a fixed header."""

    def __init__(self, path: Path, class_names: list[str], video: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fields = row_fields(class_names, video)
        self.csv = path.suffix.lower() == ".csv"
        self.file = open(path, "w", newline="" if self.csv else None)  # noqa: SIM115 - closed in close()
        if self.csv:
            self.writer = csv.DictWriter(self.file, fieldnames=self.fields)
            self.writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        row = {k: row.get(k) for k in self.fields}
        if self.csv:
            self.writer.writerow({k: "" if v is None else v for k, v in row.items()})
        else:
            self.file.write(json.dumps(row) + "\n")

    def close(self) -> None:
        self.file.close()


def _name(path: Path, root: Path) -> str:
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        rel = Path(path.name)
    return "__".join(rel.with_suffix("").parts)


def draw_annotated(path: Path, faces: list[dict[str, Any]], out: Path) -> None:
    """A copy of the image with each face's box and label (with its probability) drawn."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.array(im.convert("RGB"))
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(draw_faces(rgb, faces)).save(out)


def _may_be_video(path: Path) -> bool:
    return is_video(path) or not is_image(path)


def predict_files(cfg: DictConfig) -> dict[str, Any]:
    """The `fer-predict` task: label every face of the input files and write one row per face.

    Rows go to ``output`` (columns :func:`row_fields`, the video columns when any input may be a video);
    a file that cannot be read or has no face gives one row with ``error`` set and the run goes on.
    Pictures (``save_annotated``, ``save_attention``, ``video.timeline``) go to ``annotated/``,
    ``attention/`` and ``timelines/`` beside ``output``.

    Args:
        cfg: the composed ``predict`` config (conf/predict.yaml): ``ckpt_path``, ``input``, ``output``,
            ``detect``, ``device``, ``batch_size``, ``save_annotated``, ``save_attention``, ``progress``,
            ``video.stride``, ``video.iou``, ``video.max_missed``, ``video.timeline`` and
            ``paths.output_dir`` (the default output's folder).

    Returns:
        ``{"output", "files", "files_ok", "files_failed", "faces"}``: the rows' file (a str) and the
        counts of input files, files with at least one face, files that failed, and rows of faces.

    Raises:
        ConfigError: ``output`` does not end with .jsonl or .csv, ``input`` matches no file, or
            ``video.stride`` < 1.
        CheckpointError: ``ckpt_path`` cannot be loaded (see :func:`~fer_attention.inference.load_model`).
        ValueError: ``detect`` is invalid, or no input could be processed (exit 1); the rows are written
            all the same.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    out = output_path(cfg)
    detect = parse_detect(cfg.get("detect", "auto"))
    tta = check_tta(cfg.get("test_time_augmentation"))
    files, root = collect_inputs(str(cfg.input))
    model = load_model(str(cfg.ckpt_path), device=str(cfg.get("device", "cpu")))
    model.test_time_augmentation = tta
    classes = model.class_names
    batch_size = max(1, int(cfg.get("batch_size", 64)))
    annotate, attention = bool(cfg.get("save_annotated")), bool(cfg.get("save_attention"))
    video_cfg = dict(cfg.get("video") or {})
    stride = int(video_cfg.get("stride", 1))
    if stride < 1:
        raise ConfigError(f"video.stride={stride} must be an integer >= 1")
    writer = RowWriter(out, classes, video=any(_may_be_video(p) for p in files))
    stats = {"files": len(files), "files_ok": 0, "files_failed": 0, "faces": 0}
    pending: list[tuple[Path, list[np.ndarray], list]] = []

    def flush() -> None:
        if not pending:
            return
        crops = np.stack([c for _, faces, _ in pending for c in faces])
        res = model.predict_faces(crops, return_attention=attention, batch_size=batch_size)
        k = 0
        for path, faces, boxes in pending:
            rows = []
            for j, box in enumerate(boxes):
                p = res["probs"][k]
                row = {
                    "file": str(path),
                    "face": j,
                    "detected": box is not None,
                    "label": classes[int(np.argmax(p))],
                    "error": None,
                }
                row.update(dict(zip(BOX_KEYS, box if box is not None else (None,) * 4, strict=True)))
                row.update({c: round(float(v), 6) for c, v in zip(classes, p, strict=True)})
                writer.write(row)
                rows.append(row)
                if attention:
                    _save_attention(
                        res,
                        k,
                        faces[j],
                        classes,
                        out.parent / "attention" / f"{_name(path, root)}_face{j}.png",
                    )
                k += 1
            if annotate:
                try:
                    draw_annotated(path, rows, out.parent / "annotated" / f"{_name(path, root)}.png")
                except Exception as err:  # noqa: BLE001 - a picture must not stop the run
                    log.warning("%s: cannot write the annotated copy (%s)", path, err)
            stats["files_ok"] += 1
            stats["faces"] += len(boxes)
        pending.clear()

    def fail(path: Path, reason: str, detected: bool | None = None) -> None:
        log.warning("%s: %s", path, reason)
        writer.write({"file": str(path), "detected": detected, "error": reason})
        stats["files_failed"] += 1

    def video(path: Path, progress, task) -> None:
        from fer_attention.reporting.timeline import plot_timeline

        name = _name(path, root)

        def advance(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total, visible=True)

        progress.update(task, completed=0, total=None, visible=True, description=path.name)
        rows = []
        for row in predict_video(
            model,
            path,
            stride=stride,
            detect=detect,
            batch_size=batch_size,
            annotated=out.parent / "annotated" / f"{name}.mp4" if annotate else None,
            progress=advance,
            iou=float(video_cfg.get("iou", 0.3)),
            max_missed=int(video_cfg.get("max_missed", 5)),
        ):
            writer.write(row)
            if row["error"] is None:
                rows.append(row)
            else:
                log.warning("%s: %s", path, row["error"])
        progress.update(task, visible=False)
        if rows:
            stats["files_ok"] += 1
            stats["faces"] += len(rows)
            if video_cfg.get("timeline", True):
                try:
                    plot_timeline(rows, classes, out.parent / "timelines" / f"{name}.png", title=path.name)
                except Exception as err:  # noqa: BLE001 - a picture must not stop the run
                    log.warning("%s: cannot draw the timeline (%s)", path, err)
        else:
            stats["files_failed"] += 1

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, disable=not cfg.get("progress", True), transient=True) as progress:
            task = progress.add_task("predict", total=len(files))
            frames = progress.add_task("frames", total=None, visible=False)
            for path in files:
                if is_video(path):
                    flush()  # rows stay in input order
                    video(path, progress, frames)
                    progress.advance(task)
                    continue
                try:
                    faces, boxes = model.faces(path, detect=detect)
                except ValueError as err:
                    if _may_be_video(path) and _opens_as_video(path):
                        flush()
                        video(path, progress, frames)
                    else:
                        fail(path, str(err))
                else:
                    if not faces:
                        fail(path, "no face found", detected=False)
                    else:
                        pending.append((path, faces, boxes))
                        if sum(len(f) for _, f, _ in pending) >= batch_size:
                            flush()
                progress.advance(task)
            flush()
    finally:
        writer.close()
    stats["output"] = str(out)
    log.info(
        "%d faces in %d of %d files (%d failed) -> %s",
        stats["faces"],
        stats["files_ok"],
        stats["files"],
        stats["files_failed"],
        out,
    )
    if stats["files_ok"] == 0:
        raise ValueError(
            f"no input could be processed ({stats['files_failed']} files failed, reasons in {out})"
        )
    return stats


def _opens_as_video(path: Path) -> bool:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return bool(cap.isOpened()) and cap.grab()
    finally:
        cap.release()


def _save_attention(res: dict, k: int, face: np.ndarray, classes: list[str], path: Path) -> None:
    from fer_attention.reporting.attention import plot_attention_grid

    maps = {
        "faces": face[None].astype(np.float32) / 255.0,
        "lbp": None if res["lbp"] is None else res["lbp"][k : k + 1],
        "mask": None if res["mask"] is None else res["mask"][k : k + 1],
        "probs": res["probs"][k : k + 1],
    }
    plot_attention_grid(maps, classes, None, path)
