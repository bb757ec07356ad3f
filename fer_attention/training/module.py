"""The LightningModule: network, loss, optimiser and scheduler from config, torchmetrics per stage."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from fer_attention.models import count_parameters
from fer_attention.models.tta import check_tta, ten_crop_logits
from fer_attention.training.optim import configure_optimization
from fer_attention.training.transfer import check_transfer_options

log = logging.getLogger(__name__)

STAGES = ("train", "val", "test")


def compile_in_place(net: nn.Module, cache_dir: str | None = None) -> nn.Module:
    """``model.compile=true``: ``torch.compile`` the forward of ``net`` in place. Unlike
    ``net = torch.compile(net)`` this keeps the module and its state-dict keys as they are (no
    ``_orig_mod.`` prefix), so a checkpoint of a compiled run loads into an uncompiled network.
    ``cache_dir`` (``model.compile_cache_dir``) is Inductor's on-disk cache, shared by every job that
    names it: only the first job of a sweep compiles, the others load the compiled graphs (null: torch's
    own default, ``TORCHINDUCTOR_CACHE_DIR`` or a folder under /tmp)."""
    if not hasattr(nn.Module, "compile"):  # torch < 2.2
        raise ValueError("model.compile=true needs torch >= 2.2 (nn.Module.compile)")
    if cpp_compiler() is None:
        log.warning(
            "model.compile=true: no C++ compiler for Inductor (set CXX, or install g++ or clang++); "
            "training eager instead"
        )
        return net
    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir)  # read by Inductor when it compiles
    net.compile()
    return net


def cpp_compiler() -> str | None:
    """The C++ compiler Inductor builds CPU kernels with (``$CXX``, else c++, g++ or clang++ on PATH), or
    None when there is none."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++", "clang++"]
    return next((found for name in names if (found := shutil.which(name))), None)


def mark_batch_dynamic(x: torch.Tensor) -> torch.Tensor:
    """Compile the batch dimension as a symbol from the first step on, so the last short batch of an
    epoch and validation's batch size reuse the graphs instead of compiling them again."""
    if x.dim() > 0 and x.shape[0] > 1:
        torch._dynamo.maybe_mark_dynamic(x, 0)
    return x


