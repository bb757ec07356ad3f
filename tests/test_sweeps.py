"""Sweep configs compose; a tiny multirun aggregates into the right table; the aggregator lists failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fer_attention.config import config_dir
from fer_attention.reporting.aggregate import report

from .conftest import TINY

SWEEPS = sorted(p.stem for p in (Path(config_dir()) / "sweep").glob("*.yaml"))
FER_TRAIN = str(Path(sys.executable).parent / "fer-train")


@pytest.mark.parametrize("sweep", SWEEPS)
def test_sweep_configs_compose_as_multiruns(make_cfg, sweep):
    cfg = make_cfg([f"sweep={sweep}"])
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.task_name == sweep


def fake_job(root: Path, name: str, overrides: list[str], acc: float | None, state: str = "finished") -> None:
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"task_name": "demo"}))
    (job / "status.json").write_text(
        json.dumps({"state": state, "error": "ValueError: boom" if state == "failed" else None})
    )
    if acc is not None:
        metrics = {
            "test/acc": acc,
            "test/f1_macro": acc - 0.1,
            "val/acc_best": acc + 0.01,
            "test/confusion_matrix": [[3, 1], [0, 4]],
            "class_names": ["a", "b"],
        }
        (job / "metrics.json").write_text(json.dumps(metrics))


def test_aggregator_groups_by_swept_values_and_names_failures(tmp_path):
    root = tmp_path / "multirun"
    fake_job(root, "0_lbp=circle,seed=0", ["lbp=circle", "seed=0"], 0.80)
    fake_job(root, "1_lbp=circle,seed=1", ["lbp=circle", "seed=1"], 0.90)
    fake_job(root, "2_lbp=uniform,seed=0", ["lbp=uniform", "seed=0"], 0.70)
    fake_job(root, "3_lbp=uniform,seed=1", ["lbp=uniform", "seed=1"], None, state="failed")
    out = report(root, tmp_path / "report")
    rows = {r["lbp"]: r for r in out["rows"]}
    assert rows["circle"]["test/acc mean"] == pytest.approx(85.0)
    assert rows["circle"]["test/acc std"] == pytest.approx(7.071, abs=1e-3)
    assert rows["circle"]["runs"] == 2 and rows["uniform"]["runs"] == 1 and rows["uniform"]["jobs"] == 2
    assert "| circle | 85.00 ± 7.07 |" in out["table"]
    assert "3_lbp=uniform,seed=1`: failed (ValueError: boom)" in out["table"]
    for name in (
        "table.md",
        "table.csv",
        "plot.png",
        "confusion_lbp=circle.png",
        "confusion_lbp=uniform.png",
    ):
        assert (tmp_path / "report" / name).is_file(), name


def test_tiny_multirun_end_to_end(tmp_path):
    sweep_dir = tmp_path / "sweep"
    cmd = [
        FER_TRAIN,
        "-m",
        "ablation=full,vgg16",
        *TINY,
        "trainer.limit_train_batches=2",
        f"paths.log_dir={tmp_path}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert [p.name.split(",")[0] for p in jobs] == ["0_ablation=full", "1_ablation=vgg16"]
    out = report(sweep_dir, tmp_path / "report")
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        ablation = job.name.split(",")[0].split("=")[1]
        row = next(r for r in out["rows"] if r["ablation"] == ablation)
        assert row["test/acc mean"] == pytest.approx(100 * metrics["test/acc"], abs=1e-3)
        assert row["runs"] == 1
    assert not out["failed"]


@pytest.mark.parametrize(
    "overrides,target",
    [
        (["hparams_search=optuna"], "OptunaSweeper"),
        (["hydra/launcher=joblib"], "JoblibLauncher"),
        (["hydra/launcher=submitit_slurm"], "SlurmLauncher"),
        (["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], "SlurmLauncher"),
    ],
)
def test_search_and_launcher_configs_compose(make_cfg, overrides, target):
    cfg = make_cfg(overrides)
    node = cfg.hydra.sweeper if "Sweeper" in target else cfg.hydra.launcher
    assert node._target_.endswith(target)
    if "Sweeper" in target:
        assert set(node.params) == {
            "model.optimizer.lr",
            "model.optimizer.weight_decay",
            "model.net.classifier.dropout",
        }
        assert node.direction == "maximize" and cfg.optimized_metric == "val/acc_best"
    if "hydra/launcher=slurm" in overrides:
        assert (node.partition, node.gpus_per_node, node.tasks_per_node) == ("gpu", 1, 1)
        assert node.submitit_folder.endswith(".submitit/%j")
