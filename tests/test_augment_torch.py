"""augment=torch: the plain-torch augmentation keeps uint8 faces' shape and type, repeats itself under a
seed, changes faces, and the package trains with it where albumentations and wandb are not installed."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fer_attention.data.augment import (
    TorchAffine,
    TorchBrightnessContrast,
    TorchCompose,
    TorchHorizontalFlip,
    build_augmentation,
)
from fer_attention.data.dataset import FaceArrayDataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def pipeline(make_cfg):
    cfg = make_cfg(["augment=torch", "data.image_size=48"])
    return build_augmentation(OmegaConf.to_container(cfg.data.augment, resolve=True)["train"])


def faces(n: int, size: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def test_torch_option_builds_the_default_kinds_of_augmentation_without_albumentations(pipeline):
    assert isinstance(pipeline, TorchCompose)
    kinds = [type(t) for t in pipeline.transforms]
    assert kinds == [TorchHorizontalFlip, TorchAffine, TorchBrightnessContrast]
    affine = pipeline.transforms[1]
    # the ranges of conf/augment/default.yaml
    assert (affine.translate, affine.scale, affine.rotate, affine.p) == (0.06, (0.92, 1.08), 10.0, 0.8)


@pytest.mark.parametrize("shape", [(48, 48), (96, 96), (3, 48, 48)])
def test_shape_and_dtype_are_kept_for_arrays_and_tensors(pipeline, shape):
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    for _ in range(10):
        out = pipeline(image=image)["image"]
        assert isinstance(out, np.ndarray) and out.shape == shape and out.dtype == np.uint8
        tensor = pipeline(image=torch.from_numpy(image))["image"]
        assert isinstance(tensor, torch.Tensor) and tensor.shape == shape and tensor.dtype == torch.uint8


def test_a_seed_repeats_the_same_draws_and_another_seed_does_not(pipeline):
    images = faces(16)

    def run(seed: int) -> np.ndarray:
        pipeline.set_random_seed(seed)
        return np.stack([pipeline(image=im)["image"] for im in images])

    first, again, other = run(7), run(7), run(8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # a copy sent to a DataLoader worker draws as the original does from the same seed
    copy = pickle.loads(pickle.dumps(pipeline))
    copy.set_random_seed(7)
    np.testing.assert_array_equal(np.stack([copy(image=im)["image"] for im in images]), first)


def test_faces_are_changed(pipeline):
    images = faces(40)
    changed = sum(not np.array_equal(pipeline(image=im)["image"], im) for im in images)
    # flip 0.5, affine 0.8, brightness/contrast 0.5: at most 0.5 * 0.2 * 0.5 = 5% pass untouched
    assert changed >= 32, f"only {changed} of 40 faces changed"


def test_each_transform_does_what_it_says():
    gen = torch.Generator().manual_seed(0)
    face = torch.from_numpy(faces(1)[0])
    torch.testing.assert_close(TorchHorizontalFlip(p=1.0)(face, gen), face.flip(-1), rtol=0, atol=0)
    assert torch.equal(TorchHorizontalFlip(p=0.0)(face, gen), face)
    # no shift, scale or rotation: the face itself; half the size: three quarters of the picture are black
    assert torch.equal(TorchAffine(translate=0, scale=(1, 1), rotate=0, p=1.0)(face, gen), face)
    flat = torch.full((48, 48), 200, dtype=torch.uint8)
    half = TorchAffine(translate=0, scale=(0.5, 0.5), rotate=0, p=1.0)(flat, gen)
    assert half[24, 24] == 200 and math.isclose(float((half == 0).float().mean()), 0.75, abs_tol=0.01)
    # a shift of 6% of 48 pixels moves a column by at most 3 pixels
    shifted = TorchAffine(translate=0.06, scale=(1, 1), rotate=0, p=1.0)(flat, gen)
    assert 0 < int((shifted == 0).sum()) <= 48 * 3 * 2 + 3 * 3 * 4
    # brightness only: every pixel moves by the same amount, within 0.2 * 255
    mid = torch.full((48, 48), 128, dtype=torch.uint8)
    for _ in range(20):
        out = TorchBrightnessContrast(brightness=0.2, contrast=0.0, p=1.0)(mid, gen)
        assert out.unique().numel() == 1 and abs(int(out[0, 0]) - 128) <= 51


def test_the_dataset_seeds_and_applies_it_to_training_faces(pipeline):
    images, labels = faces(8), np.arange(8) % 7
    data = FaceArrayDataset(images, labels, pipeline)
    torch.manual_seed(3)
    first = torch.stack([data[i][0] for i in range(8)])
    data._seeded_from = None  # as a new epoch (EpochSeed resets torch's seed) or a new worker would
    torch.manual_seed(3)
    again = torch.stack([data[i][0] for i in range(8)])
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert first.shape == (8, 1, 48, 48) and first.dtype == torch.float32
    assert not torch.equal(first, torch.from_numpy(images).unsqueeze(1).float() / 255)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ValueError, match=r"p=1.5 of TorchHorizontalFlip"):
        TorchHorizontalFlip(p=1.5)
    with pytest.raises(ValueError, match=r"scale\[0\] <= scale\[1\].*scale=\[1.1, 0.9\]"):
        TorchAffine(scale=(1.1, 0.9))
    with pytest.raises(ValueError, match="mixes torch and albumentations"):
        build_augmentation(
            [
                {"_target_": "fer_attention.data.augment.TorchHorizontalFlip"},
                {"_target_": "albumentations.HorizontalFlip"},
            ]
        )
    with pytest.raises(TypeError, match="must be uint8"):
        TorchCompose([TorchHorizontalFlip()])(image=np.zeros((4, 4), np.float32))


# every fer_attention module imported in a process where albumentations and wandb cannot be imported (as on
# the lent GPU machine); with arguments, one fer-train run after that
WITHOUT_ALBUMENTATIONS_OR_WANDB = """
import importlib, pkgutil, sys
sys.modules.update(albumentations=None, wandb=None)
import fer_attention
for mod in pkgutil.walk_packages(fer_attention.__path__, "fer_attention."):
    importlib.import_module(mod.name)
from fer_attention.data.augment import TorchCompose, build_augmentation
from fer_attention.training.builders import build_datamodule
print("imported", len(sys.modules))
if len(sys.argv) > 1:
    sys.argv = ["fer-train", *sys.argv[1:]]
    from fer_attention.cli.train import main
    main()
"""


def without_albumentations_or_wandb(*overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_ALBUMENTATIONS_OR_WANDB, *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_module_imports_without_albumentations_or_wandb():
    done = without_albumentations_or_wandb()
    assert done.returncode == 0, done.stderr[-3000:]
    assert "imported" in done.stdout


@pytest.mark.slow  # a tiny training run in its own process, about 25 s on 2 busy cores
def test_trains_with_augment_torch_without_albumentations_or_wandb(tmp_path):
    done = without_albumentations_or_wandb(
        "augment=torch",
        "data.source.num_subjects=15",
        "data.source.frames_per_sequence=2",
        "data.num_folds=3",
        "model.net.backbone.width=0.0625",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "callbacks=none",
        f"paths.log_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test accuracy" in done.stdout, done.stdout[-2000:]
    assert (tmp_path / "run" / "metrics.json").is_file()
