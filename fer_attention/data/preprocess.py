"""Face preparation, one way for training data and for inference: read an image as 8-bit gray, find its
faces, cut the square around a face and resize it to the network's input.

Everything here is a plain function of its arguments so that a process pool can run it.

- Grayscale (:func:`read_gray`, :func:`to_gray8`, :func:`to_gray`): palette images are looked up (with
  their transparency), 16-bit images are scaled to 8 bits (``/ 257``), float images in [0, 1] are scaled by
  255, transparent pixels (RGBA, LA, palette with transparency) are composited onto black, colour is
  converted with ITU-R 601-2 luma (PIL's ``L``).
- Faces (:func:`detect_faces`): every frontal face OpenCV's Haar cascade finds (scikit-image's frontal-face
  LBP cascade where the installed OpenCV has no cascade classifier, as OpenCV 5), down to ``min_face`` of
  the shorter side (the config's ``min_face``; default :data:`MIN_FACE`). The box of a face depends on
  ``min_face`` too (the cascade's pyramid starts there), so data and inference take the one value.
- Dataset faces (``data.face_crop``, :func:`prepare_face`): ``none`` takes the centred square of the image
  (the whole image when it is square); ``haar`` takes the largest face the detector finds, or falls back
  to the centred square when it finds none (the caller counts these); ``box`` takes the dataset's own face
  box.
- Inference faces (``detect``, :func:`face_inputs`): ``"auto"`` takes an image no larger than
  ``AUTO_CROP_FACTOR`` times the model's input size (96 pixels on the longer side for a 48x48 model) as a
  face crop and looks for faces in a larger one; True always looks for faces; False takes every image as
  a face crop.
- Crops are squares around the face's centre; parts outside the image are filled with black. Resize to
  ``image_size`` x ``image_size``: area interpolation when shrinking, bilinear when enlarging.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from fer_attention.errors import ConfigError

FACE_CROPS = ("none", "haar", "box")
HAAR_FILE = "haarcascade_frontalface_default.xml"
# Haar detection runs on a copy whose longer side is at most this many pixels (speed); the crop is taken
# from the full-resolution image.
HAAR_MAX_SIDE = 480
# Haar cascade settings: image pyramid step, detections a face needs, smallest face in pixels
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
MIN_FACE_PIXELS = 24
# the smallest face looked for, as a fraction of the shorter side of the detection copy (config:
# ``min_face``; conf/predict.yaml states the same value). 0.1 keeps the small faces of group photos. Until
# 2026-12-06 dataset faces (face_crop=haar) were cut with 0.2, which boxed the same face looser than
# fer-predict did (scikit-image's astronaut: 112 px against 94 px).
MIN_FACE = 0.1
# detect="auto": an image whose longer side is at most this many times the model's input size is a face crop
AUTO_CROP_FACTOR = 2.0

# a face's (x, y, w, h) in the image's pixels
Box = tuple[int, int, int, int]
ImageLike = np.ndarray | Image.Image | str | Path

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
    """The centred square of ``img`` (``img`` itself when it is square)."""
    h, w = img.shape
    if h == w:
        return img
    return crop_square(img, w / 2, h / 2, min(h, w))


def detect_faces(img: np.ndarray, min_face: float = MIN_FACE) -> list[Box]:
    """Every frontal face ``(x, y, w, h)`` the face detector finds in a uint8 gray image, left to right.

    Detection runs on a copy whose longer side is at most ``HAAR_MAX_SIDE`` pixels; faces smaller than
    ``min_face`` of its shorter side (and than ``MIN_FACE_PIXELS``) are ignored.
    """
    h, w = img.shape
    scale = min(1.0, HAAR_MAX_SIDE / max(h, w))
    small = (
        img
        if scale == 1.0
        else cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    )
    min_side = max(MIN_FACE_PIXELS, int(min(small.shape) * min_face))
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


def detect_face(img: np.ndarray, min_face: float = MIN_FACE) -> Box | None:
    """The largest frontal face ``(x, y, w, h)`` :func:`detect_faces` finds in ``img``, or None."""
    found = detect_faces(img, min_face)
    return max(found, key=lambda f: f[2] * f[3]) if found else None


def resize(img: np.ndarray, image_size: int) -> np.ndarray:
    """``img`` resized to ``image_size`` x ``image_size`` (area when shrinking, bilinear when enlarging)."""
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
    min_face: float = MIN_FACE,
) -> tuple[np.ndarray, bool]:
    """Crop and resize a uint8 grayscale image; returns ``(face, fell_back)`` where ``fell_back`` says that
    ``haar`` found no face (or ``box`` had no box) and the centred square was used instead. ``min_face``:
    as :func:`detect_faces` (``haar`` only)."""
    fell_back = False
    if face_crop == "haar":
        box = detect_face(img, min_face)
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
    """Pool worker: ``(item, image_size, face_crop, box[, min_face])`` -> ``(face, error reason, fell_back)``.

    ``item`` is a file path or an already decoded uint8 array (CSV datasets); ``min_face`` defaults to
    :data:`MIN_FACE`."""
    item, image_size, face_crop, box, min_face = (*args, MIN_FACE)[:5]
    try:
        img = item if isinstance(item, np.ndarray) else read_gray(item)
        face, fell_back = prepare_face(img, image_size, face_crop, box, min_face)
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


def check_min_face(value: Any, key: str = "min_face") -> float:
    """``value`` as a face fraction in [0, 1]; ConfigError (one line naming ``key``) otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(
            f"{key}={value!r} must be a number in [0, 1] (the smallest face, as a fraction of the "
            "image's shorter side)"
        )
    return float(value)


def is_face_crop(shape: tuple[int, ...], image_size: int) -> bool:
    """``detect="auto"``: is an image of this shape (``(H, W, ...)``) taken as a face crop? True when its
    longer side is at most ``AUTO_CROP_FACTOR`` times ``image_size``."""
    return max(shape[:2]) <= AUTO_CROP_FACTOR * image_size


def face_inputs(
    gray: np.ndarray, image_size: int, detect: bool | str = "auto", min_face: float = MIN_FACE
) -> tuple[list[np.ndarray], list[Box | None]]:
    """The network inputs of a uint8 gray image ``[H, W]`` and their boxes.

    Args:
        gray: a uint8 gray image ``[H, W]``.
        image_size: the side ``S`` of the network's square input.
        detect: ``"auto"``, True or False, already parsed (anything but False and ``"auto"`` detects).
        min_face: the smallest face looked for (:func:`detect_faces`).

    Returns:
        ``(faces, boxes)``: uint8 faces ``[S, S]`` and their ``(x, y, w, h)`` boxes, or ``[None]`` for the
        whole image taken as a crop; two empty lists when the detector finds no face.
    """
    if detect is False or (detect == "auto" and is_face_crop(gray.shape, image_size)):
        return [resize(center_square(gray), image_size)], [None]
    boxes = detect_faces(gray, min_face)
    crops = [resize(crop_square(gray, x + w / 2, y + h / 2, max(w, h)), image_size) for x, y, w, h in boxes]
    return crops, list(boxes)
