"""Feature fusion and the LBP-guided attention module (after the Residual Attention Network)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fer_attention.models.layers import Bottleneck, conv_bn_relu
from fer_attention.models.options import AttentionMode, Fusion


class FeatureFusion(nn.Module):
    """Combine image and LBP features: ``concat`` (then a 1x1 conv back to ``channels``) or ``add``."""

    def __init__(self, channels: int, mode: str = "concat") -> None:
        super().__init__()
        self.mode = Fusion(mode).value  # ValueError for a value not among Fusion's
        self.project = conv_bn_relu(2 * channels, channels, 1) if mode == "concat" else nn.Identity()

    def forward(self, image_feat: torch.Tensor, lbp_feat: torch.Tensor) -> torch.Tensor:
        if self.mode == "concat":
            return self.project(torch.cat([image_feat, lbp_feat], dim=1))
        return image_feat + lbp_feat


class AttentionModule(nn.Module):
    """Trunk branch on the image features; mask branch on the fused features.

    The mask branch goes bottom-up (max pool, conv) and top-down (bilinear upsampling to the trunk's
    size, plus a skip), then two 1x1 convolutions and a sigmoid, giving ``M`` in [0, 1]. The output is
    ``(1 + M) * T`` (``residual``) or ``M * T`` (``plain``).
    """

    def __init__(self, channels: int, mask_channels: int | None = None, mode: str = "residual") -> None:
        super().__init__()
        mc = mask_channels or max(8, channels // 4)
        self.mode = AttentionMode(mode).value  # ValueError for a value not among AttentionMode's
        self.trunk = Bottleneck(channels)
        self.mask_in = conv_bn_relu(channels, mc, 1)
        self.down = nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), conv_bn_relu(mc, mc, 3))
        self.mask_out = nn.Sequential(conv_bn_relu(mc, mc, 1), nn.Conv2d(mc, channels, 1), nn.Sigmoid())

    def forward(
        self, image_feat: torch.Tensor, guide_feat: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        trunk = self.trunk(image_feat)
        skip = self.mask_in(guide_feat)
        up = F.interpolate(self.down(skip), size=trunk.shape[-2:], mode="bilinear", align_corners=False)
        mask = self.mask_out(up + skip)
        out = (1.0 + mask) * trunk if self.mode == "residual" else mask * trunk
        return out, mask
