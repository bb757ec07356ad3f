"""Procedurally rendered grayscale faces of the seven basic expressions (the built-in default dataset).

Faces are drawn from signed-distance fields in a face-centred coordinate frame (face half-height about 1,
``y`` pointing down) at a supersampled resolution and area-averaged down to ``image_size``. Each subject has
a fixed identity (face shape, feature layout, tones, hair, glasses); each expression is a prototype vector
of facial-action-like parameters whose intensity ramps from onset to apex along a short sequence. Pose,
lighting, contrast, noise and blur vary per image so that raw-pixel linear models do poorly while the
expressions stay readable by shape.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import cv2
import numpy as np

CLASS_NAMES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

AU_NAMES: tuple[str, ...] = (
    "brow_raise",  # whole brow up (+) / down (-)
    "brow_inner",  # inner brow end up (+, sad/fear) / down and in (-, angry)
    "eye_open",  # relative upper-eyelid opening: + wide, - narrowed
    "mouth_corner",  # lip corners up (+) / down (-)
    "jaw_open",  # jaw drop
    "lip_stretch",  # relative mouth width: + stretched, - pursed/pressed
    "nose_wrinkle",  # lines on the nose bridge, nostrils raised
    "upper_lip_raise",  # upper lip lifted off the lower lip
    "teeth",  # visibility of the teeth inside an open mouth
    "cheek",  # cheek raise: nasolabial folds and lower-lid push
)

# Apex parameter vectors, rows in CLASS_NAMES order, columns in AU_NAMES order.
PROTOTYPES = np.array(
    [
        # brow  inner  eye   corner jaw   stretch wrinkle ulip  teeth cheek
        [-0.14, -0.19, -0.60, -0.06, 0.00, -0.36, 0.42, 0.00, 0.0, 0.0],  # angry
        [-0.08, -0.05, -0.54, -0.10, 0.02, 0.06, 1.20, 0.13, 1.0, 0.6],  # disgust
        [0.13, 0.16, 0.84, -0.06, 0.12, 0.48, 0.00, 0.02, 1.0, 0.0],  # fear
        [0.00, 0.00, -0.36, 0.18, 0.07, 0.36, 0.00, 0.02, 1.0, 1.2],  # happy
        [-0.02, 0.22, -0.24, -0.17, 0.00, -0.06, 0.00, 0.00, 0.0, 0.0],  # sad
        [0.23, 0.04, 0.96, 0.00, 0.36, -0.54, 0.00, 0.00, 0.1, 0.0],  # surprise
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.0, 0.0],  # neutral
    ],
    dtype=np.float64,
)
AU_JITTER = np.array([0.025, 0.025, 0.10, 0.018, 0.015, 0.06, 0.08, 0.01, 0.1, 0.05])

_VIEW = 1.25  # the image spans [-_VIEW, _VIEW] face units in x and y
_ID_TAG, _IMG_TAG = 0x1D, 0x1F


@dataclass(frozen=True)
class SyntheticFaces:
    """Rendered faces with per-image label, subject, sequence and frame index."""

    images: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    sequences: np.ndarray
    frames: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class _Identity:
    face_a: float
    face_b: float
    eye_x: float
    eye_y: float
    eye_w: float
    eye_h: float
    iris_r: float
    brow_gap: float
    brow_thick: float
    brow_len: float
    brow_arch: float
    nose_len: float
    mouth_y: float
    mouth_w: float
    lip_thick: float
    skin: float
    background: float
    hair: float
    hair_w: float
    hair_top: float
    hair_drop: float
    fringe_y: float
    fringe_curve: float
    glasses: bool
    glasses_tone: float


def _identity(seed: int, subject: int) -> _Identity:
    r = np.random.default_rng([seed, _ID_TAG, subject])
    u = r.uniform
    skin = u(0.45, 0.85)
    # Background avoids the skin tone so the face outline stays visible.
    background = (skin + u(0.25, 0.7) * r.choice([-1.0, 1.0])) % 1.0
    return _Identity(
        face_a=u(0.66, 0.80),
        face_b=u(0.92, 1.02),
        eye_x=u(0.27, 0.35),
        eye_y=u(-0.24, -0.14),
        eye_w=u(0.115, 0.14),
        eye_h=u(0.055, 0.07),
        iris_r=u(0.055, 0.068),
        brow_gap=u(0.15, 0.19),
        brow_thick=u(0.04, 0.07),
        brow_len=u(0.28, 0.36),
        brow_arch=u(0.0, 0.05),
        nose_len=u(0.30, 0.40),
        mouth_y=u(0.42, 0.52),
        mouth_w=u(0.21, 0.27),
        lip_thick=u(0.035, 0.06),
        skin=skin,
        background=0.08 + 0.84 * background,
        hair=u(0.03, max(0.06, skin - 0.3)),
        hair_w=u(0.03, 0.2),
        hair_top=u(0.0, 0.1),
        hair_drop=u(-0.4, 0.95),
        fringe_y=u(-1.0, -0.7),
        fringe_curve=u(-0.15, 0.3),
        glasses=bool(r.random() < 0.3),
        glasses_tone=u(0.05, 0.35),
    )


def _cover(d: np.ndarray, px: float) -> np.ndarray:
    """Anti-aliased coverage of the region ``d < 0`` for a signed distance in face units."""
    return np.clip(0.5 - d / px, 0.0, 1.0)


def _ellipse(x: np.ndarray, y: np.ndarray, a: float, b: float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse centred at the origin."""
    k0 = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    k1 = np.sqrt((x / (a * a)) ** 2 + (y / (b * b)) ** 2) + 1e-9
    return k0 * (k0 - 1.0) / k1


