"""The train and eval tasks: plain functions over a composed config, called by the CLIs and tests."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from fer_attention.callbacks.epoch_seed import EpochSeed
from fer_attention.config import validate_config
from fer_attention.errors import ConfigError
from fer_attention.models.tta import check_tta
from fer_attention.runs import METRICS_FILE
from fer_attention.runtime import configure_process, resolve_precision
from fer_attention.task_options import EvalSplit
from fer_attention.training.builders import (
    build_callbacks,
    build_datamodule,
    build_loggers,
    build_model,
    build_trainer,
    to_dict,
)
from fer_attention.training.checkpoint import find_resume_dir, read_checkpoint, resolve_resume_path
from fer_attention.training.lifecycle import run_lifecycle, save_test_predictions, write_status
from fer_attention.training.module import FERModule
from fer_attention.training.transfer import apply_init_from, check_transfer_config

log = logging.getLogger(__name__)


def _overrides() -> list[str]:
    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
    return []


def _metric(values: dict[str, Any], key: str) -> float | None:
    value = values.get(key)
    return None if value is None else float(value)


def _results(model: FERModule, test_metrics: dict[str, Any], split: str) -> dict[str, Any]:
    out = {f"{split}/{k}": _metric(test_metrics, f"test/{k}") for k in ("acc", "f1_macro", "loss")}
    out[f"{split}/confusion_matrix"] = model.last_confusion.get("test")
    out["class_names"] = list(model.class_names)
    return out


def _checkpoint_paths(trainer: pl.Trainer) -> tuple[str | None, str | None]:
    """(best on the monitored metric, last saved) checkpoint paths, None where there is none."""
    best = last = None
    for cb in trainer.checkpoint_callbacks:
        if cb.monitor is not None:
            best = best or cb.best_model_path or None
        else:
            last = last or cb.best_model_path or None
        last = last or getattr(cb, "last_model_path", "") or None
    return best, last


def _resume_into(cfg: DictConfig) -> tuple[Path | None, Path, logging.Handler | None]:
    """``resume=true``: find the run to continue and make it this run's output dir (checkpoints, logs,
    metrics and status all continue there). Returns (last checkpoint or None, run dir, the log handler
    that appends to the continued run's log, for the caller to remove when the job ends)."""
    launched_in = Path(cfg.paths.output_dir)
    if not cfg.get("resume"):
        return None, launched_in, None
    log_root = Path(cfg.paths.log_dir) / str(cfg.task_name)
    found = find_resume_dir(launched_in, log_root, _overrides())
    if found is None:
        log.info("resume=true: no earlier run with these overrides under %s; starting from scratch", log_root)
        return None, launched_in, None
    handler = None
    if found.resolve() != launched_in.resolve():
        with open_dict(cfg):
            cfg.paths.output_dir = str(found)
        launched_in.mkdir(parents=True, exist_ok=True)
        write_status(launched_in, "resumed", continued_in=str(found))
        handler = logging.FileHandler(found / f"{cfg.task_name}.log", mode="a")
        handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        logging.getLogger().addHandler(handler)
    last = found / "checkpoints" / "last.ckpt"
    log.info("resume=true: continuing %s from %s", found, last.name)
    return last, found, handler


@contextmanager
def _log_handler(handler: logging.Handler | None) -> Iterator[None]:
    """Keep the resumed run's log handler for the task, and drop it afterwards."""
    try:
        yield
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()


def _log_pictures(loggers: list, run_dir: Path) -> None:
    """Send the confusion matrix picture to W&B when it is one of the loggers."""
    picture = run_dir / "confusion_matrix.png"
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger" and picture.is_file():
            lg.log_image(key="test/confusion_matrix", images=[str(picture)])


def _init_from(cfg: DictConfig, model: FERModule, resume_ckpt: Path | None) -> dict[str, Any] | None:
    """``model.init_from``: copy the matching tensors of that file into the new network (not when the run
    continues a training state: ``resume=true`` or ``ckpt_path`` restore every weight anyway)."""
    path = OmegaConf.select(cfg, "model.init_from", default=None)
    if path in (None, ""):
        return None
    if resume_ckpt or cfg.get("ckpt_path") not in (None, ""):
        log.info("model.init_from=%s not applied: the run continues a checkpoint's training state", path)
        return None
    return apply_init_from(model.net, path, model.class_names)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit on train, select on val, test the best-on-val checkpoint once; write metrics.json.

    Returns the metrics dict that is written to ``<run dir>/metrics.json``.
    """
    start = time.time()
    validate_config(cfg)
    check_transfer_config(cfg)  # after the network's rules: it builds the network (on the meta device)
    configure_process(cfg.get("threads"), to_dict(cfg.get("malloc")))
    precision = resolve_precision(cfg.trainer.precision, str(cfg.trainer.get("accelerator", "auto")))
    if precision != cfg.trainer.precision:
        with open_dict(cfg):
            cfg.trainer.precision = precision
    resume_ckpt, run_dir, resume_log = _resume_into(cfg)
    with _log_handler(resume_log):
        done = run_dir / METRICS_FILE
        if (cfg.get("skip_done") or resume_ckpt) and done.is_file():
            log.info("%s already finished (%s): nothing to do", run_dir, METRICS_FILE)
            return json.loads(done.read_text())
        with run_lifecycle(run_dir, start) as run:
            return _fit_and_test(cfg, run, resume_ckpt)


def _fit_and_test(cfg: DictConfig, run, resume_ckpt: Path | None) -> dict[str, Any]:
    """The body of :func:`train` inside its run lifecycle."""
    run_dir = run.run_dir
    pl.seed_everything(int(cfg.seed), workers=True)
    datamodule = build_datamodule(cfg.data)
    model_cfg = cfg.model
    if OmegaConf.select(cfg, "model.loss.class_weighted", default=False):
        datamodule.setup("fit")
        weights = datamodule.class_weights()
        log.info("class-weighted loss: %s", ", ".join(f"{w:.2f}" for w in weights))
        model_cfg = OmegaConf.merge(cfg.model, {"loss": {"class_weights": weights}})
    model = build_model(model_cfg, cfg.data)
    init_summary = _init_from(cfg, model, resume_ckpt)
    callbacks = [*build_callbacks(cfg.get("callbacks")), EpochSeed(int(cfg.seed))]
    loggers = build_loggers(cfg.get("logger"), cfg)
    trainer = build_trainer(cfg.trainer, callbacks, loggers)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))

    if cfg.get("train", True):
        ckpt_path = resume_ckpt or resolve_resume_path(cfg.get("ckpt_path"), run_dir)
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    best_ckpt, last_ckpt = _checkpoint_paths(trainer)

    metrics: dict[str, Any] = {"val/acc_best": fit_metrics.get("val/acc_best", _monitored_best(trainer))}
    if cfg.get("test", True):
        if best_ckpt is None:
            log.warning("no best-on-validation checkpoint (checkpointing off?): testing the final weights")
        test_out = trainer.test(
            model, datamodule=datamodule, ckpt_path=best_ckpt, weights_only=True, verbose=False
        )
        metrics.update(_results(model, test_out[0] if test_out else {}, "test"))
        metrics["predictions"] = save_test_predictions(
            trainer, model, run_dir, datamodule.face_ids("test"), "test"
        )
    metrics.update(
        {
            "class_names": list(model.class_names),
            "best_ckpt": best_ckpt,
            "last_ckpt": last_ckpt,
            "epochs": int(trainer.current_epoch),
            "num_parameters": int(sum(p.numel() for p in model.net.parameters() if p.requires_grad)),
            "splits": datamodule.split_summary() if hasattr(datamodule, "split_summary") else None,
            **(datamodule.label_rules() if hasattr(datamodule, "label_rules") else {}),
            "seed": int(cfg.seed),
            "threads": _threads(),
            "overrides": _overrides(),
            "run_dir": str(run_dir),
            "resumed_from": str(resume_ckpt) if resume_ckpt else cfg.get("ckpt_path"),
            "init_from": init_summary,
            "world_size": int(trainer.world_size),
            "precision": str(cfg.trainer.precision),
            "seconds": run.seconds(),
        }
    )
    metrics = run.finish(metrics, f"{cfg.data.name} test (best on val)")
    if trainer.is_global_zero:
        _log_pictures(loggers, run_dir)
    return metrics


def _monitored_best(trainer: pl.Trainer) -> float | None:
    """The best validation score the checkpoint callback holds: a run resumed after its last epoch (killed
    while testing) fits nothing, so no val/acc_best is logged, but the restored callback still knows it."""
    for cb in trainer.checkpoint_callbacks:
        if cb.monitor == "val/acc" and cb.best_model_score is not None:
            return float(cb.best_model_score)
    return None


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _best_val_score(ckpt: dict[str, Any]) -> float | None:
    for key, state in (ckpt.get("callbacks") or {}).items():
        if "ModelCheckpoint" in str(key) and state.get("best_model_score") is not None:
            return float(state["best_model_score"])
    return None


EVAL_SPLITS = EvalSplit.values()


def _class_mapping(hparams: dict[str, Any], data_cfg: dict[str, Any]):
    """How the checkpoint's classes meet the data's (:func:`fer_attention.classes.map_classes`); ``None``
    when the data config names no classes (the datamodule reports that). No class in common is an error
    listing both class sets."""
    from fer_attention.classes import map_classes

    target = data_cfg.get("class_names")
    if not target or isinstance(target, str):
        return None
    model_names = [str(n) for n in hparams["class_names"]]
    mapping = map_classes(model_names, target)
    if not mapping.shared:
        raise ConfigError(
            f"no class in common: the model's classes are {model_names}, data "
            f"'{data_cfg.get('name')}' has {list(target)} (synonyms: fer_attention/classes.py)"
        )
    return mapping


def _eval_loader(datamodule, split: str):
    """The loader of ``split`` (``test`` / ``val`` of the data's protocol, or ``all`` of its faces) and its
    faces' ids in loader order."""
    if split != "all":
        datamodule.setup("test")
        loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
        return loader, datamodule.face_ids(split)
    import numpy as np
    from torch.utils.data import DataLoader

    from fer_attention.data.datamodule import face_ids
    from fer_attention.data.dataset import FaceArrayDataset

    faces = datamodule.load()
    log.info("split=all: every face of %s (%d)", datamodule.name, len(faces))
    loader = DataLoader(
        FaceArrayDataset(faces.images, faces.labels),
        batch_size=datamodule.eval_batch_size,
        shuffle=False,
        num_workers=datamodule.options.num_workers,
    )
    return loader, face_ids(faces, np.arange(len(faces)), datamodule.name, datamodule.root)


def _cross_results(
    trainer: pl.Trainer, model: FERModule, loader, mapping, split: str, ids: list[str], run_dir: Path
) -> dict[str, Any]:
    """Metrics over the classes the model and the target share (cross-dataset evaluation), and the
    per-face predictions of the faces evaluated, over the shared classes, in ``run_dir``.

    Faces of target classes the model lacks are left out; logits of model classes the target lacks are
    masked out before the argmax (the model can only answer with a class the target has), so accuracy,
    macro F1, loss and the confusion matrix (rows = true class) are all over the shared classes."""
    import torch
    import torch.nn.functional as F
    from torchmetrics.functional.classification import multiclass_confusion_matrix, multiclass_f1_score

    outputs = trainer.predict(model, dataloaders=loader)
    logits = torch.cat([o[0].cpu() for o in outputs]).float()
    labels = torch.cat([o[1].cpu() for o in outputs]).long()
    k = len(mapping.shared)
    to_shared = torch.full((len(mapping.target_names),), -1, dtype=torch.long)
    to_shared[mapping.target_indices] = torch.arange(k)
    y = to_shared[labels]
    keep = y >= 0
    shared_logits = logits[keep][:, mapping.model_indices]
    y = y[keep]
    preds = shared_logits.argmax(dim=1)
    excluded = {name: int((labels == mapping.target_names.index(name)).sum()) for name in mapping.target_only}
    n = int(keep.sum())
    names = mapping.shared_target_names
    log.info(
        "cross-dataset: %d shared classes (%s); the model lacks %s (%d faces left out); the target lacks %s "
        "(their logits are masked before the argmax)",
        k,
        ", ".join(f"{mapping.target_names[t]}={mapping.model_names[m]}" for _, m, t in mapping.shared),
        mapping.target_only or "none",
        sum(excluded.values()),
        mapping.model_only or "none",
    )
    if n == 0:
        raise ValueError(f"no face of a shared class ({', '.join(names)}) in the {split} split")
    acc = float((preds == y).float().mean())
    f1 = float(multiclass_f1_score(preds, y, num_classes=k, average="macro")) if k > 1 else acc
    cm = multiclass_confusion_matrix(preds, y, num_classes=k).long().tolist() if k > 1 else [[n]]
    log.info("%s: accuracy %.4f, macro F1 %.4f on %d faces of the shared classes", split, acc, f1, n)
    kept_ids = [face for face, k in zip(ids, keep.tolist(), strict=True) if k]
    model.test_predictions = (y, shared_logits.softmax(dim=1))
    predictions = save_test_predictions(trainer, model, run_dir, kept_ids, split, class_names=names)
    return {
        "predictions": predictions,
        f"{split}/acc": acc,
        f"{split}/f1_macro": f1,
        f"{split}/loss": float(F.cross_entropy(shared_logits, y)),
        f"{split}/confusion_matrix": cm,
        "class_names": names,
        "class_mapping": {
            **mapping.as_dict(),
            "model_classes": list(mapping.model_names),
            "target_classes": list(mapping.target_names),
            "rule": "faces of target_only classes left out; logits of model_only classes masked before argmax",
        },
        "faces": {"total": int(len(labels)), "evaluated": n, "left_out": excluded},
    }


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test a checkpoint on the split ``cfg.split`` (test, val, or all faces) of its own data config (or
    ``cfg.data`` if given). When the data's classes differ from the model's, classes are matched by name
    (:mod:`fer_attention.classes`) and the metrics cover the shared classes (:func:`_cross_results`)."""
    start = time.time()
    ckpt_path = str(cfg.ckpt_path)
    ckpt = read_checkpoint(ckpt_path)
    hparams = ckpt["hyper_parameters"]
    data_cfg = to_dict(cfg.get("data")) or hparams.get("data_config")
    if data_cfg is None:
        raise ValueError(f"checkpoint {ckpt_path} records no data config; pass data=<name>")
    split = str(cfg.split)  # one of EVAL_SPLITS: the schema's choice (conf/eval.yaml)
    tta = check_tta(cfg.get("test_time_augmentation"))
    mapping = _class_mapping(hparams, data_cfg)
    model_size = (hparams.get("net") or {}).get("image_size")
    if model_size and data_cfg.get("image_size") != model_size:
        log.info(
            "data.image_size=%s -> %s: faces are prepared at the size the model was trained on",
            data_cfg.get("image_size"),
            model_size,
        )
        data_cfg = {**data_cfg, "image_size": int(model_size)}
    with run_lifecycle(cfg.paths.output_dir, start) as run:
        pl.seed_everything(int(cfg.seed), workers=True)
        datamodule = build_datamodule(data_cfg)
        model = FERModule.load_from_checkpoint(
            ckpt_path, map_location="cpu", weights_only=True, test_time_augmentation=tta
        )
        trainer = build_trainer(cfg.trainer, callbacks=[], loggers=build_loggers(cfg.get("logger")))
        loader, ids = _eval_loader(datamodule, split)
        metrics = {"val/acc_best": _best_val_score(ckpt)}
        if mapping is None or mapping.identity:
            out = trainer.test(model, dataloaders=loader, verbose=False)
            metrics.update(_results(model, out[0] if out else {}, split))
            metrics["predictions"] = save_test_predictions(trainer, model, run.run_dir, ids, split)
        else:
            metrics.update(_cross_results(trainer, model, loader, mapping, split, ids, run.run_dir))
        metrics.update(
            {
                "best_ckpt": ckpt_path,
                "data": data_cfg.get("name"),
                "trained_on": (hparams.get("data_config") or {}).get("name"),
                "test_time_augmentation": tta,
                "seed": int(cfg.seed),
                "overrides": _overrides(),
                "run_dir": str(run.run_dir),
                "seconds": run.seconds(),
            }
        )
        return run.finish(metrics, f"{data_cfg.get('name')} {split}: {Path(ckpt_path).name}")
