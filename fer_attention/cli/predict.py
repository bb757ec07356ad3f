"""`fer-predict ckpt=<file.ckpt> input=<file, folder or glob>`: the expression of every face.

Writes one row per face to ``output`` (``.jsonl`` or ``.csv``; default ``predictions.jsonl`` in the run
dir ``logs/predict/runs/<date_time>/``): ``file``, ``face`` (index in the file), the box ``x``, ``y``,
``w``, ``h`` (null with ``detect=false``), ``label``, one probability per class, and ``error``. A file
that cannot be read, is not an image or has no face gives one row with ``error`` set (and a log line);
the run goes on. The exit code is 1 only when no input could be processed at all.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from fer_attention.cli.common import run_task
from fer_attention.config import ConfigError, config_dir

log = logging.getLogger("fer_attention.predict")

OUTPUT_FORMATS = (".jsonl", ".csv")
BOX_KEYS = ("x", "y", "w", "h")


def collect_inputs(spec: str) -> tuple[list[Path], Path]:
    """Files of ``input`` (a file, a folder searched recursively for images, or a glob) and the folder
    that output names are taken relative to."""
    from fer_attention.data.sources.base import is_image, natural_key

    path = Path(spec).expanduser()
    if path.is_dir():
        files = [Path(root) / name for root, _, names in os.walk(path) for name in names if is_image(name)]
        root = path
    elif path.is_file():
        files, root = [path], path.parent
    else:
        files = [Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()]
        root = Path(os.path.commonpath([str(p.parent) for p in files])) if files else Path(".")
    if not files:
        raise ConfigError(f"input={spec} matches no file (a file, a folder of images or a glob)")
    return sorted(files, key=lambda p: natural_key(str(p))), root


def output_path(cfg: DictConfig) -> Path:
    out = Path(str(cfg.output)) if cfg.get("output") else Path(cfg.paths.output_dir) / "predictions.jsonl"
    if out.suffix.lower() not in OUTPUT_FORMATS:
        raise ConfigError(f"output={out} must end with .jsonl or .csv")
    return out


class RowWriter:
    """Rows as JSON lines or CSV with a fixed header."""

    def __init__(self, path: Path, class_names: list[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fields = ["file", "face", *BOX_KEYS, "label", *class_names, "error"]
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
    import cv2
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.array(im.convert("RGB"))
    thick = max(1, round(max(rgb.shape[:2]) / 400))
    for f in faces:
        if f["x"] is None:
            x, y, w, h = 0, 0, rgb.shape[1], rgb.shape[0]
        else:
            x, y, w, h = (f[k] for k in BOX_KEYS)
        cv2.rectangle(rgb, (x, y), (x + w - 1, y + h - 1), (0, 255, 0), thick)
        text = f"{f['label']} {f[f['label']]:.2f}"
        scale = max(0.4, w / 250)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y - 4 if y - th - base - 4 >= 0 else min(rgb.shape[0] - 1, y + h + th + 4)
        cv2.rectangle(rgb, (x, ty - th - base), (x + tw, ty + base), (0, 0, 0), -1)
        cv2.putText(rgb, text, (x, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 255, 0), thick, cv2.LINE_AA)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(out)


def predict_files(cfg: DictConfig) -> dict[str, Any]:
    """The `fer-predict` task: returns ``{"output", "files", "files_ok", "files_failed", "faces"}``; raises
    ``ValueError`` (exit 1) when no input could be processed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fer_attention.inference import load_model

    out = output_path(cfg)
    files, root = collect_inputs(str(cfg.input))
    model = load_model(str(cfg.ckpt), device=str(cfg.get("device", "cpu")))
    classes = model.class_names
    batch_size = max(1, int(cfg.get("batch_size", 64)))
    detect = bool(cfg.get("detect", True))
    annotate, attention = bool(cfg.get("save_annotated")), bool(cfg.get("save_attention"))
    writer = RowWriter(out, classes)
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
                row = {"file": str(path), "face": j, "label": classes[int(np.argmax(p))], "error": None}
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

    def fail(path: Path, reason: str) -> None:
        log.warning("%s: %s", path, reason)
        writer.write({"file": str(path), "error": reason})
        stats["files_failed"] += 1

    columns = (TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, disable=not cfg.get("progress", True), transient=True) as progress:
            task = progress.add_task("files", total=len(files))
            for path in files:
                try:
                    faces, boxes = model.faces(path, detect=detect)
                except ValueError as err:
                    fail(path, str(err))
                else:
                    if not faces:
                        fail(path, "no face found")
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


def _save_attention(res: dict, k: int, face: np.ndarray, classes: list[str], path: Path) -> None:
    from fer_attention.reporting.attention import plot_attention_grid

    maps = {
        "faces": face[None].astype(np.float32) / 255.0,
        "lbp": None if res["lbp"] is None else res["lbp"][k : k + 1],
        "mask": None if res["mask"] is None else res["mask"][k : k + 1],
        "probs": res["probs"][k : k + 1],
    }
    plot_attention_grid(maps, classes, None, path)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
def main(cfg: DictConfig) -> None:
    stats = run_task(predict_files, cfg)
    if stats is not None:
        print(
            f"{stats['faces']} faces in {stats['files_ok']} of {stats['files']} files "
            f"({stats['files_failed']} failed) -> {stats['output']}"
        )


if __name__ == "__main__":
    main()
