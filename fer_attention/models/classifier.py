"""The classification module: pooling, FC, dropout, FC."""

from __future__ import annotations

import torch
from torch import nn

from fer_attention.models.options import Pool


def check_dropout(dropout: float, key: str = "classifier") -> None:
    """A ``dropout`` probability in [0, 1) (one-line ValueError naming ``key.dropout``)."""
    if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
        raise ValueError(f"{key}.dropout={dropout} must be in [0, 1)")


class Classifier(nn.Module):
    """Global average pooling (or flatten), FC to ``hidden`` + ReLU + dropout, FC to ``num_classes``."""

    def __init__(
        self,
        channels: int,
        feature_size: int,
        num_classes: int,
        hidden: int = 256,
        dropout: float = 0.5,
        pool: str = "avg",
    ) -> None:
        super().__init__()
        pool = Pool(pool).value  # ValueError for a value not among Pool's
        check_dropout(dropout)
        in_features = channels if pool == "avg" else channels * feature_size * feature_size
        self.pool = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.Identity()
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(x))
