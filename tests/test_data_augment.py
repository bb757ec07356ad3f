"""Every augment option builds with the installed albumentations and keeps uint8 faces' size and type; only
the training split is augmented."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fer_attention.config import config_dir
from fer_attention.data.augment import build_augmentation

OPTIONS = sorted(p.stem for p in (Path(config_dir()) / "augment").glob("*.yaml"))


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("size", [48, 96])
def test_augmentation_keeps_shape_and_dtype(make_cfg, option, size):
    cfg = make_cfg([f"augment={option}", f"data.image_size={size}"], subdir=f"{option}-{size}")
    transforms = OmegaConf.to_container(cfg.data.augment, resolve=True)["train"]
    pipeline = build_augmentation(transforms)
    if option == "none":
        assert pipeline is None
        return
    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(20):
        image = rng.integers(0, 256, (size, size), dtype=np.uint8)
        out = pipeline(image=image)["image"]
        assert out.shape == (size, size) and out.dtype == np.uint8, option
        changed += not np.array_equal(out, image)
    assert changed >= 10, f"{option} left {20 - changed} of 20 faces unchanged"


def test_erasing_and_crop_option_crops_and_erases(make_cfg):
    cfg = make_cfg(["augment=crop_erase", "data.image_size=48"])
    pipeline = build_augmentation(OmegaConf.to_container(cfg.data.augment, resolve=True)["train"])
    names = [type(t).__name__ for t in pipeline.transforms]
    assert "RandomResizedCrop" in names and "CoarseDropout" in names, names
    # erasing sets rectangles to 0: on a face with no black pixel, some outputs gain a block of zeros
    face = np.full((48, 48), 200, np.uint8)
    zeros = [int((pipeline(image=face)["image"] == 0).sum()) for _ in range(30)]
    assert sum(z >= 16 for z in zeros) >= 5, zeros


def test_only_the_training_split_is_augmented(make_cfg):
    """Validation and test faces reach the network as decoded; training faces are augmented."""
    from fer_attention.training.builders import build_datamodule

    cfg = make_cfg(
        ["augment=strong", "data.source.num_subjects=15", "data.num_folds=3", "data.progress=false"]
    )
    dm = build_datamodule(cfg.data)
    dm.setup("fit")

    def decoded(split: str, i: int) -> torch.Tensor:
        return torch.from_numpy(dm.faces.images[dm.split_indices[split][i]]).float().div(255.0)

    for split in ("val", "test"):
        for i in range(8):
            x, _ = dm.datasets[split][i]
            torch.testing.assert_close(
                x[0], decoded(split, i), rtol=0, atol=0, msg=f"{split} face {i} was transformed"
            )
    changed = sum(not torch.equal(dm.datasets["train"][i][0][0], decoded("train", i)) for i in range(16))
    assert changed >= 8, f"only {changed} of 16 training faces were augmented"
