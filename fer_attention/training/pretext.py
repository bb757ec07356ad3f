"""Self-supervised pretexts built on the LBP maps the network already computes (``fer-pretrain``).

Two pretexts, combinable by weight (``conf/pretext/``):

- **LBP histograms** (``histogram_weight``): from an augmented view of a face (shifted, scaled, rotated,
  re-lit, blurred or noised, partly occluded), predict the LBP-code histogram of every cell of a
  ``grid x grid`` layout of the *clean* face. A small 1x1-conv head on the features the classifier would
  pool (after attention and reconstruction) outputs one distribution per cell; the loss is the KL
  divergence from the target histogram, averaged over cells. The network has to undo the augmentation
  and know where the brows, eyes, nose and mouth are and which texture each has: what the expression
  classifier needs too. Every module before the classifier learns (streams, fusion, attention,
  reconstruction).
- **Image-LBP contrast** (``contrastive_weight``): two augmented views of each face; the image stream's
  pooled features of one view and the LBP stream's pooled features of the other are projected and
  aligned with InfoNCE (the other faces of the batch are the negatives), in both directions. Trains the
  two streams to agree across modalities and augmentations.

The result is ``<run dir>/pretext.ckpt``: the network's tensors under the same names as in a
:class:`~fer_attention.models.FERAttentionNet` (``net.*``; the classifier, which the pretext never
trains, is left out), loadable by ``fer-train model.init_from=<run dir>/pretext.ckpt``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn
from torch.utils.data import DataLoader

from fer_attention.config import validate_config
from fer_attention.data.augment import build_augmentation
from fer_attention.data.dataset import FaceArrayDataset
from fer_attention.data.records import FaceArrays
from fer_attention.data.samplers import EpochSampler
from fer_attention.errors import ConfigError, DataError
from fer_attention.lbp import check_args as check_lbp_args
from fer_attention.lbp import local_binary_pattern, num_codes
from fer_attention.training.optim import configure_optimization

log = logging.getLogger(__name__)

PRETEXT_FILE = "pretext.ckpt"
EXCLUDED_FROM_EXPORT = ("classifier.",)


# ----- data -----
class PretextViews(FaceArrayDataset):
    """Faces ``uint8 [N, H, W]`` -> ``float32 [1 + views, 1, H, W]`` in [0, 1]: the clean face, then
    ``views`` independently augmented copies of it (``transform``, albumentations)."""

    def __init__(
        self, images: np.ndarray, transform=None, views: int = 1, fixed_seed: int | None = None
    ) -> None:
        super().__init__(images, np.zeros(len(images), dtype=np.int64), transform)
        self.views = int(views)
        # validation: the same views every epoch (the augmentation reseeded per face from this seed)
        self.fixed_seed = fixed_seed

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index]
        out = [image]
        if self.transform is not None:
            if self.fixed_seed is None:
                self._seed_transform()
            else:
                self.transform.set_random_seed((self.fixed_seed * 1_000_003 + index) % 2**32)
        for _ in range(self.views):
            out.append(image if self.transform is None else self.transform(image=image)["image"])
        stack = np.stack([np.ascontiguousarray(v) for v in out])
        return torch.from_numpy(stack).unsqueeze(1).float().div_(255.0)


def select_faces(
    faces: FaceArrays, splits: list[str], val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the faces the pretext trains on and of those it watches its loss on (labels unused).

    A dataset with a fixed split gives the faces of ``splits`` (e.g. FER2013's Training faces only, so
    its PublicTest and PrivateTest faces stay unseen) and its ``val`` faces; otherwise every face, with
    ``val_fraction`` of the subjects held out."""
    rng = np.random.default_rng(seed)
    if faces.splits is not None:
        train = np.flatnonzero(np.isin(faces.splits, list(splits)))
        val = np.flatnonzero(faces.splits == "val")
        val = np.setdiff1d(val, train)
        if len(train) and len(val):
            return train, val
        pool = train
    else:
        pool = np.arange(len(faces))
    if len(pool) == 0:
        raise DataError(f"no faces in the splits {list(splits)} (pretext splits)")
    subjects = np.unique(faces.subjects[pool])
    n_val = int(round(len(subjects) * val_fraction)) if len(subjects) > 1 else 0
    n_val = min(max(n_val, 1 if len(subjects) > 1 and val_fraction > 0 else 0), len(subjects) - 1)
    held = set(rng.choice(subjects, size=n_val, replace=False).tolist()) if n_val else set()
    in_val = np.asarray([s in held for s in faces.subjects[pool]], dtype=bool)
    return pool[~in_val], pool[in_val]


# ----- losses -----
def lbp_histograms(clean: torch.Tensor, method: str, P: int, R: float, grid: int) -> torch.Tensor:
    """Per-cell LBP-code histograms of ``[N, 1, H, W]`` faces: ``[N, K, grid, grid]``, each cell summing to 1."""
    with torch.no_grad(), torch.autocast(clean.device.type, enabled=False):
        codes = local_binary_pattern(clean.float(), method=method, P=P, R=R)
        k = num_codes(method, P)
        onehot = F.one_hot(codes[:, 0].long().clamp_(0, k - 1), k).permute(0, 3, 1, 2).float()
        return F.adaptive_avg_pool2d(onehot, grid)


