"""Decode one face: read the file, convert it to 8-bit grayscale, optionally crop the face, resize.

Everything here is a plain function of its arguments so that a process pool can run it.

- Grayscale: palette images are looked up (with their transparency), 16-bit images are scaled to 8 bits
  (``/ 257``), float images in [0, 1] are scaled by 255, transparent pixels (RGBA, LA, palette with
  transparency) are composited onto black, colour is converted with ITU-R 601-2 luma (PIL's ``L``).
- Face crop (``face_crop``): ``none`` takes the centred square of the image (the whole image when it is
  square); ``haar`` takes the largest face OpenCV's frontal-face Haar cascade finds (scikit-image's
  frontal-face LBP cascade where the installed OpenCV has no cascade classifier, as OpenCV 5), or falls
  back to the centred square when it finds none (the caller counts these); ``box`` takes the dataset's own face box.
  Crops are squares around the face's centre; parts outside the image are filled with black.
- Resize to ``image_size`` x ``image_size``: area interpolation when shrinking, bilinear when enlarging.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

FACE_CROPS = ("none", "haar", "box")
HAAR_FILE = "haarcascade_frontalface_default.xml"
# Haar detection runs on a copy whose longer side is at most this many pixels (speed); the crop is taken
# from the full-resolution image.
HAAR_MAX_SIDE = 480
# Haar cascade settings: image pyramid step, detections a face needs, smallest face in pixels
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
MIN_FACE_PIXELS = 24

_detector: tuple | None = None


def face_detector() -> tuple[str, object]:
    """``(name, detector)``: OpenCV's frontal-face Haar cascade when the installed OpenCV has
    ``CascadeClassifier`` and its cascade files (OpenCV 4); else scikit-image's frontal-face LBP cascade
    (OpenCV 5 moved the cascade classifier out of the main package). Loaded once per process."""
    global _detector
    if _detector is None:
        path = Path(getattr(getattr(cv2, "data", None), "haarcascades", "") or ".") / HAAR_FILE
        if hasattr(cv2, "CascadeClassifier") and path.is_file():
            cascade = cv2.CascadeClassifier(str(path))
            if cascade.empty():
                raise RuntimeError(f"cannot load OpenCV's Haar cascade {path}")
            _detector = ("opencv-haar-frontalface-default", cascade)
        else:
            from skimage.data import lbp_frontal_face_cascade_filename
            from skimage.feature import Cascade

            _detector = ("skimage-lbp-frontalface", Cascade(lbp_frontal_face_cascade_filename()))
    return _detector


def to_gray8(im: Image.Image) -> np.ndarray:
    """A PIL image of any mode as a uint8 grayscale array ``[H, W]``."""
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        gray = np.asarray(im.convert("RGB").convert("L"), dtype=np.float32)
        return np.clip(np.rint(gray * (rgba[..., 3] / 255.0)), 0, 255).astype(np.uint8)
    if mode == "L":
        return np.asarray(im, dtype=np.uint8)
    if mode == "1":
        return np.asarray(im.convert("L"), dtype=np.uint8)
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im).astype(np.float64)
        if mode == "I" and arr.size and arr.max() <= 255 and arr.min() >= 0:
            return arr.astype(np.uint8)
        return np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        if arr.size and np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        return np.clip(np.rint(np.nan_to_num(arr)), 0, 255).astype(np.uint8)
    if mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im.convert("L"), dtype=np.uint8)


def read_gray(path: str | Path) -> np.ndarray:
    """Decode an image file to uint8 grayscale; raises ``ValueError`` with the reason when it cannot."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ValueError(f"cannot read file ({err.strerror or err})") from None
    if size == 0:
        raise ValueError("empty file (0 bytes)")
    try:
        with Image.open(path) as im:
            if im.format == "JPEG" and im.mode in ("RGB", "L"):
                im.draft("L", im.size)  # decode the luma plane only
            im.load()
            gray = to_gray8(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        reason = str(err).replace(str(path), "").strip(" '\"") or type(err).__name__
        raise ValueError(f"cannot decode image ({reason})") from None
    if gray.ndim != 2 or gray.size == 0:
        raise ValueError(f"cannot decode image (unexpected shape {gray.shape})")
    return gray


def crop_square(img: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    """The ``side`` x ``side`` square centred on ``(cx, cy)``; parts outside the image are black."""
    side = max(1, int(round(side)))
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    h, w = img.shape
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if sx0 == x0 and sy0 == y0 and sx1 == x0 + side and sy1 == y0 + side:
        return img[y0 : y0 + side, x0 : x0 + side]
    out = np.zeros((side, side), dtype=img.dtype)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = img[sy0:sy1, sx0:sx1]
    return out


def center_square(img: np.ndarray) -> np.ndarray:
    h, w = img.shape
    if h == w:
        return img
    return crop_square(img, w / 2, h / 2, min(h, w))


def detect_faces(img: np.ndarray, min_face_fraction: float = 0.2) -> list[tuple[int, int, int, int]]:
    """Every frontal face ``(x, y, w, h)`` the face detector finds in a uint8 gray image, left to right.

    Detection runs on a copy whose longer side is at most ``HAAR_MAX_SIDE`` pixels; faces smaller than
    ``min_face_fraction`` of its shorter side (and than ``MIN_FACE_PIXELS``) are ignored.
    """
    h, w = img.shape
    scale = min(1.0, HAAR_MAX_SIDE / max(h, w))
    small = (
        img
        if scale == 1.0
        else cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    )
    min_side = max(MIN_FACE_PIXELS, int(min(small.shape) * min_face_fraction))
    if min(small.shape) < min_side:
        return []
    name, detector = face_detector()
    if name.startswith("opencv"):
        found = detector.detectMultiScale(small, SCALE_FACTOR, MIN_NEIGHBORS, minSize=(min_side, min_side))
        boxes = [tuple(int(v) for v in f) for f in found]
    else:  # OpenCV without cascades: scikit-image's LBP cascade (see face_detector)
        hits = detector.detect_multi_scale(
            img=small,
            scale_factor=SCALE_FACTOR,
            step_ratio=1,
            min_size=(min_side, min_side),
            max_size=small.shape,
        )
        boxes = [(d["c"], d["r"], d["width"], d["height"]) for d in hits]
    boxes = [
        (int(round(x / scale)), int(round(y / scale)), int(round(bw / scale)), int(round(bh / scale)))
        for x, y, bw, bh in boxes
    ]
    return sorted(boxes, key=lambda b: (b[0], b[1]))


def detect_face(img: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest frontal face ``(x, y, w, h)`` the face detector finds in ``img``, or None."""
    found = detect_faces(img)
    return max(found, key=lambda f: f[2] * f[3]) if found else None


def resize(img: np.ndarray, image_size: int) -> np.ndarray:
    h, w = img.shape
    if h == image_size and w == image_size:
        return np.ascontiguousarray(img)
    interp = cv2.INTER_AREA if min(h, w) >= image_size else cv2.INTER_LINEAR
    return cv2.resize(img, (image_size, image_size), interpolation=interp)


def prepare_face(
    img: np.ndarray,
    image_size: int,
    face_crop: str = "none",
    box: tuple[float, float, float, float] | None = None,
) -> tuple[np.ndarray, bool]:
    """Crop and resize a uint8 grayscale image; returns ``(face, fell_back)`` where ``fell_back`` says that
    ``haar`` found no face (or ``box`` had no box) and the centred square was used instead."""
    fell_back = False
    if face_crop == "haar":
        box = detect_face(img)
    elif face_crop != "box":
        box = None
    if box is not None and box[2] > 0 and box[3] > 0:
        x, y, bw, bh = box
        face = crop_square(img, x + bw / 2, y + bh / 2, max(bw, bh))
    else:
        fell_back = face_crop in ("haar", "box")
        face = center_square(img)
    return resize(face, image_size), fell_back


def decode_item(args: tuple) -> tuple[np.ndarray | None, str | None, bool]:
    """Pool worker: ``(item, image_size, face_crop, box)`` -> ``(face, error reason, fell_back)``.

    ``item`` is a file path or an already decoded uint8 array (CSV datasets)."""
    item, image_size, face_crop, box = args
    try:
        img = item if isinstance(item, np.ndarray) else read_gray(item)
        face, fell_back = prepare_face(img, image_size, face_crop, box)
    except ValueError as err:
        return None, str(err), False
    return face, None, fell_back


def parse_detect(detect: Any) -> str | bool:
    """``"auto"``, True or False from a bool or the strings auto / true / false (also yes / no, 1 / 0);
    ValueError naming the value otherwise."""
    if isinstance(detect, bool):
        return detect
    text = str(detect).strip().lower()
    if text == "auto":
        return "auto"
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off", "none", "null"):
        return False
    raise ValueError(f"detect={detect!r} must be auto, true or false")