def _stroke(
    ax: np.ndarray, y: np.ndarray, x0: float, x1: float, coef: tuple[float, float, float], thick: float
) -> np.ndarray:
    """Signed distance to a thick curve ``y = c0 + c1 s + c2 s^2`` (``s = x - x0``) for ``x0 <= x <= x1``."""
    c0, c1, c2 = coef
    s = np.clip(ax, x0, x1) - x0
    dy = (y - (c0 + c1 * s + c2 * s * s)) / np.sqrt(1.0 + (c1 + 2.0 * c2 * s) ** 2)
    dx = np.maximum(x0 - ax, 0.0) + np.maximum(ax - x1, 0.0)
    return np.sqrt(dx * dx + dy * dy) - 0.5 * thick


def _band(x: np.ndarray, y: np.ndarray, half_w: float, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Approximate signed distance to the region ``top < y < bottom``, ``|x| < half_w``."""
    return np.maximum(np.maximum(top - y, y - bottom), np.abs(x) - half_w)


_Actions = namedtuple("_Actions", AU_NAMES)


class _Canvas:
    """The supersampled image being painted, over its face-coordinate grid ``(x, y)`` of pixel size ``px``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, px: float, background: float) -> None:
        self.x, self.y, self.ax, self.px = x, y, np.abs(x), px
        self.img = np.full(x.shape, background, dtype=x.dtype)

    def paint(self, d: np.ndarray, tone, alpha: float = 1.0) -> None:
        """Blend ``tone`` over the region ``d < 0`` (anti-aliased), with opacity ``alpha``."""
        a = _cover(d, self.px)
        if alpha != 1.0:
            a = a * alpha
        self.img += a * (tone - self.img)


def _render_face(ident: _Identity, au: np.ndarray, x: np.ndarray, y: np.ndarray, px: float) -> np.ndarray:
    """Paint one face on the face-coordinate grid ``(x, y)``; returns intensities in [0, 1]."""
    e = _Actions(*au.tolist())
    canvas = _Canvas(x, y, px, ident.background)
    dark = min(ident.hair + 0.1, ident.skin - 0.25)
    _paint_head(canvas, ident)
    _paint_eyes(canvas, ident, e, dark)
    _paint_brows(canvas, ident, e, dark)
    if ident.glasses:
        _paint_glasses(canvas, ident)
    nose_y = _paint_nose(canvas, ident, e)
    _paint_mouth(canvas, ident, e, dark, nose_y)
    return canvas.img


