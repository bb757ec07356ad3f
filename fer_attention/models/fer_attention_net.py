"""The paper's network: LBP layer, two VGG16 streams, LBP-guided attention, dilated reconstruction,
classifier (Li et al., Neurocomputing 2020). Each module can be switched off for the ablations."""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fer_attention.lbp import LBPLayer
from fer_attention.models.attention import AttentionModule, FeatureFusion
from fer_attention.models.classifier import Classifier
from fer_attention.models.reconstruction import DilatedReconstruction, check_rates
from fer_attention.models.vgg import VGGStream, feature_size

log = logging.getLogger(__name__)

MIN_FEATURE_SIZE = 3


class FERAttentionNet(nn.Module):
    """Face image ``[N, 1, H, W]`` in [0, 1] -> logits ``[N, num_classes]``.

    ``modules`` switches the paper's modules (``lbp``, ``attention``, ``reconstruction``); a switched-off
    module is not built. With ``lbp`` off the network has one VGG16 stream and the attention mask comes
    from the image features alone; with everything off it is the plain VGG16 baseline.
    """

    def __init__(
        self,
        num_classes: int,
        image_size: int = 48,
        in_channels: int = 1,
        lbp: dict[str, Any] | None = None,
        modules: dict[str, Any] | None = None,
        backbone: dict[str, Any] | None = None,
        attention: dict[str, Any] | None = None,
        reconstruction: dict[str, Any] | None = None,
        classifier: dict[str, Any] | None = None,
        input_mean: float = 0.5,
        input_std: float = 0.25,
    ) -> None:
        super().__init__()
        modules = dict(modules or {})
        backbone = dict(backbone or {})
        attention = dict(attention or {})
        reconstruction = dict(reconstruction or {})
        classifier = dict(classifier or {})
        lbp = dict(lbp or {})
        use_lbp = bool(modules.get("lbp", True)) and lbp.get("method") is not None
        self.use_attention = bool(modules.get("attention", True))
        self.use_reconstruction = bool(modules.get("reconstruction", True))
        self.ablation = modules.get("name", "custom")

        last_stage = int(backbone.get("last_stage", 4))
        self.feature_size = feature_size(image_size, last_stage)
        if self.feature_size < MIN_FEATURE_SIZE:
            raise ValueError(
                f"data.image_size={image_size} is too small for model.net.backbone.last_stage={last_stage}: "
                f"features would be {self.feature_size}x{self.feature_size}; need image_size >= "
                f"{MIN_FEATURE_SIZE * 2 ** (last_stage - 1)} or an earlier last_stage"
            )
        rates = (
            check_rates(reconstruction.get("rates", [1, 2, 3]), self.feature_size)
            if self.use_reconstruction
            else []
        )

        self.register_buffer("input_mean", torch.tensor(float(input_mean)), persistent=False)
        self.register_buffer("input_std", torch.tensor(float(input_std)), persistent=False)
        stream_kwargs = dict(
            arch=backbone.get("arch", "vgg16_bn"),
            last_stage=last_stage,
            width=float(backbone.get("width", 1.0)),
            in_channels=in_channels,
            weights=backbone.get("weights"),
        )
        self.image_stream = VGGStream(**stream_kwargs)
        channels = self.image_stream.out_channels
        self.lbp: LBPLayer | None = None
        self.lbp_stream: nn.Module | None = None
        self.fusion: FeatureFusion | None = None
        if use_lbp:
            self.lbp = LBPLayer(method=lbp["method"], P=int(lbp.get("P", 8)), R=float(lbp.get("R", 1.0)))
            if backbone.get("shared", False):
                if in_channels != 1:
                    raise ValueError(
                        "model.net.backbone.shared=true needs model.net.in_channels=1 (the LBP map has one channel)"
                    )
                self.lbp_stream = None
            else:
                self.lbp_stream = VGGStream(**{**stream_kwargs, "in_channels": 1})
            self.fusion = FeatureFusion(channels, attention.get("fusion", "concat"))
        self.shared_backbone = use_lbp and self.lbp_stream is None
        self.attention = (
            AttentionModule(channels, attention.get("mask_channels"), attention.get("mode", "residual"))
            if self.use_attention
            else None
        )
        self.reconstruction = (
            DilatedReconstruction(channels, rates, reconstruction.get("channels"))
            if self.use_reconstruction
            else None
        )
        self.classifier = Classifier(
            channels,
            self.feature_size,
            num_classes,
            hidden=int(classifier.get("hidden", 256)),
            dropout=float(classifier.get("dropout", 0.5)),
            pool=classifier.get("pool", "avg"),
        )

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
        """Logits; with ``return_mask=True`` also the attention mask averaged over channels and upsampled
        to the input's size, ``[N, 1, H, W]`` in [0, 1] (``None`` when attention is off)."""
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
