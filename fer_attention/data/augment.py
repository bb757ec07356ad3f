"""Label-preserving augmentation built from config (a list of albumentations transforms)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
from hydra.utils import instantiate


def build_augmentation(transforms: Sequence[dict[str, Any]] | None) -> A.Compose | None:
    """Compose the albumentations transforms listed in config (each a dict with ``_target_``); None if empty."""
    if not transforms:
        return None
    return A.Compose([instantiate(t) for t in transforms])
