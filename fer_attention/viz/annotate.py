"""Boxes, labels and probabilities drawn onto images and video frames (OpenCV drawing, in place)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

BOX_KEYS = ("x", "y", "w", "h")
GREEN, BLACK = (0, 255, 0), (0, 0, 0)


def face_text(row: dict[str, Any]) -> str:
    """``happy 0.93`` (``#2 happy 0.93`` for a row with a track id)."""
    text = f"{row['label']} {row[row['label']]:.2f}"
    return f"#{row['track']} {text}" if row.get("track") is not None else text


def draw_faces(
    image: np.ndarray,
    rows: Sequence[dict[str, Any]],
    text: Callable[[dict[str, Any]], str] = face_text,
) -> np.ndarray:
    """Draw each row's box (the whole image when its box is null) and its label with the probability onto
    a uint8 ``[H, W, 3]`` image (RGB or BGR: the colours are green and black), in place; returns it."""
    h_img, w_img = image.shape[:2]
    thick = max(1, round(max(h_img, w_img) / 400))
    for f in rows:
        if f.get("label") is None:
            continue
        if f.get("x") is None:
            x, y, w, h = 0, 0, w_img, h_img
        else:
            x, y, w, h = (int(f[k]) for k in BOX_KEYS)
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), GREEN, thick)
        label = text(f)
        scale = max(0.4, w / 250)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y - 4 if y - th - base - 4 >= 0 else min(h_img - 1, y + h + th + 4)
        cv2.rectangle(image, (x, ty - th - base), (x + tw, ty + base), BLACK, -1)
        cv2.putText(image, label, (x, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, GREEN, thick, cv2.LINE_AA)
    return image
