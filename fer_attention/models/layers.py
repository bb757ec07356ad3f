"""Small reusable layers."""

from __future__ import annotations

from torch import nn


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    """Convolution (same padding), batch norm, ReLU."""
    padding = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class Bottleneck(nn.Module):
    """Residual bottleneck unit (1x1 reduce, 3x3, 1x1 expand) as used in the Residual Attention Network."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = max(4, channels // reduction)
        self.body = nn.Sequential(
            conv_bn_relu(channels, mid, 1),
            conv_bn_relu(mid, mid, 3),
            nn.Conv2d(mid, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(x + self.body(x))
