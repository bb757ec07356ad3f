"""The paper's network: LBP layer, two VGG16 streams, LBP-guided attention, dilated reconstruction,
classifier (Li et al., Neurocomputing 2020). Each module can be switched off for the ablations."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from fer_attention.lbp import LBPLayer
from fer_attention.lbp import check_args as check_lbp_args
from fer_attention.models.attention import AttentionModule, FeatureFusion
from fer_attention.models.classifier import Classifier, check_dropout
from fer_attention.models.options import (
    OPTION_GROUPS,
    AttentionOptions,
    BackboneOptions,
    ClassifierOptions,
    LBPOptions,
    ModuleSwitches,
    ReconstructionOptions,
)
from fer_attention.models.reconstruction import DilatedReconstruction, check_feature_size, check_rates
from fer_attention.models.vgg import VGGStream, check_backbone
from fer_attention.schema import check_fields

log = logging.getLogger(__name__)

__all__ = ["FERAttentionNet", "check_net", "count_parameters"]

Options = TypeVar("Options")


def _options(kind: type[Options], value: Options | Mapping[str, Any], key: str) -> Options:
    """``value`` as a ``kind``: itself, or built from a mapping (a config group) with exactly its fields
    (a field with a default may be left out), of the types and choices they declare."""
    if isinstance(value, kind):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"{key} must be a mapping or a {kind.__name__}, got {type(value).__name__}")
    fields = dataclasses.fields(kind)
    names = [f.name for f in fields]
    missing = [f.name for f in fields if f.name not in value and f.default is dataclasses.MISSING]
    unknown = sorted(str(k) for k in value if k not in names)
    if missing or unknown:
        found = "; ".join(
            f"{what} {', '.join(keys)}" for what, keys in (("missing", missing), ("unknown", unknown)) if keys
        )
        raise ValueError(f"{key} must have the keys {', '.join(names)}: {found}")
    check_fields(kind, value, key)
    return kind(**{n: value[n] for n in names if n in value})


def _argument(path: str) -> str:
    """The network's own name of an option (``backbone.width``): what its errors name by default."""
    return path


def _option_groups(values: Mapping[str, Any], key: Callable[[str], str]) -> dict[str, Any]:
    """Each option group of ``values`` as its option class; ``lbp`` may be None (no LBP options)."""
    return {
        name: None if name == "lbp" and values[name] is None else _options(kind, values[name], key(name))
        for name, kind in OPTION_GROUPS.items()
    }


def _uses_lbp(lbp: LBPOptions | None, modules: ModuleSwitches, key: Callable[[str], str]) -> bool:
    """Whether the LBP stream is built: ``modules.lbp`` is the switch, and switched on it needs options."""
    if lbp is None:
        if modules.lbp:
            raise ValueError(
                f"{key('modules.lbp')}=true needs LBP options but {key('lbp')}=null: choose a variant "
                f"({key('lbp')}=circle, ...) or switch the stream off with {key('modules.lbp')}=false"
            )
        return False
    return bool(modules.lbp)


def _check_groups(
    groups: Mapping[str, Any], image_size: int, in_channels: int, key: Callable[[str], str]
) -> tuple[bool, int, list[int]]:
    """The network's rules over its option groups (one-line ValueError naming ``key(option)``); returns
    (whether the LBP stream is built, the side of the backbone's feature map, the dilation rates used)."""
    backbone: BackboneOptions = groups["backbone"]
    classifier: ClassifierOptions = groups["classifier"]
    reconstruction: ReconstructionOptions = groups["reconstruction"]
    use_lbp = _uses_lbp(groups["lbp"], groups["modules"], key)
    if use_lbp:
        lbp: LBPOptions = groups["lbp"]
        check_lbp_args(lbp.method, lbp.P, lbp.R, key("lbp"))
        if backbone.shared and in_channels != 1:
            raise ValueError(
                f"{key('backbone.shared')}=true needs {key('in_channels')}=1 (the LBP map has one channel)"
            )
    check_dropout(classifier.dropout, key("classifier"))
    check_backbone(backbone.last_stage, backbone.width, backbone.weights, key("backbone"))
    sizes = {
        "image_size": key("image_size"),
        "last_stage": key("backbone.last_stage"),
        "rates": key("reconstruction.rates"),
    }
    feature_size = check_feature_size(image_size, backbone.last_stage, sizes)
    rates = check_rates(reconstruction.rates, feature_size, sizes) if groups["modules"].reconstruction else []
    return use_lbp, feature_size, rates


def check_net(net: Mapping[str, Any], key: Callable[[str], str] = _argument) -> None:
    """Every rule of the network's options, without building anything: ``net`` as
    :meth:`FERAttentionNet.from_config` takes it. Raises ValueError with one line naming ``key(option)``
    (``key("backbone.width")``; the config layer maps the options to the config keys that set them) or, for
    an option group without exactly its keys, naming the group."""
    _check_groups(_option_groups(net, key), net["image_size"], net["in_channels"], key)