class FERModule(pl.LightningModule):
    """Trains and evaluates a facial-expression network.

    Every argument is plain config data (dicts with ``_target_``), saved as hyperparameters, so
    ``FERModule.load_from_checkpoint(path)`` needs nothing else and checkpoints load with
    ``weights_only=True``. ``data_config`` records how the training faces were prepared, for
    evaluation and inference.

    Transfer (docs/transfer.md): ``init_from`` is only recorded here; the train task copies the matching
    tensors of that file into the network (:func:`fer_attention.training.transfer.apply_init_from`), so
    loading this module from its own checkpoint never reads the file again. ``freeze_backbone_epochs``
    keeps the VGG streams frozen (no gradient, batch-norm statistics fixed) for the first N training
    epochs; ``backbone_lr_scale`` gives the streams their own parameter group at ``lr x scale`` (a
    one-cycle ``max_lr`` is scaled the same way).

    Loss: cross-entropy against the hard label, or, when a training batch carries soft targets (FER+'s
    vote distributions, ``data.source.target=votes``), against those class probabilities; label smoothing
    then mixes the distribution with the uniform one and class weights weight each class's term (mean over
    faces). The metrics always use the hard label.

    Fast paths (same results up to floating-point rounding): ``channels_last`` converts the network's
    weights and every batch to the NHWC memory format; ``compile`` compiles the network's forward in
    place (``nn.Module.compile``), so the state dict keeps its keys and checkpoints load into an
    uncompiled network; its graphs are cached on disk in ``compile_cache_dir`` for the next job. Mixed
    precision is the trainer's (``trainer.precision=bf16-mixed``).
    """

    def __init__(
        self,
        net: dict[str, Any],
        optimizer: dict[str, Any],
        class_names: Sequence[str],
        scheduler: dict[str, Any] | None = None,
        loss: dict[str, Any] | None = None,
        compile: bool = False,
        compile_cache_dir: str | None = None,
        channels_last: bool = False,
        test_time_augmentation: str | None = None,
        data_config: dict[str, Any] | None = None,
        init_from: str | None = None,
        freeze_backbone_epochs: int = 0,
        backbone_lr_scale: float | None = None,
    ) -> None:
        super().__init__()
        check_tta(test_time_augmentation, "model.test_time_augmentation")
        check_transfer_options(freeze_backbone_epochs, backbone_lr_scale)
        self._backbone_frozen = False
        self.save_hyperparameters(logger=False)
        self.class_names = list(class_names)
        self.net: nn.Module = instantiate(net)
        num_classes = self.net.num_classes  # model.net.num_classes: the count of the class names
        loss = dict(loss or {})
        weights = loss.get("class_weights")
        self.criterion = nn.CrossEntropyLoss(
            weight=torch.tensor(weights, dtype=torch.float) if weights is not None else None,
            label_smoothing=float(loss.get("label_smoothing", 0.0)),
        )
        if channels_last:
            # NHWC weights: the convolutions run without layout conversions (see docs/benchmarks.md)
            self.net = self.net.to(memory_format=torch.channels_last)
        if compile:
            compile_in_place(self.net, compile_cache_dir)
        scalar_metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes, average="micro"),
                "f1_macro": MulticlassF1Score(num_classes, average="macro"),
            }
        )
        # ModuleDict keys can't be "train" (nn.Module.train), hence the "_stage" suffix
        self.metrics = nn.ModuleDict({f"{s}_stage": scalar_metrics.clone(prefix=f"{s}/") for s in STAGES})
        self.losses = nn.ModuleDict({f"{s}_stage": MeanMetric() for s in STAGES})
        self.confusion = nn.ModuleDict(
            {f"{s}_stage": MulticlassConfusionMatrix(num_classes) for s in ("val", "test")}
        )
        self.val_acc_best = MaxMetric()
        self.last_confusion: dict[str, list[list[int]]] = {}
        # the last test epoch's per-face labels and class probabilities, in loader order
        self._test_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.test_predictions: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor, return_mask: bool = False):
        x = self._to_memory_format(x)
        if self.hparams.get("compile"):
            x = mark_batch_dynamic(x)
        return self.net(x, return_mask=return_mask)

    def _to_memory_format(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.get("channels_last") and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def on_fit_start(self) -> None:
        counts = count_parameters(self.net)
        log.info("network parameters: %s", ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        self.val_acc_best.reset()
        restored = getattr(self, "_restored_val_acc_best", None)
        if restored is not None:
            self.val_acc_best(torch.tensor(restored))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # torchmetrics states are not in the state dict: keep the best validation accuracy so far,
        # so that a resumed run reports the same val/acc_best as one never interrupted
        if self.val_acc_best.update_called:
            checkpoint["val_acc_best"] = float(self.val_acc_best.compute())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._restored_val_acc_best = checkpoint.get("val_acc_best")

    def _step(self, batch, stage: str) -> torch.Tensor:
        # a batch with soft targets (data.source.target=votes, training only): (x, hard label, target)
        x, y, *soft = batch
        x = self._to_memory_format(x)
        if stage == "test" and self.hparams.get("test_time_augmentation") == "tencrop":
            logits = ten_crop_logits(self.net, x)
        else:
            logits = self.net(x)
        loss = self.criterion(logits.float(), soft[0].float()) if soft else self.criterion(logits, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{stage} loss is {loss.item()} at global step {self.global_step} (epoch {self.current_epoch}); "
                "lower model.optimizer.lr or check the data"
            )
        preds = logits.argmax(dim=1)
        if stage == "test":
            self._test_outputs.append((y.detach().cpu(), logits.detach().float().softmax(dim=1).cpu()))
        key = f"{stage}_stage"
        self.losses[key](loss.detach())
        self.metrics[key](preds, y)
        if key in self.confusion:
            self.confusion[key](preds, y)
        self.log(f"{stage}/loss", self.losses[key], on_step=False, on_epoch=True, prog_bar=stage != "test")
        self.log_dict(self.metrics[key], on_step=False, on_epoch=True, prog_bar=stage != "test")
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def _store_confusion(self, stage: str) -> None:
        metric = self.confusion[f"{stage}_stage"]
        self.last_confusion[stage] = metric.compute().cpu().long().tolist()
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        acc = self.metrics["val_stage"]["acc"].compute()
        self.val_acc_best(acc)
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)
        self._store_confusion("val")

    def on_test_epoch_start(self) -> None:
        self._test_outputs = []

    def on_test_epoch_end(self) -> None:
        self._store_confusion("test")
        if self._test_outputs:
            labels, probs = zip(*self._test_outputs, strict=True)
            self.test_predictions = (torch.cat(labels), torch.cat(probs))
        self._test_outputs = []

    # ----- transfer: frozen or slower backbone -----
    def backbone_modules(self) -> list[nn.Module]:
        """The VGG streams (image, and LBP when it has its own weights)."""
        return [m for m in (getattr(self.net, n, None) for n in BACKBONE_MODULES) if m is not None]

    def set_backbone_frozen(self, frozen: bool) -> None:
        """Freeze (no gradient, batch norm in eval mode) or release the VGG streams."""
        for module in self.backbone_modules():
            for p in module.parameters():
                p.requires_grad_(not frozen)
            module.train(not frozen and self.training)
        self._backbone_frozen = frozen

    def on_train_epoch_start(self) -> None:
        epochs = int(self.hparams.get("freeze_backbone_epochs") or 0)
        if not epochs:
            return
        frozen = self.current_epoch < epochs
        if frozen != self._backbone_frozen:
            self.set_backbone_frozen(frozen)
            if frozen:
                log.info(
                    "VGG streams frozen until epoch %d (model.freeze_backbone_epochs=%d)", epochs, epochs
                )
            else:
                log.info("VGG streams trainable from epoch %d", self.current_epoch)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self._backbone_frozen:  # Lightning may put the whole module back in train mode
            for module in self.backbone_modules():
                if module.training:
                    module.eval()

    def configure_optimizers(self):
        # every parameter goes to the optimiser (a stream frozen by freeze_backbone_epochs has no gradient
        # and is skipped until released); model.backbone_lr_scale gives the streams a group of their own
        scale = self.hparams.get("backbone_lr_scale")
        scale = 1.0 if scale is None else float(scale)
        backbone = {id(p) for m in self.backbone_modules() for p in m.parameters()}
        params = list(self.parameters())
        groups = None
        if scale != 1.0 and backbone:
            groups = [
                ([p for p in params if id(p) not in backbone], 1.0),
                ([p for p in params if id(p) in backbone], scale),
            ]
            log.info("VGG streams at lr x %g (model.backbone_lr_scale)", scale)
        return configure_optimization(self, self.hparams.optimizer, self.hparams.scheduler, groups)

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0):
        """``(logits as float32, labels or None)`` of a batch, with test-time augmentation if configured."""
        x, y = (batch[0], batch[1]) if isinstance(batch, list | tuple) else (batch, None)
        x = self._to_memory_format(x)
        if self.hparams.get("test_time_augmentation") == "tencrop":
            logits = ten_crop_logits(self.net, x)
        else:
            logits = self.net(x)
        return logits.float(), y


BACKBONE_MODULES = ("image_stream", "lbp_stream")
