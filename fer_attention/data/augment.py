"""Label-preserving augmentation built from config: a list of transforms, each a dict with ``_target_``.

Two families, chosen by the ``augment`` config group:

- albumentations (``augment=default|strong|crop_erase``): composed with ``albumentations.Compose``;
  albumentations is imported only here, and only when such a list is built;
- plain torch (``augment=torch``): :class:`TorchHorizontalFlip`, :class:`TorchAffine` and
  :class:`TorchBrightnessContrast` on uint8 tensors, composed with :class:`TorchCompose`, for machines
  without albumentations (the lent GPU machine, experiments/gpu.sh). The same kinds and ranges as
  ``augment=default``.

Both pipelines have albumentations' calling convention, which the datasets use:
``pipeline(image=uint8 [H, W])["image"]`` and ``pipeline.set_random_seed(seed)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


class TorchTransform:
    """One random transform of a uint8 tensor ``[H, W]`` or ``[C, H, W]``, applied with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"augment: p={p} of {type(self).__name__} is not in [0, 1]")
        self.p = float(p)

    def __call__(self, image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if float(torch.rand((), generator=gen)) >= self.p:
            return image
        return self.apply(image, gen)

    def apply(self, image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


class TorchHorizontalFlip(TorchTransform):
    """Mirror the face left to right."""

    def apply(self, image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return image.flip(-1)


class TorchAffine(TorchTransform):
    """Shift (``translate``: fraction of each side, either way), scale (``scale``: [low, high]) and rotate
    (``rotate``: degrees, either way) about the centre; bilinear, pixels from outside the face are 0."""

    def __init__(
        self,
        translate: float = 0.06,
        scale: Sequence[float] = (0.92, 1.08),
        rotate: float = 10.0,
        p: float = 0.8,
    ) -> None:
        super().__init__(p)
        self.translate = float(translate)
        self.scale = (float(scale[0]), float(scale[1]))
        self.rotate = float(rotate)
        if self.translate < 0 or self.rotate < 0 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(
                f"augment: TorchAffine needs translate >= 0, rotate >= 0 and 0 < scale[0] <= scale[1] "
                f"(got translate={translate}, scale={list(self.scale)}, rotate={rotate})"
            )

    def apply(self, image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        h, w = image.shape[-2:]
        s = _uniform(gen, *self.scale)
        a = math.radians(_uniform(gen, -self.rotate, self.rotate))
        tx = _uniform(gen, -self.translate, self.translate) * w
        ty = _uniform(gen, -self.translate, self.translate) * h
        # output pixel p (pixels from the centre) reads input pixel A^-1 (p - t), A = s R(a); affine_grid
        # works in [-1, 1] coordinates, x scaled by w / 2 and y by h / 2
        cos, sin = math.cos(a) / s, math.sin(a) / s
        inv = torch.tensor([[cos, sin], [-sin, cos]], dtype=torch.float64)
        d = torch.tensor([w / 2.0, h / 2.0], dtype=torch.float64)
        theta = torch.empty(1, 2, 3, dtype=torch.float64)
        theta[0, :, :2] = inv * d[None, :] / d[:, None]
        theta[0, :, 2] = -(inv @ torch.tensor([tx, ty], dtype=torch.float64)) / d
        x = image.reshape(1, -1, h, w).float()
        grid = F.affine_grid(theta.float(), list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.round_().clamp_(0, 255).to(torch.uint8).reshape(image.shape)


class TorchBrightnessContrast(TorchTransform):
    """``image * (1 + c) + 255 b`` with ``c`` in [-contrast, contrast] and ``b`` in [-brightness,
    brightness] (albumentations' RandomBrightnessContrast, brightness relative to the maximum), clipped."""

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, p: float = 0.5) -> None:
        super().__init__(p)
        self.brightness, self.contrast = float(brightness), float(contrast)

    def apply(self, image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        alpha = 1.0 + _uniform(gen, -self.contrast, self.contrast)
        beta = 255.0 * _uniform(gen, -self.brightness, self.brightness)
        return (image.float() * alpha + beta).round_().clamp_(0, 255).to(torch.uint8)


class TorchCompose:
    """The torch transforms in order, one ``torch.Generator`` for all of them (seeded by
    ``set_random_seed``; until then from ``torch.initial_seed()``). Takes and returns a numpy array or a
    tensor, as given."""

    def __init__(self, transforms: Sequence[TorchTransform]) -> None:
        self.transforms = list(transforms)
        self.set_random_seed(torch.initial_seed() % 2**32)

    def set_random_seed(self, seed: int) -> None:
        self._seed = int(seed)
        self._gen: torch.Generator | None = None

    def _generator(self) -> torch.Generator:
        if self._gen is None:  # created lazily: a Generator does not travel to DataLoader workers
            self._gen = torch.Generator().manual_seed(self._seed)
        return self._gen

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_gen": None}

    def __call__(self, *, image: np.ndarray | torch.Tensor) -> dict[str, np.ndarray | torch.Tensor]:
        as_numpy = isinstance(image, np.ndarray)
        x = torch.from_numpy(np.ascontiguousarray(image)) if as_numpy else image
        if x.dtype != torch.uint8:
            raise TypeError(f"augment=torch: images must be uint8, got {x.dtype}")
        gen = self._generator()
        for t in self.transforms:
            x = t(x, gen)
        return {"image": x.numpy() if as_numpy else x}


def build_augmentation(transforms: Sequence[dict[str, Any]] | None) -> Any:
    """Compose the transforms listed in config (each a dict with ``_target_``): a :class:`TorchCompose`
    when every one is a :class:`TorchTransform`, else ``albumentations.Compose``; None if empty."""
    if not transforms:
        return None
    built = [instantiate(t) for t in transforms]
    if all(isinstance(t, TorchTransform) for t in built):
        return TorchCompose(built)
    if any(isinstance(t, TorchTransform) for t in built):
        raise ValueError("augment.train mixes torch and albumentations transforms; use one family")
    import albumentations as A  # only the albumentations path needs it (augment=torch does not)

    return A.Compose(built)
