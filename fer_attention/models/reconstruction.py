"""The reconstruction module: dilated convolutions with a residual shortcut."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fer_attention.models.layers import conv_bn_relu


def check_rates(rates: Sequence[int], feature_size: int) -> list[int]:
    """Validate dilation rates against the feature map they run on."""
    rates = list(rates)
    if not rates:
        raise ValueError("dilation.rates is empty; give at least one rate, e.g. dilation=d123")
    for r in rates:
        if not isinstance(r, int) or r < 1:
            raise ValueError(f"dilation.rates={rates}: every rate must be an integer >= 1, got {r!r}")
        if r >= feature_size:
            raise ValueError(
                f"dilation.rates={rates}: rate {r} needs a feature map larger than {r}x{r}, but the backbone "
                f"gives {feature_size}x{feature_size}; raise data.image_size or lower model.net.backbone.last_stage"
            )
    return rates


class DilatedReconstruction(nn.Module):
    """1x1 reduce, one 3x3 conv + BN + ReLU per dilation rate, 1x1 expand; added to the input."""

    def __init__(self, channels: int, rates: Sequence[int], inner_channels: int | None = None) -> None:
        super().__init__()
        inner = inner_channels or max(8, channels // 2)
        layers = [conv_bn_relu(channels, inner, 1)]
        layers += [conv_bn_relu(inner, inner, 3, dilation=r) for r in rates]
        layers += [nn.Conv2d(inner, channels, 1, bias=False), nn.BatchNorm2d(channels)]
        self.body = nn.Sequential(*layers)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))
