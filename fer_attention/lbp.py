"""Local binary patterns (LBP) in pure torch: batched, device-agnostic and matching scikit-image.

For ``circle``, ``ror``, ``uniform``, ``nri_uniform`` and ``var``, :func:`local_binary_pattern` follows
``skimage.feature.local_binary_pattern``: same neighbour coordinates (rounded to 5 decimals), same
bilinear interpolation with zeros outside the image, same ``neighbour - centre >= 0`` threshold and same
code assignment, with the same floating-point operations in the same order, so float64 codes are
bit-identical to scikit-image's. The circular LBP is ``circle`` here and in the configs (``lbp=circle``);
scikit-image calls it ``default``, which is accepted as an alias, so that checkpoints recording
``lbp.method=default`` (the configs' name before) still load. Other dtypes are computed in float32, where a neighbour that ties with
its centre in exact arithmetic can round to either side of it: on images with many equal values a few
codes (about 0.1-0.5 % of the pixels) differ from scikit-image's, and ``var`` differs by rounding.

``basic`` is the classic 3x3 LBP without interpolation; see :func:`local_binary_pattern`. The bilinear
sampling of the neighbours is :mod:`fer_attention.lbp_sampler`.

Large batches are processed a chunk of images at a time so that temporaries stay in cache. Under
``torch.jit.trace`` (or ONNX export) the whole batch is one chunk; a trace is specific to the image size
(the batch size may vary).
"""

from __future__ import annotations

import functools
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fer_attention.lbp_sampler import Sampler, cached_sampler
from fer_attention.schema import LBPMethod

__all__ = ["ALIASES", "METHODS", "LBPLayer", "canonical_method", "local_binary_pattern", "num_codes"]

# the methods, in the one list that also types the config's lbp.method (fer_attention.schema.LBPMethod)
METHODS = LBPMethod.values()
# other names accepted for a method: scikit-image's name of the circular LBP, which the configs used too
ALIASES = {name: member.value for name, member in LBPMethod.__members__.items() if name != member.value}

_MAPPED = ("ror", "uniform", "nri_uniform")
_LUT_MAX_P = 16  # ror/uniform/nri_uniform use a 2**P lookup table up to here, torch ops beyond
_MAX_CODE_P = 31  # circle/ror codes are 32-bit integers, as in scikit-image
_CHUNK_PIXELS = 1 << 17  # images per chunk * H * W; keeps the temporaries of one chunk in cache

# basic: (row, col) offsets clockwise from the top-left neighbour, which holds the most significant bit.
_BASIC_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def canonical_method(method: str) -> str:
    """``method`` under its one name in :data:`METHODS` (``default`` -> ``circle``); others unchanged."""
    return ALIASES.get(method, method) if isinstance(method, str) else method


def check_args(method: str, P: int, R: float, key: str = "lbp") -> None:
    """Raise ValueError with one line naming ``<key>.method``, ``<key>.P`` or ``<key>.R`` (``lbp.method``
    ...: the keys of the ``lbp`` config group) and what is allowed."""
    method = canonical_method(method)
    if method not in METHODS:
        raise ValueError(f"{key}.method={method!r} is not one of {', '.join(METHODS)}")
    if isinstance(P, bool) or not isinstance(P, int | np.integer) or P < 1:
        raise ValueError(f"{key}.P={P!r} must be an integer >= 1")
    if method in ("circle", "ror") and P > _MAX_CODE_P:
        raise ValueError(
            f"{key}.P={P!r} must be <= {_MAX_CODE_P} for method {method!r} (codes are 32-bit integers)"
        )
    if (
        isinstance(R, bool)
        or not isinstance(R, int | float | np.integer | np.floating)
        or not 0 < R < math.inf
    ):
        raise ValueError(f"{key}.R={R!r} must be a number > 0")


