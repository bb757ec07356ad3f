"""One predicted face (or one input that gave none) and the row it becomes in `fer-predict`'s output.

:class:`FacePrediction` is what :meth:`FERPredictor.predict <fer_attention.inference.FERPredictor.predict>`
returns for every face, what :func:`fer_attention.inference.video.predict_video` turns into its rows and what
`fer-predict` writes, for images, folders and videos alike: :meth:`FacePrediction.to_row` gives the
columns of :func:`row_fields` in their order, with JSON-ready values (str, int, float, bool or None).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BOX_KEYS = ("x", "y", "w", "h")
VIDEO_KEYS = ("frame", "time_s", "track")
# decimal places of a row's probabilities and of its time_s
PROBABILITY_DECIMALS = 6
TIME_DECIMALS = 4

Box = tuple[int, int, int, int]


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
