"""The attention module's two modes compute what their formulas say, not just the same shapes."""

from __future__ import annotations

import torch

from fer_attention.models.attention import AttentionModule


def _pair(channels: int = 16) -> tuple[AttentionModule, AttentionModule]:
    torch.manual_seed(0)
    residual = AttentionModule(channels, mode="residual").eval()
    plain = AttentionModule(channels, mode="plain").eval()
    plain.load_state_dict(residual.state_dict())  # same weights: only the combination differs
    return residual, plain


def test_residual_minus_plain_is_the_trunk():
    residual, plain = _pair()
    image, guide = torch.randn(2, 16, 6, 6), torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        out_r, mask_r = residual(image, guide)
        out_p, mask_p = plain(image, guide)
        trunk = residual.trunk(image)
    torch.testing.assert_close(mask_r, mask_p)
    # (1 + M) * T - M * T = T: the residual mode keeps the trunk where the mask is zero
    torch.testing.assert_close(out_r - out_p, trunk, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_p, mask_p * trunk)
    assert (out_r - out_p).abs().mean() > 1e-3  # the outputs differ


def test_the_mask_follows_the_guide_not_the_image():
    residual, _ = _pair()
    image = torch.randn(1, 16, 6, 6)
    with torch.no_grad():
        _, mask_a = residual(image, torch.randn(1, 16, 6, 6))
        _, mask_b = residual(image + 1.0, torch.randn(1, 16, 6, 6))
        _, mask_c = residual(image + 1.0, torch.zeros(1, 16, 6, 6))
        _, mask_d = residual(image, torch.zeros(1, 16, 6, 6))
    assert ((mask_a >= 0) & (mask_a <= 1)).all()
    assert not torch.allclose(mask_a, mask_b)  # another guide, another mask
    torch.testing.assert_close(mask_c, mask_d)  # the same guide: the image does not enter the mask
