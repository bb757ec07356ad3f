"""The reconstruction module: dilated convolutions with a residual shortcut."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fer_attention.models.layers import conv_bn_relu
from fer_attention.models.vgg import feature_size as backbone_feature_size

# the smallest feature map (side, in pixels) the backbone may hand to attention, reconstruction and classifier
MIN_FEATURE_SIZE = 3


# the keys the messages of the size checks name: the arguments' own names unless the caller passes config keys
SIZE_KEYS = {"image_size": "image_size", "last_stage": "last_stage", "rates": "rates"}


def check_feature_size(image_size: int, last_stage: int, keys: dict[str, str] = SIZE_KEYS) -> int:
    """The side of the backbone's feature map for ``image_size`` inputs through ``last_stage``; raises
    ValueError with one line naming ``keys["image_size"]`` and ``keys["last_stage"]`` if it is under
    :data:`MIN_FEATURE_SIZE`."""
    size = backbone_feature_size(image_size, last_stage)
    if size < MIN_FEATURE_SIZE:
        raise ValueError(
            f"{keys['image_size']}={image_size} is too small for {keys['last_stage']}={last_stage}: features "
            f"would be {size}x{size}; need {keys['image_size']} >= {MIN_FEATURE_SIZE * 2 ** (last_stage - 1)} "
            f"or an earlier {keys['last_stage']}"
        )
    return size


def check_rates(rates: Sequence[int], feature_size: int, keys: dict[str, str] = SIZE_KEYS) -> list[int]:
    """Validate dilation rates against the feature map they run on; raises ValueError with one line
    naming ``keys["rates"]`` (and the image size or last stage keys where they are the way out)."""
    rates = list(rates)
    name = keys["rates"]
    if not rates:
        raise ValueError(f"{name}=[] is empty: give at least one rate, e.g. [1, 2, 3]")
    for r in rates:
        if not isinstance(r, int) or r < 1:
            raise ValueError(f"{name}={rates}: every rate must be an integer >= 1, got {r!r}")
        if r >= feature_size:
            raise ValueError(
                f"{name}={rates}: rate {r} needs a feature map larger than {r}x{r}, but the backbone "
                f"gives {feature_size}x{feature_size}; raise {keys['image_size']} or lower {keys['last_stage']}"
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
