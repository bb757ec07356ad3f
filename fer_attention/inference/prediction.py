"""One predicted face (or one input that gave none), the row it becomes in `fer-predict`'s output, and the
files a `fer-predict` run writes.

:class:`FacePrediction` is what :meth:`FERPredictor.predict <fer_attention.inference.FERPredictor.predict>`
returns for every face, what :func:`fer_attention.inference.video.predict_video` turns into its rows and what
`fer-predict` writes, for images, folders and videos alike: :meth:`FacePrediction.to_row` gives the
columns of :func:`row_fields` in their order, with JSON-ready values (str, int, float, bool or None).
:class:`PredictionOutputs` writes them (:class:`RowWriter`: JSON lines or CSV) with the pictures beside
them: ``annotated/`` copies, ``attention/`` pictures of each face and ``timelines/`` of each video.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer_attention.data.preprocess import Box
from fer_attention.viz.annotate import draw_faces

# the warnings of fer-predict's files, under the logger of the task
log = logging.getLogger("fer_attention.inference.predict")

BOX_KEYS = ("x", "y", "w", "h")
VIDEO_KEYS = ("frame", "time_s", "track")
# decimal places of a row's probabilities and of its time_s
PROBABILITY_DECIMALS = 6
TIME_DECIMALS = 4


def row_fields(class_names: Sequence[str], video: bool = False) -> list[str]:
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


@dataclass(frozen=True)
class FacePrediction:
    """One face: where it is, what the network says, and (when asked) where it looked; or, with ``error``
    set, an input (a file, a video, a video's frame) that gave no face.

    ``box`` is ``(x, y, w, h)`` in the input image's pixels, or None when the image itself was taken as
    the face (``detect=False``, or a small image with ``detect="auto"``); ``detected`` says whether a face
    detector found the face (True exactly when ``box`` is set). ``face`` is the network's input ``[H, W]``
    in [0, 1]; ``mask`` (the attention mask) and ``lbp`` (the normalised LBP map) are ``[H, W]`` in [0, 1]
    with ``return_attention=True`` (None when the network has no attention / LBP). ``file`` is the input
    file (None for an in-memory image); ``frame``, ``time_s`` and ``track`` place a face of a video. An
    error row has no ``label``, no ``probabilities`` and no ``face_index``.
    """

    label: str | None
    probabilities: dict[str, float]
    box: Box | None = None
    face_index: int | None = 0
    detected: bool | None = False
    face: np.ndarray | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)
    lbp: np.ndarray | None = field(default=None, repr=False)
    file: str | None = None
    frame: int | None = None
    time_s: float | None = None
    track: int | None = None
    error: str | None = None

    @property
    def confidence(self) -> float:
        """The probability of ``label`` (the highest of ``probabilities``)."""
        return self.probabilities[self.label]

    @classmethod
    def of_probabilities(
        cls, probabilities: np.ndarray, class_names: Sequence[str], box: Sequence[int] | None, **fields: Any
    ) -> FacePrediction:
        """The prediction of one face from the network's softmax output.

        Args:
            probabilities: the face's probabilities ``[C]``, in ``class_names`` order.
            class_names: the model's classes.
            box: the face's ``(x, y, w, h)``, or None for an image taken whole as the face.
            **fields: any other field (``face_index``, ``file``, ``frame``, ``face``, ...).

        Returns:
            A :class:`FacePrediction` labelled with the most probable class, ``detected`` set when there
            is a box.
        """
        return cls(
            label=class_names[int(np.argmax(probabilities))],
            probabilities={c: float(v) for c, v in zip(class_names, probabilities, strict=True)},
            box=None if box is None else tuple(int(v) for v in box),
            detected=box is not None,
            **fields,
        )

    @classmethod
    def failure(
        cls, file: str, reason: str, frame: int | None = None, detected: bool | None = None
    ) -> FacePrediction:
        """The row of an input that gave no face: ``file`` and ``error`` set (``frame`` for a video that
        stopped decoding there, ``detected=False`` when a detector found no face), nothing predicted."""
        return cls(
            label=None,
            probabilities={},
            face_index=None,
            detected=detected,
            file=file,
            frame=frame,
            error=reason,
        )

    def to_row(
        self, class_names: Sequence[str], video: bool = False, decimals: int = PROBABILITY_DECIMALS
    ) -> dict[str, Any]:
        """The face as one row of `fer-predict`'s output.

        Args:
            class_names: the model's classes, one column each (None in an error row).
            video: include ``frame``, ``time_s`` (rounded to 4 decimals) and ``track``.
            decimals: decimal places of the probabilities.

        Returns:
            A dict with exactly the keys of :func:`row_fields` ``(class_names, video)``, in that order;
            ``face`` is ``face_index``, ``x``, ``y``, ``w``, ``h`` the box (None without one).
        """
        row: dict[str, Any] = {"file": self.file}
        if video:
            time_s = None if self.time_s is None else round(self.time_s, TIME_DECIMALS)
            row.update(frame=self.frame, time_s=time_s, track=self.track)
        row["face"] = self.face_index
        row.update(zip(BOX_KEYS, self.box if self.box is not None else (None,) * len(BOX_KEYS), strict=True))
        row["detected"] = self.detected
        row["label"] = self.label
        probabilities = self.probabilities
        row.update(
            {c: round(probabilities[c], decimals) if c in probabilities else None for c in class_names}
        )
        row["error"] = self.error
        return row


def image_predictions(
    output: dict[str, np.ndarray | None],
    class_names: Sequence[str],
    prepared: Sequence[tuple[Sequence[np.ndarray], Sequence[Box | None]]],
    files: Sequence[str | None] | None = None,
    keep_faces: bool = False,
) -> list[list[FacePrediction]]:
    """The predictions of several images' faces from one run of the network over all of them.

    Args:
        output: :meth:`FERPredictor.predict_faces <fer_attention.inference.FERPredictor.predict_faces>` of
            every face of ``prepared``, in order: ``probs`` ``[N, C]``, ``mask`` and ``lbp`` (or None).
        class_names: the model's classes.
        prepared: one ``(faces, boxes)`` per image (uint8 faces ``[S, S]``).
        files: each image's file, kept as its predictions' ``file`` (default None).
        keep_faces: keep each face (scaled to [0, 1]) as its prediction's ``face``.

    Returns:
        One list of :class:`FacePrediction` per image, in order (``face_index`` counting from 0 in each).
    """
    results: list[list[FacePrediction]] = []
    k = 0
    for i, (faces, boxes) in enumerate(prepared):
        file = None if files is None else files[i]
        results.append([])
        for j, (face, box) in enumerate(zip(faces, boxes, strict=True)):
            prediction = FacePrediction.of_probabilities(
                output["probs"][k],
                class_names,
                box,
                face_index=j,
                file=file,
                face=face.astype(np.float32) / 255.0 if keep_faces else None,
                mask=None if output["mask"] is None else output["mask"][k],
                lbp=None if output["lbp"] is None else output["lbp"][k],
            )
            results[i].append(prediction)
            k += 1
    return results


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
        from fer_attention.viz.timeline import plot_timeline

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
    from fer_attention.viz.attention import plot_attention_grid

    maps = {
        "faces": prediction.face[None],
        "lbp": None if prediction.lbp is None else prediction.lbp[None],
        "mask": None if prediction.mask is None else prediction.mask[None],
        "probs": np.array([[prediction.probabilities[c] for c in class_names]]),
    }
    plot_attention_grid(maps, class_names, None, path)
