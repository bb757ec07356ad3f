"""One run lifecycle for train, eval and pretrain: status.json running -> finished / failed on the first
process only, and the W&B run ended whatever happens; no task writes its own status or ends W&B."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from fer_attention.training import lifecycle
from fer_attention.training.lifecycle import run_lifecycle

from .conftest import TINY
from .test_pretext import PRETRAIN_TINY

PACKAGE = Path(__file__).resolve().parents[1] / "fer_attention"


def status(run_dir) -> dict:
    return json.loads((Path(run_dir) / "status.json").read_text())


@pytest.fixture
def wandb_ends(monkeypatch):
    calls = []
    monkeypatch.setattr(lifecycle, "finish_wandb", lambda: calls.append(1))
    return calls


def test_a_run_is_running_then_finished_with_its_metrics(tmp_path, wandb_ends):
    with run_lifecycle(tmp_path / "run") as run:
        assert status(run.run_dir)["state"] == "running"
        run.finish({"test/acc": 0.5, "seconds": 1.5})
    assert status(tmp_path / "run")["state"] == "finished" and status(tmp_path / "run")["seconds"] == 1.5
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == {"test/acc": 0.5, "seconds": 1.5}
    assert wandb_ends == [1]


def test_an_error_marks_the_run_failed_and_still_ends_wandb(tmp_path, wandb_ends):
    with pytest.raises(KeyError), run_lifecycle(tmp_path / "run"):
        raise KeyError("boom")
    record = status(tmp_path / "run")
    assert record["state"] == "failed" and record["error"] == "KeyError: 'boom'" and record["seconds"] >= 0
    assert not (tmp_path / "run" / "metrics.json").exists() and wandb_ends == [1]


def test_other_processes_write_no_status_or_metrics(tmp_path, wandb_ends, monkeypatch):
    monkeypatch.setattr(lifecycle.rank_zero_only, "rank", 1)
    with run_lifecycle(tmp_path / "run") as run:
        run.finish({"test/acc": 0.5})
    with pytest.raises(ValueError), run_lifecycle(tmp_path / "run2"):
        raise ValueError("x")
    assert not list(tmp_path.rglob("*.json")) and wandb_ends == [1, 1]


def test_train_eval_and_pretrain_fail_into_status_json(make_cfg, wandb_ends, monkeypatch):
    from fer_attention.training import task
    from fer_attention.training.pretext import task as pretext

    trained = task.train(make_cfg([*TINY, "trainer.limit_train_batches=1"], subdir="ok"))
    assert status(trained["run_dir"])["state"] == "finished" and wandb_ends == [1]

    def boom(*args, **kwargs):
        raise RuntimeError("the data went away")

    monkeypatch.setattr(task, "build_datamodule", boom)
    monkeypatch.setattr(pretext, "_load_faces", boom)
    runs = {
        "train": (task.train, make_cfg(TINY, subdir="train")),
        "eval": (task.evaluate, make_cfg([f"ckpt_path={trained['best_ckpt']}"], "eval", "eval")),
        "pretrain": (pretext.pretrain, make_cfg(PRETRAIN_TINY, config_name="pretrain", subdir="pretrain")),
    }
    for name, (run, cfg) in runs.items():
        with pytest.raises(RuntimeError, match="the data went away"):
            run(cfg)
        record = status(cfg.paths.output_dir)
        assert (record["state"], record["error"]) == ("failed", "RuntimeError: the data went away"), name
    assert wandb_ends == [1, 1, 1, 1]


def test_status_and_wandb_end_are_written_in_one_place():
    """Only the lifecycle module writes status.json states or ends a training run's W&B run (the W&B
    report ends its own report run)."""
    owners = {"training/lifecycle.py", "tracking.py", "runs.py", "reporting/dashboard.py"}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in owners:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name == "finish_wandb":
                    pytest.fail(f"{rel}:{node.lineno} ends the W&B run itself")
                if name == "write_status" and node.args[1:2] and isinstance(node.args[1], ast.Constant):
                    assert node.args[1].value not in ("running", "finished", "failed"), f"{rel}:{node.lineno}"
