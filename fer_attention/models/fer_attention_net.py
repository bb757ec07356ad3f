"""The paper's network: LBP layer, two VGG16 streams, LBP-guided attention, dilated reconstruction,
classifier (Li et al., Neurocomputing 2020). Each module can be switched off for the ablations."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from fer_attention.lbp import LBPLayer
from fer_attention.models.attention import AttentionModule, FeatureFusion
from fer_attention.models.classifier import Classifier
from fer_attention.models.reconstruction import DilatedReconstruction, check_feature_size, check_rates
from fer_attention.models.vgg import VGGStream, check_backbone

log = logging.getLogger(__name__)

# The option groups of the network, one per sub-dict of the config's `model.net`. Every field is required:
# the YAML (conf/model/fer_attention.yaml and the lbp, ablation and dilation groups) is the one source of
# the defaults, and a checkpoint records the whole `model.net` it was trained with.


@dataclass(frozen=True)
class LBPOptions:
    """``lbp`` (the ``lbp`` config group): the LBP ``method`` (None: no LBP stream), ``P`` neighbours on
    radius ``R`` (see :class:`~fer_attention.lbp.LBPLayer`)."""

    method: str | None
    P: int
    R: float


@dataclass(frozen=True)
class ModuleSwitches:
    """``modules`` (the ``ablation`` config group): which of the paper's modules are built."""

    name: str
    lbp: bool
    attention: bool
    reconstruction: bool


@dataclass(frozen=True)
class BackboneOptions:
    """``backbone``: the VGG16 streams (:class:`~fer_attention.models.vgg.VGGStream`), and whether the
    LBP map goes through the image stream's weights (``shared``)."""

    arch: str
    last_stage: int
    width: float
    shared: bool
    weights: str | None


@dataclass(frozen=True)
class AttentionOptions:
    """``attention``: how image and LBP features are fused, the attention ``mode`` and the mask branch's
    channels (None: backbone channels / 4)."""

    fusion: str
    mode: str
    mask_channels: int | None


@dataclass(frozen=True)
class ReconstructionOptions:
    """``reconstruction``: the dilation ``rates`` (the ``dilation`` config group) and the inner
    ``channels`` (None: backbone channels / 2)."""

    rates: Sequence[int]
    channels: int | None


@dataclass(frozen=True)
class ClassifierOptions:
    """``classifier``: pooling, hidden units and dropout of :class:`~fer_attention.models.classifier.Classifier`."""

    pool: str
    hidden: int
    dropout: float


Options = TypeVar("Options")


def _options(kind: type[Options], value: Options | Mapping[str, Any], key: str) -> Options:
    """``value`` as a ``kind``: itself, or built from a mapping (a config group) with exactly its fields."""
    if isinstance(value, kind):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"{key} must be a mapping or a {kind.__name__}, got {type(value).__name__}")
    names = [f.name for f in dataclasses.fields(kind)]
    missing = [n for n in names if n not in value]
    unknown = sorted(str(k) for k in value if k not in names)
    if missing or unknown:
        found = "; ".join(
            f"{what} {', '.join(keys)}" for what, keys in (("missing", missing), ("unknown", unknown)) if keys
        )
        raise ValueError(f"{key} must have the keys {', '.join(names)}: {found}")
    return kind(**{n: value[n] for n in names})


