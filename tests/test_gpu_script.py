"""experiments/gpu.sh (`make gpu`): its GPU command lines (DRY_RUN=1), and every step end to end on a tiny
CPU budget (TINY=1), without nvidia-smi or CUDA."""

from __future__ import annotations

import os
import shlex
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "gpu.sh"
# the script's own settings: the tests set the ones they mean, none comes from the calling shell
SCRIPT_VARS = ("OUT", "FER_ROOT", "EPOCHS", "BENCH_ARGS", "TRAIN_ARGS", "ACCEL", "TINY", "DRY_RUN", "TARBALL")


def run_script(tmp_path: Path, timeout: float, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARS}
    base.update(FER_LOG_DIR=str(tmp_path / "logs"), WANDB_MODE="offline", WANDB_SILENT="true")
    return subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=tmp_path,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_dry_run_prints_the_gpu_commands_and_writes_nothing(tmp_path):
    out = tmp_path / "gpu"
    done = run_script(tmp_path, 30, DRY_RUN="1", OUT=str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # fer-train from .venv (or PATH), or `python -m fer_attention.cli.train` where neither has it
    (train,) = [shlex.split(line) for line in lines if "ablation=full,vgg16" in line]
    assert train[0].endswith(("fer-train", "python", "python3")) and "-m" in train
    for word in (
        "data=fer2013",
        "data.root=../shared/data/fer2013",
        "ablation=full,vgg16",
        "model.net.backbone.width=1.0",
        "trainer=gpu",
        "trainer.accelerator=gpu",
        "trainer.max_epochs=5",
        "data.pin_memory=true",
        "data.num_workers=8",
        "seed=0",
        "~callbacks.progress_bar",
        f"hydra.sweep.dir={out}/fer2013_w1.0",
    ):
        assert word in train, word
    assert not any("limit_" in word or word == "trainer=default" for word in train)
    (report,) = [shlex.split(line) for line in lines if "--publish" in line]
    assert report[-4:] == [f"{out}/fer2013_w1.0", "--out", f"{out}/fer2013_w1.0_report", "--publish"]
    (bench,) = [shlex.split(line) for line in lines if "experiments.bench" in line]
    assert bench[1:] == ["-m", "experiments.bench", "--out", f"{out}/bench"]  # no --quick
    assert not out.exists()
    # the environment reaches the command lines
    done = run_script(
        tmp_path, 30, DRY_RUN="1", OUT=str(out), EPOCHS="3", FER_ROOT="/data/fer", BENCH_ARGS="--width 1.0"
    )
    assert "trainer.max_epochs=3" in done.stdout and "data.root=/data/fer" in done.stdout
    assert f"--out {out}/bench --width 1.0" in done.stdout


@pytest.mark.slow  # about a minute of bench and training on 2 cores: `make test-all` runs it
def test_tiny_run_writes_every_output_on_a_cpu_without_nvidia_smi(tmp_path):
    out = tmp_path / "gpu"
    start = time.perf_counter()
    tarball = tmp_path / "gpu.tar.gz"
    # 300 s: a safety net; the time asserted is at the end (about 1 min on 2 busy cores)
    done = run_script(tmp_path, 300, TINY="1", OUT=str(out), TARBALL=str(tarball))
    seconds = time.perf_counter() - start
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert (out / "bench" / "bench.md").is_file() and (out / "bench" / "bench.json").is_file()
    assert "Quick mode" in (out / "bench" / "bench.md").read_text()
    table = (out / "synthetic_w0.0625_report" / "table.md").read_text()
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["full", "vgg16"], table  # rows[0]: the header
    assert (out / "synthetic_w0.0625_report" / "README.md").is_file()  # --publish
    assert "not found" in (out / "nvidia-smi.txt").read_text()
    assert (out / "gpu_name.txt").read_text().splitlines()[0] == "no GPU"
    run = (out / "run.txt").read_text()
    assert "git commit: " in run and "TINY=1" in run and "device: no GPU" in run
    for name in ("gpu_name", "train", "report", "bench"):
        assert f"step {name}: exit 0, " in run, run
        assert (out / f"{name}.log").is_file()
    assert "step nvidia-smi: skipped" in run and "total: " in run
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "gpu/run.txt" in names and "gpu/synthetic_w0.0625_report/table.md" in names
    assert list(out.rglob("*.ckpt"))  # checkpoints are written, but not packed
    assert not any(name.endswith(".ckpt") for name in names)
    assert seconds < 150, f"TINY=1 took {seconds:.0f} s"