class FERAttentionNet(nn.Module):
    """Face image ``[N, 1, H, W]`` in [0, 1] -> logits ``[N, num_classes]``.

    ``modules`` switches the paper's modules (``lbp``, ``attention``, ``reconstruction``); a switched-off
    module is not built. With ``lbp`` off the network has one VGG16 stream and the attention mask comes
    from the image features alone; with everything off it is the plain VGG16 baseline.

    The option groups take the option classes of :mod:`fer_attention.models.options` or, as Hydra and
    checkpoints give them, mappings with exactly their keys (the sub-dicts of the config's ``model.net``);
    :meth:`from_config` builds the network of a whole ``model.net`` and
    :func:`fer_attention.config.net_config` composes one from the YAML with overrides. Every argument is
    required, and every option but ``modules.lbp`` (true unless given).

    Args:
        num_classes: outputs of the classifier.
        image_size: the side of the square input the classifier is sized for (``data.image_size``).
        in_channels: channels of the image stream's input (1: grayscale).
        lbp: :class:`LBPOptions` (the ``lbp`` group): ``method``, ``P``, ``R``; None (no LBP options) only
            with ``modules.lbp`` false.
        modules: :class:`ModuleSwitches` (the ``ablation`` group): ``name``, ``attention``,
            ``reconstruction``, ``lbp``.
        backbone: :class:`BackboneOptions`: ``arch``, ``last_stage``, ``width``, ``shared``, ``weights``.
        attention: :class:`AttentionOptions`: ``fusion``, ``mode``, ``mask_channels``.
        reconstruction: :class:`ReconstructionOptions`: ``rates`` (the ``dilation`` group), ``channels``.
        classifier: :class:`ClassifierOptions`: ``pool``, ``hidden``, ``dropout``.
        input_mean: subtracted from the input before the image stream.
        input_std: the input is divided by it (after ``input_mean``) before the image stream.

    Raises:
        TypeError: an option group is neither its option class nor a mapping.
        ValueError: an option group lacks keys or has unknown ones, or an option value is invalid (one
            line naming it, see :func:`check_net`), e.g. an ``image_size`` too small for ``last_stage``, a
            dilation rate too large for the feature map, or ``shared=True`` with ``in_channels`` other than 1.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        image_size: int,
        in_channels: int,
        lbp: LBPOptions | Mapping[str, Any] | None,
        modules: ModuleSwitches | Mapping[str, Any],
        backbone: BackboneOptions | Mapping[str, Any],
        attention: AttentionOptions | Mapping[str, Any],
        reconstruction: ReconstructionOptions | Mapping[str, Any],
        classifier: ClassifierOptions | Mapping[str, Any],
        input_mean: float,
        input_std: float,
    ) -> None:
        super().__init__()
        given = dict(
            lbp=lbp,
            modules=modules,
            backbone=backbone,
            attention=attention,
            reconstruction=reconstruction,
            classifier=classifier,
        )
        groups = _option_groups(given, _argument)
        use_lbp, self.feature_size, rates = _check_groups(groups, image_size, in_channels, _argument)
        self.num_classes = int(num_classes)
        self.ablation = groups["modules"].name
        self.register_buffer("input_mean", torch.tensor(float(input_mean)), persistent=False)
        self.register_buffer("input_std", torch.tensor(float(input_std)), persistent=False)
        channels = self._build_streams(groups["backbone"], in_channels, groups["lbp"] if use_lbp else None)
        self.fusion = FeatureFusion(channels, groups["attention"].fusion) if use_lbp else None
        self._build_head(channels, groups, rates)

    def _build_streams(self, backbone: BackboneOptions, in_channels: int, lbp: LBPOptions | None) -> int:
        """The image stream, and with ``lbp`` the LBP layer and its stream (None when it shares the image
        stream's weights); returns the streams' output channels."""
        stream_kwargs = dict(
            arch=backbone.arch,
            last_stage=backbone.last_stage,
            width=float(backbone.width),
            in_channels=in_channels,
            weights=backbone.weights,
        )
        self.image_stream = VGGStream(**stream_kwargs)
        self.lbp: LBPLayer | None = None
        self.lbp_stream: nn.Module | None = None
        if lbp is not None:
            self.lbp = LBPLayer(method=lbp.method, P=int(lbp.P), R=float(lbp.R))
            if not backbone.shared:
                self.lbp_stream = VGGStream(**{**stream_kwargs, "in_channels": 1})
        self.shared_backbone = lbp is not None and self.lbp_stream is None
        return self.image_stream.out_channels

    def _build_head(self, channels: int, groups: Mapping[str, Any], rates: list[int]) -> None:
        """Attention, reconstruction (each only when switched on) and the classifier."""
        modules: ModuleSwitches = groups["modules"]
        attention: AttentionOptions = groups["attention"]
        classifier: ClassifierOptions = groups["classifier"]
        self.use_attention = bool(modules.attention)
        self.use_reconstruction = bool(modules.reconstruction)
        self.attention = (
            AttentionModule(channels, attention.mask_channels, attention.mode) if self.use_attention else None
        )
        self.reconstruction = (
            DilatedReconstruction(channels, rates, groups["reconstruction"].channels)
            if self.use_reconstruction
            else None
        )
        self.classifier = Classifier(
            channels,
            self.feature_size,
            self.num_classes,
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
