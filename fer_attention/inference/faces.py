"""The network inputs of an image: read it as 8-bit gray, find its faces (or take it whole as a face crop),
and cut and resize each face as the training faces were prepared.

``detect``: ``"auto"`` takes an image no larger than ``AUTO_CROP_FACTOR`` times the model's input size (96
pixels on the longer side for a 48x48 model) as a face crop and looks for faces in a larger one; True always
looks for faces; False takes every image as a face crop. The preparation is that of
:mod:`fer_attention.data.preprocess`: 8-bit grayscale (ITU-R 601-2 luma for colour), the square around the
face (or the centred square of a face crop), resized to the model's input size (area interpolation when
shrinking, bilinear when enlarging).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fer_attention.data.preprocess import center_square, crop_square, read_gray, resize, to_gray8
from fer_attention.data.preprocess import detect_faces as preprocess_detect_faces
from fer_attention.inference.prediction import Box

# smallest face relative to the shorter image side: photos may hold several small faces
MIN_FACE_FRACTION = 0.1
# detect="auto": an image whose longer side is at most this many times the model's input size is a face crop
AUTO_CROP_FACTOR = 2.0

ImageLike = np.ndarray | Image.Image | str | Path


def _array_to_gray(image: np.ndarray) -> np.ndarray:
    arr = image
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or arr.size == 0:
        raise ValueError(f"image array must be [H, W], [H, W, 3] or [H, W, 4]; got shape {image.shape}")
    if arr.dtype == np.uint16:
        arr = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        arr = np.nan_to_num(arr.astype(np.float64))
        if arr.max() <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return np.ascontiguousarray(arr)
    return to_gray8(Image.fromarray(np.ascontiguousarray(arr), "RGB" if arr.shape[2] == 3 else "RGBA"))


def to_gray(image: ImageLike) -> np.ndarray:
    """Any supported input as a uint8 grayscale array ``[H, W]``, converted as the training data is.

    Args:
        image: a file path, a PIL image or an array ``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` (RGB) or
            ``[H, W, 4]`` (RGBA); uint8, uint16 (scaled by 1/257), bool or float (in [0, 1], else taken
            as 0-255).

    Returns:
        A uint8 array ``[H, W]``.

    Raises:
        ValueError: any other type or shape, an empty array, or a file that cannot be decoded.
    """
    if isinstance(image, str | Path):
        return read_gray(image)
    if isinstance(image, Image.Image):
        gray = to_gray8(image)
    elif isinstance(image, np.ndarray):
        gray = _array_to_gray(image)
    else:
        raise ValueError(f"cannot read an image from a {type(image).__name__}")
    if gray.ndim != 2 or gray.size == 0:
        raise ValueError(f"unexpected image shape {gray.shape}")
    return gray


def detect_faces(gray: np.ndarray) -> list[Box]:
    """Every frontal face in a uint8 gray image, left to right (faces down to ``MIN_FACE_FRACTION`` of the
    shorter side; see :func:`fer_attention.data.preprocess.detect_faces`).

    Args:
        gray: a uint8 gray image ``[H, W]``, e.g. from :func:`to_gray`.

    Returns:
        One ``(x, y, w, h)`` box per face, in pixels; empty when there is none.
    """
    return preprocess_detect_faces(gray, MIN_FACE_FRACTION)


def is_face_crop(shape: tuple[int, ...], image_size: int) -> bool:
    """``detect="auto"``: is an image of this shape (``(H, W, ...)``) taken as a face crop? True when its
    longer side is at most ``AUTO_CROP_FACTOR`` times ``image_size``."""
    return max(shape[:2]) <= AUTO_CROP_FACTOR * image_size


def face_inputs(
    gray: np.ndarray, image_size: int, detect: bool | str = "auto"
) -> tuple[list[np.ndarray], list[Box | None]]:
    """The network inputs of a uint8 gray image ``[H, W]`` and their boxes.

    Args:
        gray: a uint8 gray image ``[H, W]``.
        image_size: the side ``S`` of the network's square input.
        detect: ``"auto"``, True or False, already parsed (anything but False and ``"auto"`` detects).

    Returns:
        ``(faces, boxes)``: uint8 faces ``[S, S]`` and their ``(x, y, w, h)`` boxes, or ``[None]`` for the
        whole image taken as a crop; two empty lists when the detector finds no face.
    """
    if detect is False or (detect == "auto" and is_face_crop(gray.shape, image_size)):
        return [resize(center_square(gray), image_size)], [None]
    boxes = detect_faces(gray)
    crops = [resize(crop_square(gray, x + w / 2, y + h / 2, max(w, h)), image_size) for x, y, w, h in boxes]
    return crops, list(boxes)
