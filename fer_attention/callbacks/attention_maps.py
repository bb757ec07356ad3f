"""Attention pictures for a fixed set of validation faces, every few epochs, to the run dir and W&B."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
import torch

from fer_attention.viz.attention import attention_maps, plot_attention_grid

log = logging.getLogger(__name__)


class AttentionMaps(pl.Callback):
    """Saves ``<run dir>/attention/epoch_NNN.png`` (face, LBP map, mask) for ``num_faces`` validation faces,
    the same faces every time (one per class first), and logs it to W&B when that logger is active."""

    def __init__(self, num_faces: int = 8, every_n_epochs: int = 1, dirname: str = "attention") -> None:
        self.num_faces = num_faces
        self.every_n_epochs = max(1, every_n_epochs)
        self.dirname = dirname
        self._faces: torch.Tensor | None = None
        self._labels: list[int] | None = None

    def _pick_faces(self, trainer: pl.Trainer) -> None:
        dataset = trainer.datamodule.datasets["val"] if trainer.datamodule is not None else None
        if dataset is None or len(dataset) == 0:
            return
        labels = dataset.labels.tolist()
        order = []
        for c in sorted(set(labels)):  # one face per class first, then fill in order
            order.append(labels.index(c))
        order += [i for i in range(len(labels)) if i not in order]
        chosen = order[: self.num_faces]
        self._faces = torch.stack([dataset[i][0] for i in chosen])
        self._labels = [labels[i] for i in chosen]

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (
            trainer.sanity_checking
            or trainer.current_epoch % self.every_n_epochs
            or not trainer.is_global_zero
        ):
            return
        net = getattr(pl_module, "net", None)
        if net is None or getattr(net, "attention", None) is None:
            return
        if self._faces is None:
            self._pick_faces(trainer)
            if self._faces is None:
                return
        maps = attention_maps(net, self._faces.to(pl_module.device))
        path = Path(trainer.default_root_dir) / self.dirname / f"epoch_{trainer.current_epoch:03d}.png"
        plot_attention_grid(maps, pl_module.class_names, self._labels, path, f"epoch {trainer.current_epoch}")
        for lg in trainer.loggers:
            if type(lg).__name__ == "WandbLogger":
                lg.log_image(key="attention", images=[str(path)], step=trainer.global_step)