def num_codes(method: str, P: int) -> int | None:
    """Number of distinct codes of ``method`` with ``P`` neighbours; ``None`` for ``var`` (real-valued)."""
    check_args(method, P, 1.0)
    return {
        "basic": 256,
        "circle": 2**P,
        "ror": 2**P,
        "uniform": P + 2,
        "nri_uniform": P * (P - 1) + 3,
        "var": None,
    }[canonical_method(method)]


def _map_patterns(bits: list, method: str, xp=torch):
    """int64 ror / uniform / nri_uniform codes from the P threshold bits (bit i = neighbour i).

    ``bits`` are bool arrays of the array module ``xp`` (numpy for the lookup tables, torch otherwise).
    """
    P = len(bits)
    ones = [xp.where(b, 1, 0) for b in bits]  # int64 in numpy and torch
    if method == "ror":
        code = xp.zeros_like(ones[0])
        for i, b in enumerate(ones):
            code = code + (b << i)
        best = code
        for k in range(1, P):  # minimum over all cyclic right rotations
            best = xp.minimum(best, ((code >> k) | (code << (P - k))) & ((1 << P) - 1))
        return best
    n_ones = xp.zeros_like(ones[0])
    for b in ones:
        n_ones = n_ones + b
    # scikit-image counts 0/1 changes along the chain without wrapping from the last bit to the first.
    changes = xp.zeros_like(n_ones)
    for a, b in zip(bits[:-1], bits[1:], strict=True):
        changes = changes + xp.where(a != b, 1, 0)
    uniform = changes <= 2
    if method == "uniform":
        return xp.where(uniform, n_ones, P + 1)
    first_one = xp.zeros_like(n_ones) + P
    first_zero = xp.zeros_like(n_ones) + P
    for i in reversed(range(P)):
        first_one = xp.where(bits[i], i, first_one)
        first_zero = xp.where(bits[i], first_zero, i)
    rot_index = xp.where(first_one == 0, n_ones - first_zero, P - first_one)
    code = 1 + (n_ones - 1) * P + rot_index
    code = xp.where(n_ones == 0, 0, xp.where(n_ones == P, P * (P - 1) + 1, code))
    return xp.where(uniform, code, P * (P - 1) + 2)


@functools.lru_cache(maxsize=16)
def _lookup_table(method: str, P: int) -> torch.Tensor | None:
    """int32 table ``circle code -> method code``, or None if not tabulated.

    An integer buffer is left alone by ``module.half()`` and the like, which would round the codes.
    """
    if method not in _MAPPED or P > _LUT_MAX_P:
        return None
    codes = np.arange(2**P, dtype=np.int64)
    table = _map_patterns([(codes >> i) & 1 == 1 for i in range(P)], method, np)
    return torch.from_numpy(table.astype(np.int32))


def _check_images(images: torch.Tensor, name: str, channels: tuple[int, ...]) -> None:
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor; got {type(images).__name__}")
    allowed = " or ".join(f"[N, {c}, H, W]" for c in channels)
    if images.dim() != 4 or images.shape[1] not in channels:
        raise ValueError(f"{name} must have shape {allowed}; got {tuple(images.shape)}")
    if images.shape[2] < 1 or images.shape[3] < 1:
        raise ValueError(f"{name} must have H, W >= 1; got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must have a floating-point dtype; got {images.dtype}")


def _basic_chunk(img: torch.Tensor) -> torch.Tensor:
    H, W = img.shape[-2:]
    Wp = W + 2
    flat = F.pad(img, (1, 1, 1, 2)).flatten(1)
    centre = flat[:, Wp + 1 : Wp + 1 + H * Wp]
    code = torch.zeros_like(centre)
    for k, (r, c) in enumerate(_BASIC_OFFSETS):
        start = (1 + r) * Wp + 1 + c
        code.add_((flat[:, start : start + H * Wp] - centre).ge_(0), alpha=2 ** (7 - k))
    return code.view(-1, H, Wp)[:, :, :W]