def _paint_head(c: _Canvas, ident: _Identity) -> None:
    """Neck, hair behind the head, ears, then the face (a little shaded towards its edge) and the fringe."""
    x, y, ax, skin, fa, fb = c.x, c.y, c.ax, ident.skin, ident.face_a, ident.face_b
    c.paint(np.maximum(ax - 0.36 * fa / 0.73, 0.55 - y), skin * 0.8)
    hair_d = np.maximum(
        _ellipse(x, y + 0.1 + ident.hair_top, fa + ident.hair_w, fb + 0.04 + ident.hair_top),
        y - ident.hair_drop,
    )
    c.paint(hair_d, ident.hair)
    c.paint(_ellipse(ax - fa + 0.02, y + 0.05, 0.09, 0.17), skin * 0.9)
    r2 = (x / fa) ** 2 + (y / fb) ** 2
    face_d = _ellipse(x, y, fa, fb)
    c.paint(face_d, skin * (1.0 - 0.12 * np.minimum(r2, 1.0)))
    c.paint(np.maximum(face_d, y - (ident.fringe_y + ident.fringe_curve * x * x)), ident.hair)


def _paint_eyes(c: _Canvas, ident: _Identity, e: _Actions, dark: float) -> None:
    """Eyes: white, iris clipped to the eye opening, lid outline."""
    y, ax, ey = c.y, c.ax, ident.eye_y
    h_up = ident.eye_h * max(1.0 + e.eye_open - 0.3 * e.cheek, 0.12)
    h_lo = ident.eye_h * (1.0 - 0.45 * e.cheek + 0.15 * min(e.eye_open, 0.0))
    cy = ey + 0.5 * (h_lo - h_up)
    hh = 0.5 * (h_up + h_lo)
    ew = ident.eye_w * (1.0 + 0.1 * min(e.eye_open, 0.0))
    eye_d = _ellipse(ax - ident.eye_x, y - cy, ew, hh)
    c.paint(eye_d, min(ident.skin + 0.3, 0.95))
    iris_d = np.maximum(np.hypot(ax - ident.eye_x, y - ey - 0.1 * ident.eye_h) - ident.iris_r, eye_d)
    c.paint(iris_d, 0.12)
    c.paint(np.abs(eye_d) - 0.012 - 0.01 * (y < cy), dark, 0.9)


def _paint_brows(c: _Canvas, ident: _Identity, e: _Actions, dark: float) -> None:
    """Brows: inner end at ``x_in``, outer end at ``x_in + brow_len``."""
    x_in = ident.eye_x - 0.14 + 0.3 * min(e.brow_inner, 0.0)
    length, arch = ident.brow_len, ident.brow_arch
    by = ident.eye_y - ident.brow_gap - e.brow_raise - e.brow_inner - 0.3 * max(e.eye_open, 0.0) * ident.eye_h
    coef = (by, (e.brow_inner - 4.0 * arch) / length, 4.0 * arch / length**2)
    thick = ident.brow_thick * (1.0 + 1.5 * max(-e.brow_inner, 0.0))
    c.paint(_stroke(c.ax, c.y, x_in, x_in + length, coef, thick), dark)


def _paint_glasses(c: _Canvas, ident: _Identity) -> None:
    ey = ident.eye_y
    ring = np.abs(_ellipse(c.ax - ident.eye_x, c.y - ey, ident.eye_w + 0.06, 0.105)) - 0.018
    bridge = _stroke(c.ax, c.y, 0.0, ident.eye_x - ident.eye_w - 0.06, (ey - 0.03, 0.0, 0.0), 0.03)
    c.paint(np.minimum(ring, bridge), ident.glasses_tone)


