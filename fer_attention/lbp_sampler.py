"""Bilinear sampling of the P neighbours on radius R of every pixel, exactly as scikit-image's
``local_binary_pattern`` computes them: the same neighbour coordinates (rounded to 5 decimals), the same
interpolation fractions in float64 and zeros outside the image. :mod:`fer_attention.lbp` turns the samples
into codes."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["Neighbour", "Sampler", "cached_sampler", "neighbours"]


@dataclass(frozen=True)
class Neighbour:
    """Sample point ``(r + dr, c + dc)`` with the integer offsets of its four bilinear taps."""

    dr: float
    dc: float
    r0: int  # floor(dr)
    r1: int  # ceil(dr)
    c0: int
    c1: int


@functools.lru_cache(maxsize=64)
def neighbours(P: int, R: float) -> tuple[Neighbour, ...]:
    R = float(np.float32(R))  # scikit-image's Cython signature takes R as a C float
    angles = 2 * np.pi * np.arange(P, dtype=np.double) / P
    rp = np.round(-R * np.sin(angles), 5)
    cp = np.round(R * np.cos(angles), 5)
    return tuple(
        Neighbour(float(r), float(c), math.floor(r), math.ceil(r), math.floor(c), math.ceil(c))
        for r, c in zip(rp, cp, strict=True)
    )


@functools.lru_cache(maxsize=16)
def _fractions(P: int, R: float, H: int, Wp: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear fractions ``(x + offset) - floor(x + offset)`` in float64, exactly as scikit-image computes
    them (they vary in the last bits with x): ``[P, H]`` for rows and ``[P, Wp]`` for columns."""
    nbrs = neighbours(P, R)
    rows, cols = np.arange(H, dtype=np.float64), np.arange(Wp, dtype=np.float64)
    dr = np.stack([(rows + n.dr) - (rows + n.r0) for n in nbrs])
    dc = np.stack([(cols + n.dc) - (cols + n.c0) for n in nbrs])
    return dr, dc


class Sampler:
    """Bilinear samples of all neighbours on a zero-padded, row-flattened batch of images.

    Each image is padded by ``pad`` on every side (plus one extra bottom row) and flattened, so a
    neighbour is a contiguous slice of ``H * Wp`` values per image. Outputs are therefore computed on an
    ``H x Wp`` grid and the ``Wp - W`` extra columns are cropped at the end.
    """

    def __init__(self, P: int, R: float, H: int, W: int, dtype: torch.dtype, device: torch.device):
        self.neighbours = nbrs = neighbours(P, R)
        self.pad = max(max(abs(n.r0), abs(n.r1), abs(n.c0), abs(n.c1)) for n in nbrs)
        self.H, self.W, self.Wp = H, W, W + 2 * self.pad
        dr, dc = (torch.from_numpy(f).to(dtype).to(device) for f in _fractions(P, R, H, self.Wp))
        # Weights (1 - dr, dr) of the top/bottom taps and (1 - dc, dc) of the left/right taps of each
        # neighbour, laid out over the flattened H x Wp grid: [P, H * Wp] each.
        size = (len(nbrs), H, self.Wp)
        dr, dc = (
            dr[:, :, None].expand(size).reshape(len(nbrs), -1),
            dc[:, None, :].expand(size).reshape(len(nbrs), -1),
        )
        self.row_w = list(zip(1 - dr, dr, strict=True))
        self.col_w = list(zip(1 - dc, dc, strict=True))
        # How many neighbours use each row interpolation (row, left column, column fraction).
        keys = [(r, n.c0, n.dc) for n in nbrs if n.c0 != n.c1 for r in sorted({n.r0, n.r1})]
        self.row_uses = {key: keys.count(key) for key in keys}

    def padded(self, img: torch.Tensor) -> torch.Tensor:
        """[n, H, W] -> [n, (H + 2 pad + 1) * Wp], zeros outside the image."""
        p = self.pad
        return F.pad(img, (p, p, p, p + 1)).flatten(1)

    def tap(self, flat: torch.Tensor, r: int, c: int) -> torch.Tensor:
        start = (self.pad + r) * self.Wp + self.pad + c
        return flat[:, start : start + self.H * self.Wp]

    def samples(self, flat: torch.Tensor) -> Iterator[tuple[torch.Tensor, bool]]:
        """Yield ``(neighbour i, owned)`` for i = 0..P-1; only owned tensors may be modified in place.

        Neighbour i is computed as scikit-image does: ``(1-dr)*top + dr*bottom`` with the row
        interpolations ``top``, ``bottom = (1-dc)*left + dc*right``. A zero fraction makes the matching
        taps coincide and the formula return the tap exactly, so only interpolating taps are evaluated.
        Row interpolations used by several neighbours are computed once.
        """
        rows: dict[tuple, torch.Tensor] = {}
        uses = dict(self.row_uses)

        def row(i: int, r: int) -> tuple[torch.Tensor, bool]:
            n = self.neighbours[i]
            key = (r, n.c0, n.dc)
            if key not in rows:
                wc0, wc1 = self.col_w[i]
                rows[key] = (self.tap(flat, r, n.c0) * wc0).add_(self.tap(flat, r, n.c1) * wc1)
            uses[key] -= 1
            return (rows.pop(key), True) if uses[key] == 0 else (rows[key], False)

        for i, n in enumerate(self.neighbours):
            wr0, wr1 = self.row_w[i]
            if n.c0 == n.c1:
                if n.r0 == n.r1:
                    yield self.tap(flat, n.r0, n.c0), False
                else:
                    yield (self.tap(flat, n.r0, n.c0) * wr0).add_(self.tap(flat, n.r1, n.c0) * wr1), True
                continue
            top, owned = row(i, n.r0)
            if n.r0 == n.r1:
                yield top, owned
                continue
            top = top.mul_(wr0) if owned else top * wr0
            bottom, owned = row(i, n.r1)
            yield top.add_(bottom.mul_(wr1) if owned else bottom * wr1), True

    def crop(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.view(-1, self.H, self.Wp)[:, :, : self.W]


# one sampler per image size, dtype and device: the weights are computed once
cached_sampler = functools.lru_cache(maxsize=16)(Sampler)