def _lbp_chunk(img: torch.Tensor, method: str, sampler: Sampler, lut: torch.Tensor | None) -> torch.Tensor:
    """Codes of a [n, H, W] chunk, in the compute dtype except for the int64 codes of the P > 16 mappings."""
    flat = sampler.padded(img)
    centre = sampler.tap(flat, 0, 0)
    P = len(sampler.neighbours)
    if method == "var":
        # scikit-image's accumulation order: sum and sum of squares over i, then the biased variance.
        total = torch.zeros_like(centre)
        squares = torch.zeros_like(centre)
        for t, owned in sampler.samples(flat):
            total.add_(t)
            squares.add_(t.mul_(t) if owned else t * t)
        var = squares.sub_(total.mul_(total).div_(P)).div_(P)
        return sampler.crop(var.masked_fill_(var == 0, math.nan))
    if method != "circle" and lut is None:
        bits = [(t - centre) >= 0 for t, _ in sampler.samples(flat)]
        return sampler.crop(_map_patterns(bits, method))
    # Bits as 0./1. in the float dtype (in-place float compares are far cheaper than bool ones).
    code = torch.zeros_like(centre)
    for i, (t, owned) in enumerate(sampler.samples(flat)):
        code.add_((t.sub_(centre) if owned else t - centre).ge_(0), alpha=2**i)
    if lut is not None:
        code = lut.index_select(0, code.to(torch.int32).view(-1)).view(code.shape)
    return sampler.crop(code)


def _compiler_disable(fn):
    """``fn``, run eagerly when ``torch.compile`` traces its caller (``torch.compiler.disable``), without
    importing ``torch._dynamo`` (about 1 s, most of ``fer-predict``'s start) before anything compiles:
    while Dynamo is not loaded nothing is being compiled, so ``fn`` is called as it is."""
    disabled: list = []

    @functools.wraps(fn)
    def eager_under_compile(*args, **kwargs):
        if "torch._dynamo" not in sys.modules:
            return fn(*args, **kwargs)
        if not disabled:
            disabled.append(torch.compiler.disable(fn))
        return disabled[0](*args, **kwargs)

    return eager_under_compile


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return device_type == "cuda" and torch.is_autocast_enabled()


def _whole_batch() -> bool:
    is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)  # torch < 2.3 lacks it
    return torch.jit.is_tracing() or is_compiling()


