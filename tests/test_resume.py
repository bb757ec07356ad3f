"""Crash safety: a run killed with SIGKILL mid-epoch and started again with the same command plus
``resume=true`` ends with exactly the test metrics of a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fer_attention.runs import read_status

from .conftest import TINY

REPO = Path(__file__).resolve().parents[1]
FER_TRAIN = [sys.executable, "-m", "fer_attention.cli.train"]
EXACT_KEYS = ("val/acc_best", "test/acc", "test/f1_macro", "test/loss", "test/confusion_matrix")
# 4 steps per epoch, 3 epochs; the kill lands at step 6, in the middle of the second epoch
RUN = [
    *TINY,
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=4",
    "data.batch_size=16",
    "trainer.deterministic=true",
    "seed=3",
    "callbacks.attention_maps=null",
    "+callbacks.kill_switch._target_=tests.faults.KillAtStep",
]


def fer_train(log_dir: Path, *extra: str, kill_at: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    env.pop("FER_TEST_KILL_AT_STEP", None)
    if kill_at is not None:
        env["FER_TEST_KILL_AT_STEP"] = str(kill_at)
    cmd = [*FER_TRAIN, *RUN, f"paths.log_dir={log_dir}", *extra]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def run_dirs(log_dir: Path) -> list[Path]:
    return sorted(p for p in (log_dir / "train" / "runs").iterdir() if p.is_dir())


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    reference = fer_train(tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr[-2000:]
    (ref_dir,) = run_dirs(tmp_path / "ref")
    expected = json.loads((ref_dir / "metrics.json").read_text())

    logs = tmp_path / "crash"
    killed = fer_train(logs, kill_at=6)
    assert killed.returncode == -signal.SIGKILL
    (killed_dir,) = run_dirs(logs)
    assert not (killed_dir / "metrics.json").exists()
    assert read_status(killed_dir)["state"] == "killed"
    last = torch.load(killed_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (0, 4)  # the end of the first epoch survived
    assert not list((killed_dir / "checkpoints").glob(".*.tmp"))

    resumed = fer_train(logs, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = json.loads((killed_dir / "metrics.json").read_text())
    assert got["resumed_from"].endswith("last.ckpt") and got["epochs"] == 3
    assert {k: got[k] for k in EXACT_KEYS} == {k: expected[k] for k in EXACT_KEYS}
    # not only the selected checkpoint: the final weights are bit-identical too
    final = [
        torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for d in (ref_dir, killed_dir)
    ]
    assert final[0].keys() == final[1].keys()
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])
    assert read_status(killed_dir)["state"] == "finished"
    relaunch = next(d for d in run_dirs(logs) if d != killed_dir)
    assert read_status(relaunch)["continued_in"] == str(killed_dir)
    assert read_status(relaunch)["state"] == "resumed"

    # resuming a finished run trains nothing and reports its metrics
    again = fer_train(logs, "resume=true")
    assert again.returncode == 0 and "already finished" in again.stderr + again.stdout
    assert json.loads((killed_dir / "metrics.json").read_text()) == got


def test_resume_with_nothing_to_resume_starts_from_scratch(make_cfg, caplog):
    from fer_attention.training.task import train

    cfg = make_cfg([*TINY, "trainer.limit_train_batches=2", "resume=true", "callbacks.attention_maps=null"])
    with caplog.at_level("INFO"):
        metrics = train(cfg)
    assert metrics["resumed_from"] is None and metrics["epochs"] == 1
    assert "starting from scratch" in caplog.text


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    from fer_attention.training import checkpoint_io as ckpt_mod

    io = ckpt_mod.AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(3))

    def dies_half_way(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # the process is stopped while writing

    monkeypatch.setattr(ckpt_mod.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
