"""With logger=wandb and no credentials, a run logs offline into its run dir, ready for `wandb sync`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fer_attention.tracking import finish_wandb
from fer_attention.training.builders import wandb_run_settings
from fer_attention.training.task import train

from .conftest import TINY


def test_offline_wandb_run_directory_holds_the_metrics(make_cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    cfg = make_cfg([*TINY, "logger=wandb", "trainer.limit_train_batches=2", "lbp=uniform", "seed=3"])
    metrics = train(cfg)
    runs = list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "expected one offline W&B run directory"
    data = b"".join(p.read_bytes() for p in runs[0].glob("*.wandb"))
    for key in (b"val/acc", b"train/loss", b"test/acc", b"lbp=uniform", b"seed=3"):
        assert key in data, key
    # the value logged is the run's own test accuracy (W&B stores history values as JSON text)
    logged = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["test/acc"]
    assert json.dumps(logged).encode() in data or json.dumps(metrics["test/acc"]).encode() in data


def test_wandb_tags_carry_the_swept_values(make_cfg):
    cfg = make_cfg(["lbp=uniform", "dilation=d125", "ablation=no_attention", "seed=2", "data.fold=1"])
    settings = wandb_run_settings(cfg)
    for tag in (
        "data=synthetic",
        "lbp=uniform",
        "dilation=1-2-5",
        "ablation=no_attention",
        "fold=1",
        "seed=2",
    ):
        assert tag in settings["tags"], tag
    assert settings["job_type"] == "train"


def test_ending_a_run_waits_for_the_service_to_write_it(monkeypatch):
    """``wandb.finish`` may return before the service has written an offline run's records, and joblib
    workers skip its flush at exit: ending a run finishes it, then shuts the service down."""
    calls = []

    class FakeWandb:
        run = object()

        @staticmethod
        def finish():
            calls.append("finish")

        @staticmethod
        def teardown():
            calls.append("teardown")

    monkeypatch.setitem(sys.modules, "wandb", FakeWandb)
    finish_wandb()
    assert calls == ["finish", "teardown"]
    FakeWandb.run = None
    finish_wandb()
    assert calls == ["finish", "teardown"], "no run: nothing to end"