def _paint_nose(c: _Canvas, ident: _Identity, e: _Actions) -> float:
    """Nose: bottom arc and nostrils, raised by the nose wrinkle; wrinkle lines on the bridge. Returns the
    height of the nose's bottom."""
    y, ax, skin, ey = c.y, c.ax, ident.skin, ident.eye_y
    ny = ey + ident.nose_len - 0.04 * e.nose_wrinkle
    c.paint(_stroke(ax, y, 0.0, 0.09, (ny + 0.03, 0.0, -2.5), 0.025), skin * 0.7, 0.8)
    c.paint(_ellipse(ax - 0.055, y - ny - 0.01, 0.03, 0.016), skin * 0.35, 0.9)
    c.paint(_stroke(ax, y, 0.06, 0.09, (ny - 0.05, 1.5, 0.0), 0.02), skin * 0.7, 0.6)
    if e.nose_wrinkle > 0.05:
        for k in range(3):
            yk = ey + 0.05 + 0.055 * k
            c.paint(_stroke(ax, y, 0.0, 0.075, (yk, 0.0, 4.0), 0.022), skin * 0.45, min(e.nose_wrinkle, 1.0))
    return ny


def _paint_mouth(c: _Canvas, ident: _Identity, e: _Actions, dark: float, nose_y: float) -> None:
    """Mouth: mid line, opening between the lips, teeth, lips; nasolabial folds (from the nose at
    ``nose_y``) for cheek raise."""
    x, y, ax, skin = c.x, c.y, c.ax, ident.skin
    corner, jaw, ulip = e.mouth_corner, e.jaw_open, e.upper_lip_raise
    my, mw = ident.mouth_y, ident.mouth_w * (1.0 + e.lip_stretch)
    t = np.clip(x / mw, -1.0, 1.0)
    prof = np.sqrt(np.maximum(1.0 - t * t, 0.0))
    mid = my - corner * t * t
    top = mid - (0.35 * jaw + ulip) * prof
    bottom = mid + 0.65 * jaw * prof
    lip = ident.lip_thick * (1.0 - 0.6 * max(-e.lip_stretch, 0.0))
    c.paint(_band(x, y, mw, top - 0.8 * lip * prof, top), skin * 0.72)
    c.paint(_band(x, y, mw, bottom, bottom + lip * prof), skin * 0.78)
    c.paint(_stroke(ax, y, 0.0, mw, (my, 0.0, -corner / mw**2), 0.025), dark * 0.8)
    if jaw + ulip > 0.0:
        c.paint(_band(x, y, mw, top, bottom), 0.08)
        if e.teeth > 0.05:
            c.paint(
                _band(x, y, mw * 0.85, top, np.minimum(top + 0.05, bottom)),
                min(skin + 0.25, 0.92),
                min(e.teeth, 1.0),
            )
    if e.cheek > 0.1:
        cx0, cx1 = 0.13, mw + 0.06
        cy0, cy1 = nose_y + 0.02, my - corner + 0.03
        c.paint(
            _stroke(ax, y, cx0, cx1, (cy0, (cy1 - cy0) / (cx1 - cx0) + 1.2 * (cx1 - cx0), -1.2), 0.022),
            skin * 0.6,
            0.8 * min(e.cheek, 1.0),
        )


class _Grid:
    """The supersampled face-coordinate grid ``(x, y)`` of one image size, and the image-plane coordinates
    of its pixels (in [-0.5, 0.5]) that the lighting gradient is drawn on."""

    def __init__(self, image_size: int) -> None:
        self.size, self.supersample = image_size, 2 if image_size >= 40 else 3
        res = image_size * self.supersample
        self.px = 2.0 * _VIEW / res
        coords = (np.arange(res) + 0.5) * self.px - _VIEW
        self.x, self.y = (g.astype(np.float32) for g in np.meshgrid(coords, coords))
        lin = (np.arange(image_size) + 0.5) / image_size - 0.5
        self.light_x, self.light_y = np.meshgrid(lin, lin)


