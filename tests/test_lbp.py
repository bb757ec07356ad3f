"""Tests of fer_attention.lbp: parity with scikit-image, the basic 3x3 LBP, LBPLayer and argument checks."""

import re
import warnings

import numpy as np
import pytest
import torch
from skimage.feature import local_binary_pattern as sk_lbp

from fer_attention import lbp
from fer_attention.lbp import METHODS, LBPLayer, local_binary_pattern, num_codes

SK_METHODS = [m for m in METHODS if m != "basic"]
SK_NAMES = {"circle": "default"}  # scikit-image's names, where they differ from ours
P_R = [(8, 1.0), (8, 2.0), (16, 2.0), (4, 1.5), (12, 3.0)]


def _skimage(images: np.ndarray, method: str, P: int, R: float) -> np.ndarray:
    method = SK_NAMES.get(method, method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-image warns about floating-point images
        return np.stack([sk_lbp(image, P, R, method) for image in images])


def _images(kind: str, shape: tuple[int, int], seed: int, n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.random((n, *shape))
    return rng.integers(0, 4, (n, *shape)).astype(np.float64)  # many ties between neighbours and centre


def _ours(images: np.ndarray, method: str, P: int = 8, R: float = 1.0) -> np.ndarray:
    return local_binary_pattern(torch.from_numpy(images)[:, None], method, P, R)[:, 0].numpy()


@pytest.mark.parametrize("method", SK_METHODS)
@pytest.mark.parametrize(("P", "R"), P_R)
@pytest.mark.parametrize("shape", [(17, 23), (48, 48)])
@pytest.mark.parametrize("kind", ["uniform", "ties"])
def test_matches_skimage_exactly_in_float64(method, P, R, shape, kind):
    images = _images(kind, shape, seed=P * 100 + int(R * 10))
    ours, ref = _ours(images, method, P, R), _skimage(images, method, P, R)
    assert ours.dtype == np.float64
    # var is exact too (NaN where the variance is 0): same sums in the same order.
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("method", SK_METHODS)
@pytest.mark.parametrize(("P", "R"), [(18, 2.5), (3, 1.1), (1, 0.5)])
def test_matches_skimage_for_unusual_p_and_r(method, P, R):
    # P > 16 maps patterns with torch ops instead of a lookup table; R = 1.1 is rounded to a C float
    # by scikit-image; P = 1 has a single neighbour.
    images = _images("ties", (9, 11), seed=P)
    np.testing.assert_array_equal(_ours(images, method, P, R), _skimage(images, method, P, R))


@pytest.mark.parametrize("method", SK_METHODS)
def test_matches_skimage_when_the_batch_is_split_in_chunks(method, monkeypatch):
    monkeypatch.setattr(lbp, "_CHUNK_PIXELS", 2 * 17 * 23)
    images = _images("ties", (17, 23), seed=7, n=5)
    np.testing.assert_array_equal(_ours(images, method, 8, 2.0), _skimage(images, method, 8, 2.0))


def test_basic_is_the_same_when_the_batch_is_split_in_chunks(monkeypatch):
    images = torch.from_numpy(_images("ties", (17, 23), seed=8, n=5))[:, None]
    whole = local_binary_pattern(images, "basic")
    monkeypatch.setattr(lbp, "_CHUNK_PIXELS", 2 * 17 * 23)
    torch.testing.assert_close(local_binary_pattern(images, "basic"), whole, rtol=0, atol=0)


@pytest.mark.parametrize("method", ["circle", "ror", "uniform", "nri_uniform"])
def test_float32_matches_skimage_away_from_ties(method):
    # float32 is computed in float32: codes can only differ where a neighbour (nearly) ties its centre.
    images = _images("uniform", (48, 48), seed=11).astype(np.float32)
    out = local_binary_pattern(torch.from_numpy(images)[:, None], method, 8, 1.0)
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out[:, 0].numpy(), _skimage(images, method, 8, 1.0))


def test_var_is_nan_where_the_neighbourhood_is_flat():
    out = _ours(np.full((1, 7, 7), 0.5), "var")
    assert np.isnan(out[0, 1:-1, 1:-1]).all()
    assert not np.isnan(out[0, 0]).any()  # the border sees the zero padding


# basic: weights 128, 64, 32, 16, 8, 4, 2, 1 clockwise from the top-left neighbour (TL, T, TR, R, BR, B, BL, L).
def _basic(patch) -> np.ndarray:
    return _ours(np.asarray([patch], dtype=np.float64), "basic")[0]


def test_basic_hand_computed_centre_codes():
    # Centre 5: TL=6>=5 (1), T=5>=5 (1), TR=2 (0), R=1 (0), BR=5 (1), B=3 (0), BL=9 (1), L=7 (1)
    # -> 0b11001011 = 128 + 64 + 8 + 2 + 1 = 203.
    assert _basic([[6, 5, 2], [7, 5, 1], [9, 3, 5]])[1, 1] == 203
    # Centre 4: only B=8 is >= 4 -> 0b00000100 = 4.
    assert _basic([[1, 2, 3], [0, 4, 3], [2, 8, 1]])[1, 1] == 4


def test_basic_border_pixels_see_zeros_outside():
    # Top-left pixel 6: TL, T, TR, BL, L are outside (0 < 6), R=5 (0), BR=5 (0), B=7 (1) -> 4.
    assert _basic([[6, 5, 2], [7, 5, 1], [9, 3, 5]])[0, 0] == 4
    # A single pixel: all neighbours are 0, so 0 >= 0 sets every bit and 0 >= 2 none.
    assert _basic([[0.0]])[0, 0] == 255
    assert _basic([[2.0]])[0, 0] == 0


def test_basic_constant_image():
    out = _basic(np.full((6, 7), 3.0))
    assert (out[1:-1, 1:-1] == 255).all()  # every neighbour ties with its centre
    assert out[0, 0] == 16 + 8 + 4  # top-left corner: only R, BR and B are inside the image
    assert out.max() == 255 and out.dtype == np.float64


@pytest.mark.parametrize(
    ("method", "P", "expected"),
    [("basic", 8, 256), ("circle", 8, 256), ("ror", 16, 65536), ("uniform", 8, 10), ("nri_uniform", 8, 59)],
)
def test_num_codes(method, P, expected):
    assert num_codes(method, P) == expected


def test_num_codes_is_none_for_var():
    assert num_codes("var", 8) is None


@pytest.mark.parametrize("method", [m for m in METHODS if m != "var"])
def test_codes_stay_below_num_codes(method):
    images = torch.from_numpy(_images("ties", (20, 20), seed=3, n=4))[:, None]
    out = local_binary_pattern(images, method, 8, 1.0)
    assert out.min() >= 0 and out.max() <= num_codes(method, 8) - 1


@pytest.mark.parametrize("method", METHODS)
def test_layer_is_fixed_and_normalized(method):
    layer = LBPLayer(method, P=8, R=1.0)
    assert list(layer.parameters()) == []
    assert layer.state_dict() == {}
    x = torch.rand(4, 1, 20, 24, requires_grad=True)
    x.data[0, :, :10] = 0.5  # a flat patch: zero variance for var
    out = layer(x)
    assert out.shape == (4, 1, 20, 24) and out.dtype == torch.float32
    assert not out.requires_grad and out.grad_fn is None
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_layer_scales_by_the_largest_code():
    x = torch.rand(2, 1, 16, 16)
    for method in ("basic", "circle", "uniform", "nri_uniform"):
        codes = local_binary_pattern(x, method)
        torch.testing.assert_close(LBPLayer(method)(x), codes / (num_codes(method, 8) - 1))
        torch.testing.assert_close(LBPLayer(method, normalize=False)(x), codes)


def test_layer_var_scales_each_image_by_its_max():
    x = torch.rand(3, 1, 16, 16)
    x[2] = 0.25  # flat image: only the border, next to the zero padding, has a nonzero variance
    x[1] = 0.0  # all variances 0 (NaN codes): no division by zero
    out = LBPLayer("var")(x)
    assert out[0].max() == 1 and out[2].max() == 1
    assert (out[2, :, 1:-1, 1:-1] == 0).all() and (out[1] == 0).all()


def test_layer_converts_rgb_to_gray():
    rgb = torch.rand(2, 3, 16, 18)
    gray = 0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]
    layer = LBPLayer("uniform", P=8, R=1.0)
    torch.testing.assert_close(layer(rgb), layer(gray), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_layer_keeps_the_input_dtype(dtype):
    assert LBPLayer("circle")(torch.rand(2, 1, 12, 12).to(dtype)).dtype == dtype


def test_layer_cast_to_half_keeps_its_lookup_table():
    x = torch.rand(2, 1, 16, 16)
    layer = LBPLayer("ror", P=16, R=2.0, normalize=False)
    expected = layer(x)
    torch.testing.assert_close(layer.half().float()(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize("method", METHODS)
def test_jit_trace_gives_the_same_output(method):
    layer = LBPLayer(method, P=8, R=1.5)
    x = torch.rand(2, 1, 24, 24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace is deprecated in recent torch
        traced = torch.jit.trace(layer, x)
    torch.testing.assert_close(traced(x), layer(x), rtol=0, atol=0)
    x = torch.rand(5, 1, 24, 24)  # the trace is specific to the image size, not to the batch size
    torch.testing.assert_close(traced(x), layer(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"method": "foo"},
            "lbp.method='foo' is not one of basic, circle, ror, uniform, nri_uniform, var",
        ),
        ({"P": 0}, "lbp.P=0 must be an integer >= 1"),
        ({"R": 0}, "lbp.R=0 must be a number > 0"),
        ({"R": -1.5}, "lbp.R=-1.5 must be a number > 0"),
        ({"method": "circle", "P": 40}, "lbp.P=40 must be <= 31 for method 'circle'"),
        ({"method": "default", "P": 40}, "lbp.P=40 must be <= 31 for method 'circle'"),
    ],
)
def test_bad_arguments_are_named_in_the_error(kwargs, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        LBPLayer(**kwargs)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        local_binary_pattern(torch.rand(1, 1, 8, 8), **kwargs)


def test_default_is_the_old_name_of_circle():
    # checkpoints written before the rename record lbp.method=default (scikit-image's name)
    x = torch.rand(2, 1, 12, 12)
    old, new = LBPLayer("default", 8, 1.0), LBPLayer("circle", 8, 1.0)
    assert old.method == "circle" and repr(old) == repr(new)
    torch.testing.assert_close(old(x), new(x), rtol=0, atol=0)
    torch.testing.assert_close(local_binary_pattern(x, "default"), local_binary_pattern(x, "circle"))
    assert num_codes("default", 8) == num_codes("circle", 8) == 256
    assert "default" not in METHODS and lbp.canonical_method("default") == "circle"


def test_empty_batch():
    assert local_binary_pattern(torch.rand(0, 1, 8, 8), "uniform").shape == (0, 1, 8, 8)


def test_bad_images_are_rejected():
    with pytest.raises(ValueError, match=r"images must have shape \[N, 1, H, W\]; got \(1, 3, 8, 8\)"):
        local_binary_pattern(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"images must have shape \[N, 1, H, W\]; got \(8, 8\)"):
        local_binary_pattern(torch.rand(8, 8))
    with pytest.raises(ValueError, match="images must have a floating-point dtype; got torch.int64"):
        local_binary_pattern(torch.zeros(1, 1, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"input must have shape \[N, 1, H, W\] or \[N, 3, H, W\]"):
        LBPLayer()(torch.rand(1, 2, 8, 8))