class FERAttentionNet(nn.Module):
    """Face image ``[N, 1, H, W]`` in [0, 1] -> logits ``[N, num_classes]``.

    ``modules`` switches the paper's modules (``lbp``, ``attention``, ``reconstruction``); a switched-off
    module is not built. With ``lbp`` off the network has one VGG16 stream and the attention mask comes
    from the image features alone; with everything off it is the plain VGG16 baseline.

    Every argument is required. The option groups take the option classes above or, as Hydra and
    checkpoints give them, mappings with exactly their keys (the sub-dicts of the config's ``model.net``);
    :meth:`from_config` builds the network of a whole ``model.net`` and
    :func:`fer_attention.config.net_config` composes one from the YAML with overrides.

    Args:
        num_classes: outputs of the classifier.
        image_size: the side of the square input the classifier is sized for (``data.image_size``).
        in_channels: channels of the image stream's input (1: grayscale).
        lbp: :class:`LBPOptions` (the ``lbp`` group): ``method`` (None: no LBP stream), ``P``, ``R``.
        modules: :class:`ModuleSwitches` (the ``ablation`` group): ``name``, ``lbp``, ``attention``,
            ``reconstruction``.
        backbone: :class:`BackboneOptions`: ``arch``, ``last_stage``, ``width``, ``shared``, ``weights``.
        attention: :class:`AttentionOptions`: ``fusion``, ``mode``, ``mask_channels``.
        reconstruction: :class:`ReconstructionOptions`: ``rates`` (the ``dilation`` group), ``channels``.
        classifier: :class:`ClassifierOptions`: ``pool``, ``hidden``, ``dropout``.
        input_mean: subtracted from the input before the image stream.
        input_std: the input is divided by it (after ``input_mean``) before the image stream.

    Raises:
        TypeError: an option group is neither its option class nor a mapping.
        ValueError: an option group lacks keys or has unknown ones, or an option value is invalid (one
            line naming it), e.g. an ``image_size`` too small for ``last_stage``, a dilation rate too
            large for the feature map, or ``shared=True`` with ``in_channels`` other than 1.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        image_size: int,
        in_channels: int,
        lbp: LBPOptions | Mapping[str, Any],
        modules: ModuleSwitches | Mapping[str, Any],
        backbone: BackboneOptions | Mapping[str, Any],
        attention: AttentionOptions | Mapping[str, Any],
        reconstruction: ReconstructionOptions | Mapping[str, Any],
        classifier: ClassifierOptions | Mapping[str, Any],
        input_mean: float,
        input_std: float,
    ) -> None:
        super().__init__()
        lbp = _options(LBPOptions, lbp, "lbp")
        modules = _options(ModuleSwitches, modules, "modules")
        backbone = _options(BackboneOptions, backbone, "backbone")
        attention = _options(AttentionOptions, attention, "attention")
        reconstruction = _options(ReconstructionOptions, reconstruction, "reconstruction")
        classifier = _options(ClassifierOptions, classifier, "classifier")
        use_lbp = bool(modules.lbp) and lbp.method is not None
        self.use_attention = bool(modules.attention)
        self.use_reconstruction = bool(modules.reconstruction)
        self.ablation = modules.name

        check_backbone(backbone.arch, backbone.last_stage, backbone.width, backbone.weights)
        self.feature_size = check_feature_size(image_size, backbone.last_stage)
        rates = check_rates(reconstruction.rates, self.feature_size) if self.use_reconstruction else []

        self.register_buffer("input_mean", torch.tensor(float(input_mean)), persistent=False)
        self.register_buffer("input_std", torch.tensor(float(input_std)), persistent=False)
        stream_kwargs = dict(
            arch=backbone.arch,
            last_stage=backbone.last_stage,
            width=float(backbone.width),
            in_channels=in_channels,
            weights=backbone.weights,
        )
        self.image_stream = VGGStream(**stream_kwargs)
        channels = self.image_stream.out_channels
        self.lbp: LBPLayer | None = None
        self.lbp_stream: nn.Module | None = None
        self.fusion: FeatureFusion | None = None
        if use_lbp:
            self.lbp = LBPLayer(method=lbp.method, P=int(lbp.P), R=float(lbp.R))
            if backbone.shared:
                if in_channels != 1:
                    raise ValueError(
                        "model.net.backbone.shared=true needs model.net.in_channels=1 (the LBP map has one channel)"
                    )
                self.lbp_stream = None
            else:
                self.lbp_stream = VGGStream(**{**stream_kwargs, "in_channels": 1})
            self.fusion = FeatureFusion(channels, attention.fusion)
        self.shared_backbone = use_lbp and self.lbp_stream is None
        self.attention = (
            AttentionModule(channels, attention.mask_channels, attention.mode) if self.use_attention else None
        )
        self.reconstruction = (
            DilatedReconstruction(channels, rates, reconstruction.channels)
            if self.use_reconstruction
            else None
        )
        self.classifier = Classifier(
            channels,
            self.feature_size,
            num_classes,
            hidden=int(classifier.hidden),
            dropout=float(classifier.dropout),
            pool=classifier.pool,
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FERAttentionNet:
        """The network of a ``model.net`` config.

        Args:
            config: a checkpoint's ``hyper_parameters["net"]``, a resolved ``cfg.model.net`` or
                :func:`fer_attention.config.net_config`; ``_target_`` is left out, every other key is a
                constructor argument.

        Returns:
            A new, randomly initialised network (or with the backbone ``weights`` it names).

        Raises:
            TypeError: a key the constructor does not take, or a required one missing.
            ValueError: as the constructor.
        """
        return cls(**{str(k): v for k, v in config.items() if k != "_target_"})

    @property
    def uses_lbp(self) -> bool:
        return self.lbp is not None

    def stream_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(image features, LBP features or None)``: the outputs of the two VGG streams."""
        image = (x - self.input_mean) / self.input_std
        feat = self.image_stream(image)
        if self.lbp is None:
            return feat, None
        lbp_map = (self.lbp(x) - 0.5) / 0.5
        stream = self.image_stream if self.lbp_stream is None else self.lbp_stream
        return feat, stream(lbp_map)

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Everything before the classifier: ``image`` and ``lbp`` stream features, the attention ``mask``
        (per channel, feature-map size; ``None`` without attention) and ``out``, the features the
        classifier pools (after attention and reconstruction). Used by the pretexts (fer-pretrain)."""
        feat, lbp_feat = self.stream_features(x)
        guide = feat if lbp_feat is None else self.fusion(feat, lbp_feat)
        mask = None
        if self.attention is not None:
            out, mask = self.attention(feat, guide)
        else:
            out = guide
        if self.reconstruction is not None:
            out = self.reconstruction(out)
        return {"image": feat, "lbp": lbp_feat, "mask": mask, "out": out}

    def forward(self, x: torch.Tensor, return_mask: bool = False):
        """Classify a batch of faces.

        Args:
            x: faces ``[N, in_channels, H, W]`` in [0, 1], ``H = W = image_size``.
            return_mask: also return the attention mask.

        Returns:
            Logits ``[N, num_classes]``; with ``return_mask=True`` the tuple ``(logits, mask)``, ``mask``
            the attention mask averaged over channels and upsampled to the input's size,
            ``[N, 1, H, W]`` in [0, 1] (``None`` when attention is off).
        """
        features = self.encode(x)
        mask = features["mask"]
        logits = self.classifier(features["out"])
        if not return_mask:
            return logits
        if mask is not None:
            mask = F.interpolate(
                mask.mean(dim=1, keepdim=True), size=x.shape[-2:], mode="bilinear", align_corners=False
            )
        return logits, mask


def count_parameters(net: nn.Module) -> dict[str, int]:
    """Trainable parameters per top-level module and in total."""
    out = {
        name: sum(p.numel() for p in child.parameters() if p.requires_grad)
        for name, child in net.named_children()
    }
    out["total"] = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return out
