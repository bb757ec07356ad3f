"""The pretext LightningModule: a :class:`~fer_attention.models.FERAttentionNet` with the pretext heads,
its losses per batch, and the export of the network for ``model.init_from``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from fer_attention.lbp import num_codes
from fer_attention.training.checkpoint_io import AtomicCheckpointIO
from fer_attention.training.optim import configure_optimization
from fer_attention.training.pretext.losses import histogram_kl, info_nce, lbp_histograms

EXCLUDED_FROM_EXPORT = ("classifier.",)


def _mlp(channels: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


def _pooled(features: torch.Tensor) -> torch.Tensor:
    return F.adaptive_avg_pool2d(features, 1).flatten(1)


class PretextModule(pl.LightningModule):
    """A :class:`~fer_attention.models.FERAttentionNet` (``net``, as in ``model.net``) with pretext heads."""

    def __init__(
        self,
        net: dict[str, Any],
        optimizer: dict[str, Any],
        pretext: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.net = instantiate(net)
        p = dict(pretext)
        self.histogram_weight = float(p.get("histogram_weight", 1.0))
        self.contrastive_weight = float(p.get("contrastive_weight", 0.0))
        self.temperature = float(p.get("temperature", 0.1))
        target = dict(p.get("target_lbp") or {})
        self.target_lbp = (
            str(target.get("method", "uniform")),
            int(target.get("P", 8)),
            float(target.get("R", 1.0)),
        )
        self.grid = int(p.get("grid", 3))
        channels = self.net.image_stream.out_channels
        hidden = int(p.get("head_hidden", 128))
        self.hist_head = None
        if self.histogram_weight > 0:
            k = num_codes(self.target_lbp[0], self.target_lbp[1])
            self.hist_head = nn.Sequential(
                nn.Conv2d(channels, hidden, 1),
                nn.BatchNorm2d(hidden),
                nn.ReLU(inplace=True),
                nn.Conv2d(hidden, k, 1),
            )
        self.proj_image = self.proj_lbp = None
        if self.contrastive_weight > 0:
            dim = int(p.get("projection_dim", 64))
            self.proj_image = _mlp(channels, hidden, dim)
            self.proj_lbp = _mlp(channels, hidden, dim)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self._val_targets: list[torch.Tensor] = []

    @property
    def views(self) -> int:
        """Augmented views per face the losses need: two for InfoNCE, else one."""
        return 2 if self.contrastive_weight > 0 else 1

    def _to_memory_format(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.hparams.get("channels_last") else x

    def losses(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """The pretext losses of a ``[N, 1 + views, 1, H, W]`` batch (``loss`` is their weighted sum)."""
        clean, view1 = batch[:, 0], self._to_memory_format(batch[:, 1])
        out: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=batch.device)
        if self.hist_head is not None:
            features = self.net.encode(view1)
            image1, lbp1 = features["image"], features["lbp"]
            logits = self.hist_head(F.adaptive_avg_pool2d(features["out"], self.grid))
            target = lbp_histograms(clean, *self.target_lbp, self.grid)
            out["hist_kl"] = histogram_kl(logits, target)
            out["_target"] = target
            total = total + self.histogram_weight * out["hist_kl"]
        else:
            image1, lbp1 = self.net.stream_features(view1)
        if self.proj_image is not None:
            image2, lbp2 = self.net.stream_features(self._to_memory_format(batch[:, 2]))
            loss_a, acc_a = info_nce(
                self.proj_image(_pooled(image1)), self.proj_lbp(_pooled(lbp2)), self.temperature
            )
            loss_b, acc_b = info_nce(
                self.proj_image(_pooled(image2)), self.proj_lbp(_pooled(lbp1)), self.temperature
            )
            out["nce"] = 0.5 * (loss_a + loss_b)
            out["nce_acc"] = 0.5 * (acc_a + acc_b)
            total = total + self.contrastive_weight * out["nce"]
        out["loss"] = total
        return out

    def _log_stage(self, out: dict[str, torch.Tensor], stage: str, n: int) -> None:
        for key, value in out.items():
            if not key.startswith("_"):
                self.log(
                    f"{stage}/{key}",
                    value.detach(),
                    on_step=False,
                    on_epoch=True,
                    prog_bar=key == "loss",
                    batch_size=n,
                )

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        if not torch.isfinite(out["loss"]):
            raise FloatingPointError(
                f"pretext loss is {out['loss'].item()} at global step {self.global_step}; lower model.optimizer.lr"
            )
        self._log_stage(out, "train", len(batch))
        return out["loss"]

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        out = self.losses(batch)
        if "_target" in out:
            self._val_targets.append(out["_target"].detach().float().cpu())
        self._log_stage(out, "val", len(batch))

    def on_validation_epoch_end(self) -> None:
        # the KL of the best constant guess (the val faces' own mean histogram per cell): what the
        # histogram pretext's val/hist_kl has to beat to have learned anything from the face
        if self._val_targets:
            targets = torch.cat(self._val_targets)
            mean = targets.mean(dim=0, keepdim=True).clamp_min(1e-12)
            kl = histogram_kl(torch.log(mean).expand_as(targets), targets)
            self.log("val/hist_kl_constant", kl)
            self._val_targets.clear()

    def configure_optimizers(self):
        return configure_optimization(self, self.hparams.optimizer, self.hparams.scheduler)

    def export(self, path: str | Path, info: dict[str, Any]) -> Path:
        """Write the network's tensors (not the classifier, which the pretext never trains) as a
        checkpoint that ``model.init_from`` reads."""
        state = {
            f"net.{k}": v.detach().cpu().contiguous()
            for k, v in self.net.state_dict().items()
            if not k.startswith(EXCLUDED_FROM_EXPORT)
        }
        hparams = {"net": self.hparams.net, "pretext": dict(self.hparams.pretext), **info}
        AtomicCheckpointIO().save_checkpoint({"state_dict": state, "hyper_parameters": hparams}, Path(path))
        return Path(path)