def render_synthetic_faces(
    num_subjects: int = 60,
    frames_per_sequence: int = 4,
    image_size: int = 48,
    seed: int = 0,
    min_intensity: float = 0.5,
    nuisance: float = 1.0,
) -> SyntheticFaces:
    """Render ``num_subjects x 7 expressions x frames_per_sequence`` faces, deterministically from ``seed``.

    Frame ``f`` of a sequence shows the expression at intensity
    ``min_intensity + (1 - min_intensity) * f / (frames_per_sequence - 1)``; ``nuisance`` scales pose,
    lighting, noise and blur variation (0 gives clean, centred faces).
    """
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16, got {image_size}")
    if num_subjects < 1 or frames_per_sequence < 1:
        raise ValueError("num_subjects and frames_per_sequence must be positive")
    n_cls = len(CLASS_NAMES)
    grid = _Grid(image_size)
    n = num_subjects * n_cls * frames_per_sequence
    images = np.empty((n, image_size, image_size), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    subjects = np.empty(n, dtype=np.int64)
    sequences = np.empty(n, dtype=np.int64)
    frames = np.empty(n, dtype=np.int64)
    i = 0
    for s in range(num_subjects):
        ident = _identity(seed, s)
        for c in range(n_cls):
            for f in range(frames_per_sequence):
                r = np.random.default_rng([seed, _IMG_TAG, s, c, f])
                ramp = f / (frames_per_sequence - 1) if frames_per_sequence > 1 else 1.0
                intensity = min_intensity + (1.0 - min_intensity) * ramp
                au = PROTOTYPES[c] * intensity + r.normal(0.0, 1.0, len(AU_NAMES)) * AU_JITTER
                au[[4, 7, 9]] = np.maximum(au[[4, 7, 9]], 0.0)  # jaw, upper lip and cheek only act one way
                images[i] = _photograph(_posed_face(ident, au, r, grid, nuisance), r, grid, nuisance)
                labels[i], subjects[i], frames[i] = c, s, f
                sequences[i] = s * n_cls + c
                i += 1
    return SyntheticFaces(images, labels, subjects, sequences, frames, CLASS_NAMES)


def _posed_face(
    ident: _Identity, au: np.ndarray, r: np.random.Generator, grid: _Grid, nuisance: float
) -> np.ndarray:
    """The face under a random pose (rotation, scale, shift), area-averaged down to the image size."""
    # Inverse pose: image coordinates -> face coordinates.
    theta = np.deg2rad(r.uniform(-8.0, 8.0) * nuisance)
    scale = 1.0 + r.uniform(-0.08, 0.08) * nuisance
    shift = r.uniform(-3.0, 3.0, 2) * nuisance * (2.0 * _VIEW / 48.0)
    cos, sin = float(np.cos(theta) / scale), float(np.sin(theta) / scale)
    dx, dy = grid.x - float(shift[0]), grid.y - float(shift[1])
    face = _render_face(ident, au, cos * dx + sin * dy, -sin * dx + cos * dy, grid.px * 1.0 / scale)
    return face.reshape(grid.size, grid.supersample, grid.size, grid.supersample).mean(axis=(1, 3))


def _photograph(img: np.ndarray, r: np.random.Generator, grid: _Grid, nuisance: float) -> np.ndarray:
    """A random lighting gradient, contrast, brightness, blur and noise over ``img``; as uint8."""
    phi = r.uniform(0.0, 2.0 * np.pi)
    lx, ly = grid.light_x, grid.light_y
    img = img * (1.0 + r.uniform(0.0, 0.6) * nuisance * (np.cos(phi) * lx + np.sin(phi) * ly))
    img = (img - 0.5) * (1.0 + r.uniform(-0.25, 0.25) * nuisance) + 0.5 + r.uniform(-0.1, 0.1) * nuisance
    sigma = r.uniform(0.0, 0.7) * nuisance * grid.size / 48.0
    if sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = img + r.normal(0.0, r.uniform(0.0, 0.03) * nuisance, img.shape)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
