"""The network's options, one dataclass per option group of the config's ``model.net``.

They are the network's arguments (:class:`~fer_attention.models.FERAttentionNet` takes them or mappings with
exactly their keys, checked against them) and, registered in Hydra's ConfigStore by :mod:`fer_attention.config`,
the schemas of the config groups that set them: Hydra rejects an unknown key, a value of the wrong type or a
choice not among an Enum's values when it composes the config, naming the full key. The Enums are the one list
of each choice: the modules that implement them take their values from here. Imports neither torch nor the
network, so that the config layer can read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fer_attention.schema import Choice, LBPMethod


class Arch(Choice):
    """``backbone.arch``: torchvision's VGG16 with batch norm (trains from scratch) or without."""

    vgg16 = "vgg16"
    vgg16_bn = "vgg16_bn"


class Fusion(Choice):
    """``attention.fusion``: how image and LBP features are combined (:class:`~fer_attention.models.attention.FeatureFusion`)."""

    concat = "concat"
    add = "add"


class AttentionMode(Choice):
    """``attention.mode``: the attention output, ``(1 + M) * T`` or ``M * T``."""

    residual = "residual"
    plain = "plain"


class Pool(Choice):
    """``classifier.pool``: global average pooling or flatten before the classifier's FC layers."""

    avg = "avg"
    flatten = "flatten"


@dataclass
class LBPOptions:
    """``lbp`` (the ``lbp`` config group): the LBP ``method``, ``P`` neighbours on radius ``R`` (see
    :class:`~fer_attention.lbp.LBPLayer`)."""

    method: LBPMethod
    P: int
    R: float


@dataclass
class ModuleSwitches:
    """``modules`` (the ``ablation`` config group): which of the paper's modules are built. ``lbp`` is the
    one switch of the LBP stream; the config option ``lbp=none`` is another name for ``lbp: false``, so the
    ablations that keep the stream leave ``lbp`` to its default rather than state it."""

    name: str
    attention: bool
    reconstruction: bool
    lbp: bool = True


@dataclass
class BackboneOptions:
    """``backbone``: the VGG16 streams (:class:`~fer_attention.models.vgg.VGGStream`), and whether the
    LBP map goes through the image stream's weights (``shared``)."""

    arch: Arch
    last_stage: int
    width: float
    shared: bool
    weights: str | None


@dataclass
class AttentionOptions:
    """``attention``: how image and LBP features are fused, the attention ``mode`` and the mask branch's
    channels (None: backbone channels / 4)."""

    fusion: Fusion
    mode: AttentionMode
    mask_channels: int | None


@dataclass
class ReconstructionOptions:
    """``reconstruction``: the dilation ``rates`` (the ``dilation`` config group) and the inner
    ``channels`` (None: backbone channels / 2)."""

    rates: list[int]
    channels: int | None


@dataclass
class DilationOptions:
    """The ``dilation`` config group: the reconstruction's dilation ``rates``, in order."""

    rates: list[int]


@dataclass
class ClassifierOptions:
    """``classifier``: pooling, hidden units and dropout of :class:`~fer_attention.models.classifier.Classifier`."""

    pool: Pool
    hidden: int
    dropout: float


@dataclass
class NetOptions:
    """``model.net``: the arguments of :class:`~fer_attention.models.FERAttentionNet` (``lbp`` null: no LBP
    options, which only ``modules.lbp=false`` allows)."""

    _target_: str
    num_classes: int
    image_size: int
    in_channels: int
    lbp: LBPOptions | None
    modules: ModuleSwitches
    backbone: BackboneOptions
    attention: AttentionOptions
    reconstruction: ReconstructionOptions
    classifier: ClassifierOptions
    input_mean: float
    input_std: float


# the option groups of model.net: argument name -> its option class
OPTION_GROUPS: dict[str, type] = {
    "lbp": LBPOptions,
    "modules": ModuleSwitches,
    "backbone": BackboneOptions,
    "attention": AttentionOptions,
    "reconstruction": ReconstructionOptions,
    "classifier": ClassifierOptions,
}

# the schema of each config group (or node) the network's options come from
SCHEMAS: dict[str, Any] = {
    "net": NetOptions,
    "lbp": LBPOptions,
    "ablation": ModuleSwitches,
    "dilation": DilationOptions,
}

__all__ = [
    "OPTION_GROUPS",
    "SCHEMAS",
    "Arch",
    "AttentionMode",
    "AttentionOptions",
    "BackboneOptions",
    "ClassifierOptions",
    "DilationOptions",
    "Fusion",
    "LBPMethod",
    "LBPOptions",
    "ModuleSwitches",
    "NetOptions",
    "Pool",
    "ReconstructionOptions",
]