def _lbp(images: torch.Tensor, method: str, P: int, R: float, lut: torch.Tensor | None) -> torch.Tensor:
    """Codes of validated [N, 1, H, W] images in their dtype; ``lut`` as from :func:`_lookup_table`."""
    N, _, H, W = images.shape
    work = images[:, 0].to(torch.float64 if images.dtype == torch.float64 else torch.float32)
    if method == "basic":
        codes = _basic_chunk
    else:
        sampler = cached_sampler(P, R, H, W, work.dtype, work.device)
        if lut is not None:
            lut = lut.to(device=work.device, dtype=work.dtype)

        def codes(chunk: torch.Tensor) -> torch.Tensor:
            return _lbp_chunk(chunk, method, sampler, lut)

    # A trace or compiled graph must not depend on the batch size, so it gets the whole batch at once.
    per_chunk = max(1, _CHUNK_PIXELS // (H * W))
    if N <= per_chunk or _whole_batch():
        return codes(work).unsqueeze(1).to(images.dtype).contiguous()
    out = torch.empty(images.shape, dtype=images.dtype, device=images.device)
    for start in range(0, N, per_chunk):
        out[start : start + per_chunk, 0] = codes(work[start : start + per_chunk])
    return out


def local_binary_pattern(
    images: torch.Tensor, method: str = "circle", P: int = 8, R: float = 1.0
) -> torch.Tensor:
    """LBP codes of a batch of gray images ``[N, 1, H, W]``, returned as ``[N, 1, H, W]`` in the input dtype.

    ``circle``, ``ror``, ``uniform``, ``nri_uniform`` and ``var`` follow
    ``skimage.feature.local_binary_pattern(image, P, R, method)`` (method ``default`` for ``circle``;
    ``default`` is accepted here too, see :data:`ALIASES`) and equal it exactly in float64
    (other dtypes are computed in float32, see the module docstring). ``var`` is NaN where the
    neighbours' variance is 0, as in scikit-image.

    ``basic`` ignores ``P`` and ``R``: 8 neighbours at integer offsets, bit = neighbour >= centre,
    weights 128, 64, 32, 16, 8, 4, 2, 1 clockwise from the top-left neighbour (top-left, top,
    top-right, right, bottom-right, bottom, bottom-left, left). Neighbours outside the image are 0.
    """
    check_args(method, P, R)
    _check_images(images, "images", (1,))
    method, P, R = canonical_method(method), int(P), float(R)
    return _lbp(images, method, P, R, _lookup_table(method, P))


class LBPLayer(nn.Module):
    """Fixed LBP transform of ``[N, 1 or 3, H, W]`` images; RGB becomes 0.299 R + 0.587 G + 0.114 B.

    No parameters, no gradients: the output never requires grad. With ``normalize`` the codes are
    divided by the largest possible code (``num_codes - 1``), and ``var`` by each image's maximum; for
    ``var`` zero-variance (NaN) and rounding-negative values become 0 so the output stays in [0, 1].
    The ror/uniform/nri_uniform lookup table is a non-persistent buffer, so state dicts stay empty; the
    interpolation weights depend on the image size and are cached per size, dtype and device.
    """

    def __init__(self, method: str = "circle", P: int = 8, R: float = 1.0, normalize: bool = True):
        super().__init__()
        check_args(method, P, R)
        method = canonical_method(method)
        self.method, self.P, self.R, self.normalize = method, int(P), float(R), bool(normalize)
        codes = num_codes(method, P)
        self.scale = None if codes is None else 1.0 / (codes - 1)
        lut = _lookup_table(method, self.P)
        self.register_buffer("lut", None if lut is None else lut.clone(), persistent=False)

    def extra_repr(self) -> str:
        return f"method={self.method!r}, P={self.P}, R={self.R}, normalize={self.normalize}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "LBPLayer input", (1, 3))
        if _autocast_enabled(x.device.type):
            # Codes from the full-precision input under mixed precision (trainer.precision=bf16-mixed):
            # no op here is on autocast's lower-precision lists today, and this keeps it so.
            with torch.autocast(x.device.type, enabled=False):
                return self._codes(x)
        return self._codes(x)

    # Under torch.compile (model.compile=true) the layer runs eagerly, between two compiled graphs: it is
    # under 1% of a training step, has no gradient, and its float64 interpolation fractions come from
    # numpy, which Dynamo would re-trace as torch ops instead of reusing these exact values.
    @_compiler_disable
    def _codes(self, x: torch.Tensor) -> torch.Tensor:
        out = self._normalized(self._gray(x.detach()))
        if out.shape[0] > 1 and "torch._dynamo" in sys.modules:
            # the graph after the layer takes the batch size as a symbol, as FERModule marks the input's
            torch._dynamo.maybe_mark_dynamic(out, 0)
        return out

    def _gray(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0:1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114 if x.shape[1] == 3 else x

    def _normalized(self, x: torch.Tensor) -> torch.Tensor:
        out = _lbp(x, self.method, self.P, self.R, self.lut)
        if not self.normalize:
            return out
        if self.scale is not None:
            return out * self.scale
        out = torch.where(out > 0, out, torch.zeros_like(out))  # NaN and rounding-negative -> 0
        peak = out.amax(dim=(1, 2, 3), keepdim=True)
        return out / torch.where(peak > 0, peak, torch.ones_like(peak))
