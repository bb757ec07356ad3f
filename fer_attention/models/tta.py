"""Test-time augmentation of a trained network: the rule and the ten-crop forward, shared by testing
(`model.test_time_augmentation`, `fer-eval test_time_augmentation=`) and prediction (`fer-predict`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from fer_attention.errors import ConfigError
from fer_attention.task_options import TTAMode

TTA_MODES = (None, *TTAMode.values())
# each of the ten crops covers this fraction of the face's height and width
TENCROP_FRACTION = 0.9


def check_tta(mode: str | None, key: str = "test_time_augmentation") -> str | None:
    """``mode`` if it is one of :data:`TTA_MODES`, else :class:`ConfigError` (one line naming ``key``)."""
    if mode not in TTA_MODES:
        raise ConfigError(f"{key}={mode!r} is not one of null, {', '.join(TTAMode.values())}")
    return None if mode is None else str(mode)


def ten_crop_logits(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Mean logits over the ten crops (corners, centre, and those of the mirror image) of 90% of the face,
    each resized back to the input size.

    Args:
        net: called on a batch ``[10 N, 1, H, W]``, returns logits ``[10 N, C]``.
        x: faces ``[N, 1, H, W]``.

    Returns:
        Logits ``[N, C]``.
    """
    from torchvision.transforms.functional import ten_crop

    size = (max(1, round(x.shape[-2] * TENCROP_FRACTION)), max(1, round(x.shape[-1] * TENCROP_FRACTION)))
    crops = torch.cat(ten_crop(x, list(size)), dim=0)
    crops = F.interpolate(crops, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return net(crops).view(10, x.shape[0], -1).mean(dim=0)