def histogram_kl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over faces and cells of KL(target || softmax(logits)) over the code axis (dim 1)."""
    logp = F.log_softmax(logits.float(), dim=1)
    entropy = torch.where(target > 0, target * torch.log(target.clamp_min(1e-12)), torch.zeros_like(target))
    return (entropy - target * logp).sum(dim=1).mean()


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE between matched rows of ``a`` and ``b`` (``[N, D]``); also the top-1 accuracy of
    finding each row's partner among the batch."""
    a, b = F.normalize(a.float(), dim=1), F.normalize(b.float(), dim=1)
    logits = a @ b.t() / temperature
    labels = torch.arange(len(a), device=a.device)
    loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
    acc = (logits.argmax(dim=1) == labels).float().mean()
    return loss, acc


def _mlp(channels: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


# ----- the LightningModule -----
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
        return 2 if self.contrastive_weight > 0 else 1

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.hparams.get("channels_last") else x

    def losses(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """The pretext losses of a ``[N, 1 + views, 1, H, W]`` batch (``loss`` is their weighted sum)."""
        clean, view1 = batch[:, 0], self._fmt(batch[:, 1])
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
            image2, lbp2 = self.net.stream_features(self._fmt(batch[:, 2]))

            def pooled(t: torch.Tensor) -> torch.Tensor:
                return F.adaptive_avg_pool2d(t, 1).flatten(1)

            loss_a, acc_a = info_nce(
                self.proj_image(pooled(image1)), self.proj_lbp(pooled(lbp2)), self.temperature
            )
            loss_b, acc_b = info_nce(
                self.proj_image(pooled(image2)), self.proj_lbp(pooled(lbp1)), self.temperature
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
        from fer_attention.training.checkpoint import AtomicCheckpointIO

        state = {
            f"net.{k}": v.detach().cpu().contiguous()
            for k, v in self.net.state_dict().items()
            if not k.startswith(EXCLUDED_FROM_EXPORT)
        }
        hparams = {"net": self.hparams.net, "pretext": dict(self.hparams.pretext), **info}
        AtomicCheckpointIO().save_checkpoint({"state_dict": state, "hyper_parameters": hparams}, Path(path))
        return Path(path)


# ----- the task -----
def check_pretext(cfg: DictConfig) -> None:
    """ConfigError (one line) for a pretext config that cannot work, before any data is loaded."""
    p = cfg.get("pretext") or {}
    hw, cw = float(p.get("histogram_weight", 0) or 0), float(p.get("contrastive_weight", 0) or 0)
    if hw < 0 or cw < 0 or hw + cw <= 0:
        raise ConfigError(
            f"pretext.histogram_weight={hw} and pretext.contrastive_weight={cw}: both >= 0, at least one > 0"
        )
    if hw > 0:
        t = p.get("target_lbp") or {}
        method = t.get("method", "uniform")
        if method == "var":
            raise ConfigError("pretext.target_lbp.method=var has no codes to count; use uniform, circle, ...")
        try:
            check_lbp_args(method, t.get("P", 8), t.get("R", 1.0))
        except ValueError as err:
            raise ConfigError(f"pretext.target_{err}") from None
        grid = p.get("grid", 3)
        size = OmegaConf.select(cfg, "data.image_size", default=48)
        if not isinstance(grid, int) or not 1 <= grid <= size:
            raise ConfigError(f"pretext.grid={grid!r} must be an integer in 1..{size} (data.image_size)")
    if cw > 0:
        modules = OmegaConf.select(cfg, "model.net.modules", default={}) or {}
        if not modules.get("lbp", True) or OmegaConf.select(cfg, "model.net.lbp.method") is None:
            raise ConfigError(
                "pretext.contrastive_weight > 0 aligns the image and LBP streams: it needs the LBP stream "
                "(not lbp=none or ablation=no_lbp/vgg16)"
            )
    temperature = p.get("temperature", 0.1)
    if not isinstance(temperature, int | float) or temperature <= 0:
        raise ConfigError(f"pretext.temperature={temperature!r} must be a number > 0")
    if cfg.get("ckpt_path") == "last":
        raise ConfigError("ckpt_path=last: give fer-pretrain the file, <run dir>/checkpoints/last.ckpt")
    fraction = cfg.get("val_fraction", 0.05)
    if not isinstance(fraction, int | float) or not 0 <= fraction < 1:
        raise ConfigError(f"val_fraction={fraction!r} must be in [0, 1)")


def _load_faces(data_cfg: dict[str, Any]) -> FaceArrays:
    """Decode the faces (labels kept but unused); an unreadable folder is one line naming the folder."""
    from fer_attention.training.builders import build_datamodule

    datamodule = build_datamodule(data_cfg)
    root = data_cfg.get("root")
    try:
        return datamodule.load()
    except DataError as err:
        text = str(err)
        if text.startswith("no usable images") and root:
            raise DataError(f"{root}: no readable images ({text})") from None
        raise


def _resume_path(ckpt_path: str | None) -> str | None:
    """``ckpt_path``: a pretext run's ``checkpoints/last.ckpt`` to continue (validate_config checked that
    it exists)."""
    if ckpt_path in (None, ""):
        return None
    if ckpt_path == "last":
        raise ConfigError("ckpt_path=last: give fer-pretrain the file, <run dir>/checkpoints/last.ckpt")
    return str(ckpt_path)


def pretrain(cfg: DictConfig) -> dict[str, Any]:
    """Train the pretext on the faces of ``cfg.data`` (labels ignored); write ``pretext.ckpt`` and
    metrics.json into the run dir. Returns the metrics."""
    from fer_attention.callbacks.epoch_seed import EpochSeed
    from fer_attention.runtime import resolve_precision, set_threads, tune_malloc
    from fer_attention.training.builders import (
        build_callbacks,
        build_loggers,
        build_trainer,
        to_dict,
    )
    from fer_attention.training.lifecycle import run_lifecycle

    start = time.time()
    validate_config(cfg)
    check_pretext(cfg)
    tune_malloc(**(to_dict(cfg.get("malloc")) or {}))
    set_threads(cfg.get("threads"))
    with run_lifecycle(cfg.paths.output_dir, start) as run:
        run_dir = run.run_dir
        pl.seed_everything(int(cfg.seed), workers=True)
        data_cfg = to_dict(cfg.data)
        faces = _load_faces(data_cfg)
        train_idx, val_idx = select_faces(
            faces, list(cfg.get("splits") or ["train"]), float(cfg.get("val_fraction", 0.05)), int(cfg.seed)
        )
        pretext_cfg = to_dict(cfg.pretext)
        model_cfg = to_dict(cfg.model)
        module = PretextModule(
            net=model_cfg["net"],
            optimizer=model_cfg["optimizer"],
            scheduler=model_cfg.get("scheduler"),
            pretext=pretext_cfg,
            channels_last=bool(model_cfg.get("channels_last", False)),
        )
        transform = build_augmentation(pretext_cfg.get("augment"))
        train_set = PretextViews(faces.images[train_idx], transform, module.views)
        sampler = EpochSampler(len(train_set), seed=int(cfg.seed))
        batch_size = int(cfg.data.batch_size)
        loaders = {
            "train_dataloaders": DataLoader(
                train_set,
                batch_size=batch_size,
                sampler=sampler,
                generator=sampler.loader_generator,
                num_workers=int(cfg.data.num_workers),
                drop_last=len(train_set) > batch_size,  # InfoNCE wants full batches of negatives
            )
        }
        if len(val_idx):
            # fixed views for validation: the same augmentation draw every epoch (seeded per face)
            val_tf = build_augmentation(pretext_cfg.get("augment"))
            val_set = PretextViews(faces.images[val_idx], val_tf, module.views, fixed_seed=int(cfg.seed))
            loaders["val_dataloaders"] = DataLoader(
                val_set,
                batch_size=int(cfg.data.get("eval_batch_size") or batch_size),
                num_workers=int(cfg.data.num_workers),
            )
        log.info(
            "pretext %s on %d faces of %s (labels ignored), %d held out to watch the loss; views per face: %d",
            pretext_cfg.get("name"),
            len(train_idx),
            data_cfg.get("name"),
            len(val_idx),
            module.views,
        )
        callbacks = [*build_callbacks(cfg.get("callbacks")), EpochSeed(int(cfg.seed))]
        loggers = build_loggers(cfg.get("logger"), cfg)
        precision = resolve_precision(cfg.trainer.precision, str(cfg.trainer.get("accelerator", "auto")))
        if precision != cfg.trainer.precision:
            with open_dict(cfg):
                cfg.trainer.precision = precision
        trainer = build_trainer(cfg.trainer, callbacks, loggers)
        if "val_dataloaders" not in loaders:
            trainer.limit_val_batches = 0
        trainer.fit(module, ckpt_path=_resume_path(cfg.get("ckpt_path")), **loaders)
        fit = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        info = {
            "class_names": None,
            "data": data_cfg.get("name"),
            "faces": int(len(train_idx)),
            "epochs": int(trainer.current_epoch),
        }
        ckpt = (
            module.export(run_dir / PRETEXT_FILE, {"pretext_data": info}) if trainer.is_global_zero else None
        )
        metrics = {
            **{k: v for k, v in fit.items() if k.startswith(("train/", "val/"))},
            "pretext": pretext_cfg.get("name"),
            "pretext_ckpt": str(ckpt) if ckpt else None,
            "data": data_cfg.get("name"),
            "faces": {"train": int(len(train_idx)), "val": int(len(val_idx))},
            "skipped_files": len(faces.skipped),
            "epochs": int(trainer.current_epoch),
            "seed": int(cfg.seed),
            "run_dir": str(run_dir),
            "seconds": run.seconds(),
        }
        return run.finish(metrics)
