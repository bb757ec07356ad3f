"""The files a `fer-predict` run writes: the rows (JSON lines or CSV, columns
:func:`~fer_attention.inference.prediction.row_fields`) and the pictures beside them: ``annotated/`` copies,
``attention/`` pictures of each face and ``timelines/`` of each video.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fer_attention.inference.prediction import FacePrediction, row_fields
from fer_attention.reporting.annotate import draw_faces

# the warnings of fer-predict's files, under the logger of the task
log = logging.getLogger("fer_attention.inference.predict")


class RowWriter:
    """Predictions as rows of JSON lines or CSV with a fixed header (:func:`row_fields`)."""

    def __init__(self, path: Path, class_names: Sequence[str], video: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.class_names = list(class_names)
        self.video = video
        self.csv = path.suffix.lower() == ".csv"
        self.file = open(path, "w", newline="" if self.csv else None)  # noqa: SIM115 - closed in close()
        if self.csv:
            self.writer = csv.DictWriter(self.file, fieldnames=row_fields(self.class_names, video))
            self.writer.writeheader()

    def write(self, prediction: FacePrediction) -> dict[str, Any]:
        """Write one prediction's row; returns the row (None for missing values)."""
        row = prediction.to_row(self.class_names, video=self.video)
        if self.csv:
            self.writer.writerow({k: "" if v is None else v for k, v in row.items()})
        else:
            self.file.write(json.dumps(row) + "\n")
        return row

    def close(self) -> None:
        """Close the file."""
        self.file.close()


class PredictionOutputs:
    """Where a `fer-predict` run's results go: the rows, the pictures beside them (``annotated/``,
    ``attention/``, ``timelines/``) and the counts of :func:`~fer_attention.inference.predict.predict_files`'s result.

    Args:
        out: the rows' file.
        root: the folder the pictures' names are taken relative to.
        class_names: the model's classes.
        video: write the video columns.
        files: how many input files there are.
        attention: write each face's attention picture.
        annotate: write an annotated copy of each image.
        timeline: draw each video's timeline.
    """

    def __init__(
        self,
        out: Path,
        root: Path,
        class_names: Sequence[str],
        video: bool,
        files: int,
        attention: bool = False,
        annotate: bool = False,
        timeline: bool = True,
    ) -> None:
        self.out = out
        self.root = root
        self.class_names = list(class_names)
        self.attention = attention
        self.annotate = annotate
        self.timeline = timeline
        self.rows = RowWriter(out, self.class_names, video=video)
        self.stats: dict[str, Any] = {"files": files, "files_ok": 0, "files_failed": 0, "faces": 0}

    def picture(self, folder: str, path: Path, suffix: str) -> Path:
        """Where the picture of an input file goes: ``folder/`` beside the rows, named after the file."""
        return self.out.parent / folder / f"{picture_name(path, self.root)}{suffix}"

    def image(self, path: Path, predictions: list[FacePrediction]) -> None:
        """Write the rows of one image's faces, and its attention pictures and annotated copy if asked."""
        rows = [self.rows.write(p) for p in predictions]
        if self.attention:
            for p in predictions:
                save_attention(
                    p, self.class_names, self.picture("attention", path, f"_face{p.face_index}.png")
                )
        if self.annotate:
            try:
                draw_annotated(path, rows, self.picture("annotated", path, ".png"))
            except Exception as err:  # noqa: BLE001 - a picture must not stop the run
                log.warning("%s: cannot write the annotated copy (%s)", path, err)
        self.stats["files_ok"] += 1
        self.stats["faces"] += len(predictions)

    def failure(self, path: Path, reason: str, detected: bool | None = None) -> None:
        """Write the error row of a file that gave no face, and log it."""
        log.warning("%s: %s", path, reason)
        self.rows.write(FacePrediction.failure(str(path), reason, detected=detected))
        self.stats["files_failed"] += 1

    def video(self, path: Path, predictions: Iterable[FacePrediction]) -> None:
        """Write the rows of one video (logging its error rows), and its timeline if asked."""
        # function-local: matplotlib only when a video is labelled
        from fer_attention.reporting.timeline import plot_timeline

        rows = []
        for p in predictions:
            row = self.rows.write(p)
            if p.error is None:
                rows.append(row)
            else:
                log.warning("%s: %s", path, p.error)
        if not rows:
            self.stats["files_failed"] += 1
            return
        self.stats["files_ok"] += 1
        self.stats["faces"] += len(rows)
        if self.timeline:
            try:
                plot_timeline(
                    rows, self.class_names, self.picture("timelines", path, ".png"), title=path.name
                )
            except Exception as err:  # noqa: BLE001 - a picture must not stop the run
                log.warning("%s: cannot draw the timeline (%s)", path, err)

    def close(self) -> None:
        """Close the rows' file."""
        self.rows.close()


def picture_name(path: Path, root: Path) -> str:
    """The name of an input file's pictures: its path relative to ``root`` (else its name), without the
    suffix, the folders joined by ``__``."""
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


def save_attention(prediction: FacePrediction, class_names: list[str], path: Path) -> None:
    """The attention picture of one face predicted with ``return_attention``: the face, its LBP map and
    its attention mask (those the network has)."""
    from fer_attention.reporting.attention import plot_attention_grid

    maps = {
        "faces": prediction.face[None],
        "lbp": None if prediction.lbp is None else prediction.lbp[None],
        "mask": None if prediction.mask is None else prediction.mask[None],
        "probs": np.array([[prediction.probabilities[c] for c in class_names]]),
    }
    plot_attention_grid(maps, class_names, None, path)
