"""VGG16 convolution streams: VGG16's layer list (configuration "D" of Simonyan & Zisserman, laid out as
torchvision lays it out, so that its state dicts load), without importing torchvision, which only ImageNet
weights need."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from fer_attention.errors import ConfigError
from fer_attention.models.options import Arch

log = logging.getLogger(__name__)

NUM_STAGES = 5
PRETRAINED = "imagenet"  # weights: torchvision's ImageNet weights; anything else but None is a file
# VGG16's convolutions (output channels) and max pools ("M"), stage by stage
VGG16_LAYERS: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)


def check_backbone(last_stage: int, width: float, weights: str | None = None, key: str = "") -> None:
    """Raise ValueError with one line naming ``last_stage``, ``width`` or ``weights`` (under ``key``:
    ``model.net.backbone`` gives ``model.net.backbone.width``) and what is allowed (``arch``: an
    :class:`~fer_attention.models.options.Arch`)."""
    at = f"{key}." if key else ""
    if not isinstance(last_stage, int) or not 1 <= last_stage <= NUM_STAGES:
        raise ValueError(f"{at}last_stage={last_stage!r} must be in 1..{NUM_STAGES} (4 = through conv4_3)")
    if not isinstance(width, int | float) or width <= 0:
        raise ValueError(f"{at}width={width!r} must be a number > 0")
    if weights not in (None, PRETRAINED) and not Path(str(weights)).is_file():
        raise ValueError(f"{at}weights={weights} does not exist (null, {PRETRAINED} or a state dict file)")
    if weights is not None and width != 1.0:
        raise ValueError(f"{at}weights={weights!r} needs {at}width=1.0, got {width}")


def stage_config(last_stage: int, width: float) -> list[int | str]:
    """VGG16's layer list (:data:`VGG16_LAYERS`) through the last conv of ``last_stage`` (1..5), with channel
    counts scaled by ``width``; the pool after the last kept stage is dropped."""
    cfg: list[int | str] = []
    stage = 1
    for v in VGG16_LAYERS:
        if v == "M":
            if stage == last_stage:
                break
            stage += 1
            cfg.append("M")
        else:
            cfg.append(max(8, int(round(int(v) * width))))
    return cfg


def make_layers(cfg: list[int | str], batch_norm: bool, in_channels: int) -> nn.Sequential:
    """The layers of ``cfg`` (:func:`stage_config`): each number a 3x3 convolution (padding 1), batch norm
    with ``batch_norm``, and ReLU; each ``M`` a 2x2 max pool. Indices as torchvision's ``make_layers``."""
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(v)))
        layers.append(nn.ReLU(inplace=True))
        in_channels = int(v)
    return nn.Sequential(*layers)


def feature_size(image_size: int, last_stage: int) -> int:
    """Spatial size of the stream's output for a square input of ``image_size``."""
    size = image_size
    for _ in range(last_stage - 1):
        size //= 2
    return size


class VGGStream(nn.Module):
    """VGG16 convolutions from ``in_channels`` input channels through stage ``last_stage``, with
    ``width`` times VGG16's channels; ``weights``: None, ``imagenet`` or a torchvision VGG16 state dict
    file (see :func:`check_backbone`)."""

    def __init__(
        self,
        arch: str = "vgg16_bn",
        last_stage: int = 4,
        width: float = 1.0,
        in_channels: int = 1,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        arch = Arch(arch).value  # ValueError for a value not among Arch's
        check_backbone(last_stage, width, weights)
        cfg = stage_config(last_stage, width)
        self.features = make_layers(cfg, batch_norm=arch == "vgg16_bn", in_channels=in_channels)
        self.out_channels = int([v for v in cfg if v != "M"][-1])
        self.arch = arch
        if weights is not None:
            self.load_pretrained(weights)

    def load_pretrained(self, weights: str) -> None:
        """Load ImageNet weights (torchvision's weights API) or a torchvision VGG16 state dict file.

        The first convolution's RGB kernels are summed for one-channel input.
        """
        if weights == PRETRAINED:
            state = _imagenet_state_dict(self.arch)
        else:
            state = torch.load(Path(weights), map_location="cpu", weights_only=True)
            state = state.get("state_dict", state)
        own = self.features.state_dict()
        loaded = {}
        for key, value in own.items():
            src = state.get(f"features.{key}")
            if src is None:
                raise ValueError(
                    f"model.net.backbone.weights: '{weights}' has no tensor features.{key}; is it a {self.arch} state dict?"
                )
            if key == "0.weight" and src.shape[1] != value.shape[1]:
                src = src.sum(dim=1, keepdim=True).repeat(1, value.shape[1], 1, 1) / value.shape[1]
            if src.shape != value.shape:
                raise ValueError(
                    f"model.net.backbone.weights: features.{key} has shape {tuple(src.shape)}, expected {tuple(value.shape)}"
                )
            loaded[key] = src
        self.features.load_state_dict(loaded)
        log.info("loaded %s weights for %s (%d tensors)", weights, self.arch, len(loaded))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    from torchvision.models import vgg as tv_vgg

    builder = {"vgg16": tv_vgg.vgg16, "vgg16_bn": tv_vgg.vgg16_bn}[arch]
    weights_enum = {"vgg16": tv_vgg.VGG16_Weights, "vgg16_bn": tv_vgg.VGG16_BN_Weights}[arch].IMAGENET1K_V1
    try:
        return builder(weights=weights_enum).state_dict()
    except Exception as err:  # noqa: BLE001 - download or cache failures come in many types
        raise ConfigError(
            f"model.net.backbone.weights=imagenet: could not load torchvision's {arch} ImageNet weights "
            f"(offline and not in the torch hub cache?): {type(err).__name__}: {err}. "
            "Download them once on a connected machine, or pass a state dict file path."
        ) from None
