"""The reconstruction module: dilated convolutions with a residual shortcut."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fer_attention.models.layers import conv_bn_relu
from fer_attention.models.vgg import feature_size as backbone_feature_size

# the smallest feature map (side, in pixels) the backbone may hand to attention, reconstruction and classifier
MIN_FEATURE_SIZE = 3


def check_feature_size(image_size: int, last_stage: int) -> int:
    """The side of the backbone's feature map for ``image_size`` inputs through ``last_stage``; raises
    ValueError with one line naming ``image_size`` and ``last_stage`` if it is under
    :data:`MIN_FEATURE_SIZE`."""
    size = backbone_feature_size(image_size, last_stage)
    if size < MIN_FEATURE_SIZE:
        raise ValueError(
            f"image_size={image_size} is too small for last_stage={last_stage}: features would be "
            f"{size}x{size}; need image_size >= {MIN_FEATURE_SIZE * 2 ** (last_stage - 1)} "
            "or an earlier last_stage"
        )
    return size


def check_rates(rates: Sequence[int], feature_size: int) -> list[int]:
    """Validate dilation rates against the feature map they run on; raises ValueError with one line
    naming ``rates`` (and ``image_size`` or ``last_stage`` where they are the way out)."""
    rates = list(rates)
    if not rates:
        raise ValueError("rates=[] is empty: give at least one rate, e.g. [1, 2, 3]")
    for r in rates:
        if not isinstance(r, int) or r < 1:
            raise ValueError(f"rates={rates}: every rate must be an integer >= 1, got {r!r}")
        if r >= feature_size:
            raise ValueError(
                f"rates={rates}: rate {r} needs a feature map larger than {r}x{r}, but the backbone "
                f"gives {feature_size}x{feature_size}; raise image_size or lower last_stage"
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
