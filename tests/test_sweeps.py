"""Sweep configs compose; a tiny multirun survives a kill and aggregates into the right table; the aggregator
lists failed and killed jobs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fer_attention.config import config_dir
from fer_attention.reporting.aggregate import find_jobs, report

from .conftest import TINY

SWEEPS = sorted(p.stem for p in (Path(config_dir()) / "sweep").glob("*.yaml"))
FER_TRAIN = str(Path(sys.executable).parent / "fer-train")
REPO = Path(__file__).resolve().parents[1]


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
    fake_job(root, "4_lbp=uniform,seed=2", ["lbp=uniform", "seed=2"], None, state="running")
    gone = subprocess.Popen(["true"])
    gone.wait()
    status = {"state": "running", "pid": gone.pid, "host": socket.gethostname()}
    (root / "4_lbp=uniform,seed=2" / "status.json").write_text(json.dumps(status))
    out = report(root, tmp_path / "report")
    rows = {r["lbp"]: r for r in out["rows"]}
    assert rows["circle"]["test/acc mean"] == pytest.approx(85.0)
    assert rows["circle"]["test/acc std"] == pytest.approx(7.071, abs=1e-3)
    assert rows["circle"]["runs"] == 2 and rows["uniform"]["runs"] == 1 and rows["uniform"]["jobs"] == 3
    assert "| circle | 85.00 ± 7.07 |" in out["table"]
    assert "3_lbp=uniform,seed=1`: failed (ValueError: boom)" in out["table"]
    assert f"4_lbp=uniform,seed=2`: killed (process {gone.pid} ended without finishing)" in out["table"]
    for name in (
        "table.md",
        "table.csv",
        "plot.png",
        "confusion_lbp-circle.png",
        "confusion_lbp-uniform.png",
    ):
        assert (tmp_path / "report" / name).is_file(), name


def test_tiny_multirun_killed_then_resumed_end_to_end(tmp_path):
    """A sweep killed with SIGKILL in the middle of its first job, rerun into the same sweep dir with
    resume=true: the killed job continues from its last checkpoint, the job never started runs."""
    sweep_dir = tmp_path / "sweep"
    cmd = [
        FER_TRAIN,
        "-m",
        "ablation=full,vgg16",
        *(o for o in TINY if not o.startswith("trainer.max_epochs")),
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=2",
        "+callbacks.kill_switch._target_=tests.faults.KillAtStep",
        f"paths.log_dir={tmp_path}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "FER_TEST_KILL_AT_STEP": "3"}
    killed = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert killed.returncode == -signal.SIGKILL
    (first,) = [p for p in sweep_dir.iterdir() if p.is_dir()]
    assert [j.state for j in find_jobs(sweep_dir)] == ["killed"]

    env.pop("FER_TEST_KILL_AT_STEP")
    subprocess.run([*cmd, "resume=true"], check=True, capture_output=True, text=True, timeout=600, env=env)
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert [p.name[:2] for p in jobs] == ["0_", "1_"] and jobs[0] == first
    resumed = json.loads((first / "metrics.json").read_text())
    assert resumed["resumed_from"].endswith("last.ckpt") and resumed["epochs"] == 2
    assert json.loads((jobs[1] / "metrics.json").read_text())["resumed_from"] is None
    out = report(sweep_dir, tmp_path / "report")
    for job, ablation in zip(jobs, ("full", "vgg16"), strict=True):
        metrics = json.loads((job / "metrics.json").read_text())
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


def test_long_override_lists_give_short_distinct_job_dirs():
    from fer_attention.config import MAX_DIRNAME, short_dirname

    assert short_dirname("lbp-uniform+seed-0") == "lbp-uniform+seed-0"
    long_a = "+".join(f"model.net.key_{i}-value_{i}" for i in range(20))
    long_b = long_a.replace("value_19", "value_20")
    a, b = short_dirname(long_a), short_dirname(long_b)
    assert len(a) == len(b) == MAX_DIRNAME and a != b and a.startswith("model.net.key_0-value_0")
    assert "--" in a and "~" not in a


def test_job_dir_names_are_one_safe_level_without_paths_or_bookkeeping():
    from fer_attention.config import job_dirname

    exclude = ["task_name", "data.root", "paths.", "hydra."]
    name = job_dirname(
        [
            "data.root=/data/CK+48",
            "paths.log_dir=/scratch/x",
            "hydra.sweep.dir=/a/b",
            "task_name=t",
            "lbp=circle_r2",
            "dilation.rates=[1,2,3]",
            "data.fold=3",
            "~callbacks.progress_bar",
        ],
        exclude,
    )
    assert name == "callbacks.progress_bar+data.fold-3+dilation.rates-1_2_3+lbp-circle_r2"
    assert not set("/=,~ ") & set(name)
    assert job_dirname([], exclude) == "default"


def test_a_sweep_jobs_best_ckpt_pastes_unquoted_into_fer_eval_and_fer_predict(tmp_path):
    """Job dirs are one level named without '/', '=' or ','; the best_ckpt that metrics.json names works as
    ckpt_path= / ckpt_path= in the other commands as it is (no Hydra quoting)."""
    import numpy as np
    from PIL import Image

    sweep_dir = tmp_path / "sweep"
    bin_dir = Path(FER_TRAIN).parent
    cmd = [
        FER_TRAIN,
        "-m",
        "ablation=vgg16",
        *(o for o in TINY if not o.startswith("trainer.max_epochs")),
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        f"data.root={tmp_path}",
        f"paths.log_dir={tmp_path}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    (job,) = [p for p in sweep_dir.iterdir() if p.is_dir()]
    assert job.name.startswith("0_ablation-vgg16+") and not set("/=,~") & set(job.name)
    assert "data.root" not in job.name and "paths" not in job.name
    best = json.loads((job / "metrics.json").read_text())["best_ckpt"]
    assert Path(best).parent.parent == job

    ev = subprocess.run(
        [str(bin_dir / "fer-eval"), f"ckpt_path={best}", f"paths.log_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ev.returncode == 0, ev.stderr[-2000:]
    face = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)).save(face)
    out = tmp_path / "pred.jsonl"
    pr = subprocess.run(
        [
            str(bin_dir / "fer-predict"),
            f"ckpt_path={best}",
            f"input={face}",
            f"output={out}",
            "progress=false",
            f"paths.log_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pr.returncode == 0, pr.stderr[-2000:]
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["label"] in ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _sweep_cmd(tmp_path: Path, sweep_dir: Path) -> list[str]:
    return [
        FER_TRAIN,
        "-m",
        "ablation=full,vgg16",
        "seed=0,1",
        *(o for o in TINY if not o.startswith("trainer.max_epochs")),
        "model.net.backbone.width=0.0625",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=3",
        "data.source.num_subjects=9",
        f"paths.log_dir={tmp_path}",
        f"hydra.sweep.dir={sweep_dir}",
    ]


def _job_results(sweep_dir: Path) -> dict[str, dict]:
    keys = ("test/acc", "test/loss", "test/confusion_matrix", "val/acc_best", "epochs")
    out = {}
    for metrics in sorted(sweep_dir.glob("*/metrics.json")):
        m = json.loads(metrics.read_text())
        out[metrics.parent.name] = {k: m[k] for k in keys}
    return out


def test_a_multirun_killed_at_random_moments_resumes_to_the_uninterrupted_results(tmp_path):
    """Four short jobs. One sweep runs through; the same sweep is SIGKILLed as a whole process group at
    seeded random moments (after 1 and 3 finished jobs plus 0-2.5 s), and continued with resume=true
    after each kill: every job ends
    finished exactly once, with the uninterrupted sweep's metrics, no file half-written, and a job that
    had finished before a kill is not trained again."""
    import random
    import time

    import torch

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    clean = tmp_path / "clean"
    subprocess.run(_sweep_cmd(tmp_path / "a", clean), check=True, capture_output=True, timeout=900, env=env)
    expected = _job_results(clean)
    assert len(expected) == 4

    sweep_dir = tmp_path / "killed"
    cmd = _sweep_cmd(tmp_path / "b", sweep_dir)
    rng = random.Random(7)
    finished_before: dict[str, float] = {}
    kills = 0
    # kill after 1 and 3 finished jobs plus a seeded random delay: mid-job at any machine speed
    for attempt, after in enumerate((1, 3, None)):
        proc = subprocess.Popen(
            cmd + (["resume=true"] if attempt else []),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if after is not None:
            while proc.poll() is None and len(list(sweep_dir.glob("*/metrics.json"))) < after:
                time.sleep(0.2)
            time.sleep(rng.uniform(0.0, 2.5))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait()
        else:
            assert proc.wait(timeout=900) == 0
        # a job finished before this attempt keeps its metrics.json untouched (not retrained)
        for name, mtime in finished_before.items():
            assert (sweep_dir / name / "metrics.json").stat().st_mtime == mtime, f"{name} was trained again"
        finished_before = {p.parent.name: p.stat().st_mtime for p in sweep_dir.glob("*/metrics.json")}
    assert kills >= 2, "the sweep finished before it could be killed: lengthen it"
    assert _job_results(sweep_dir).keys() == expected.keys()
    for name, metrics in _job_results(sweep_dir).items():
        assert metrics["test/confusion_matrix"] == expected[name]["test/confusion_matrix"], name
        for key in ("test/acc", "test/loss", "val/acc_best"):
            assert metrics[key] == pytest.approx(expected[name][key], abs=1e-6), (name, key)
    assert [j.state for j in find_jobs(sweep_dir)] == ["finished"] * 4
    for path in sweep_dir.rglob("*"):
        if path.name.endswith(".json"):
            json.loads(path.read_text())
        elif path.suffix == ".ckpt":
            assert "state_dict" in torch.load(path, map_location="cpu", weights_only=True), path


def test_sweep_jobs_table_gives_each_arms_speedup_and_every_jobs_accuracy(tmp_path):
    from experiments.sweep_jobs import job_metrics, render

    def fake_sweep(name, accs):
        for i, (key, acc) in enumerate(accs.items()):
            job = tmp_path / name / str(i)
            (job / ".hydra").mkdir(parents=True)
            ablation, fold = key.split()
            (job / ".hydra" / "overrides.yaml").write_text(f"- sweep=x\n- {ablation}\n- seed=0\n- {fold}\n")
            (job / "metrics.json").write_text(json.dumps({"test/acc": acc}))
        return job_metrics(tmp_path / name)

    one = fake_sweep("one", {"ablation=full data.fold=0": 0.9, "ablation=vgg16 data.fold=0": 0.8})
    two = fake_sweep("two", {"ablation=full data.fold=0": 0.91})
    assert set(one) == {"ablation=full data.fold=0", "ablation=vgg16 data.fold=0"}
    record = {
        "machine": {"cpu": "x"},
        "cores": 2,
        "started": "a",
        "ended": "b",
        "command": "python -m experiments.sweep_jobs",
        "arms": [{"jobs": 1, "wall_s": 300.0, "results": one}, {"jobs": 2, "wall_s": 200.0, "results": two}],
    }
    md = render(record)
    assert "| 1 x 2 | 300 s | 1.00x | 2 |" in md and "| 2 x 1 | 200 s | 1.50x | 1 |" in md
    assert "| ablation=full data.fold=0 | 90.00 | 91.00 |" in md
    assert "| ablation=vgg16 data.fold=0 | 80.00 | - |" in md
    assert "Machine: x, no GPU; 2 cores; a to b (UTC)." in md
