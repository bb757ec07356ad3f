"""The pretrained regime: each row of a table starts from its own FER2013 network; a missing one stops the
fine-tuning with one line naming the make target, so no row is fine-tuned from scratch by accident."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from experiments import pretrained
from fer_attention.training.task import train

from .conftest import TINY

REPO = Path(__file__).resolve().parents[1]


def test_each_table_names_its_group_and_rows():
    assert pretrained.table_rows("ablation_modules") == (
        "ablation",
        ["full", "no_lbp", "no_attention", "no_reconstruction", "vgg16"],
    )
    assert (
        pretrained.table_rows("ablation_lbp")[0] == "lbp"
        and "circle" in pretrained.table_rows("ablation_lbp")[1]
    )
    assert pretrained.table_rows("ablation_dilation") == (
        "dilation",
        ["d111", "d123", "d125", "d135", "d222"],
    )
    with pytest.raises(SystemExit, match=r"^error: --table nope is not a table; tables: ablation_dilation"):
        pretrained.table_rows("nope")


def test_a_missing_checkpoint_stops_finetuning_naming_the_target(tmp_path, capsys):
    (tmp_path / "ablation-full.ckpt").write_bytes(b"x")
    with pytest.raises(SystemExit) as err:
        pretrained.main(
            ["finetune", "--table", "ablation_modules", "--rows", "full,vgg16", "--out", str(tmp_path)]
        )
    assert str(err.value) == (
        f"error: no FER2013 checkpoint for ablation=vgg16 in {tmp_path}: build it with "
        "`make ablation-modules-pretrained` (or `python -m experiments.pretrained pretrain --table "
        "ablation_modules --rows vgg16`); nothing was fine-tuned"
    )
    with pytest.raises(SystemExit, match=r"--rows wide not in ablation_modules; its rows: full,no_lbp"):
        pretrained.main(["finetune", "--rows", "wide", "--out", str(tmp_path)])
    # pretraining builds only what is missing, each row as itself on FER2013
    assert pretrained.main(["pretrain", "--rows", "full,vgg16", "--out", str(tmp_path), "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "experiment=pretrain_fer2013 ablation=vgg16" in lines[0]
    assert f"hydra.run.dir={tmp_path}/runs/ablation-vgg16" in lines[0]


def test_every_row_is_finetuned_from_its_own_checkpoint(make_cfg, tmp_path):
    # two tiny "FER2013" networks (synthetic faces here), one per row
    out = tmp_path / "pretrained"
    out.mkdir()
    for row in ("full", "vgg16"):
        metrics = train(make_cfg([*TINY, f"ablation={row}", "trainer.limit_train_batches=1"], subdir=row))
        shutil.copy2(metrics["best_ckpt"], out / f"ablation-{row}.ckpt")
    sweep = tmp_path / "sweep"
    overrides = [o for o in TINY if "progress_bar" not in o] + ["trainer.limit_train_batches=1"]
    env = {**os.environ, "FER_LOG_DIR": str(tmp_path / "logs"), "PYTHONPATH": str(REPO)}
    argv = ["finetune", "--rows", "full,vgg16", "--out", str(out), "--data", "synthetic", "--data-root", ""]
    argv += ["--seeds", "0", "--folds", "0", "--sweep-dir", str(sweep), "--", *overrides]
    subprocess.run(
        [sys.executable, "-m", "experiments.pretrained", *argv],
        check=True,
        cwd=REPO,
        env=env,
        capture_output=True,
    )
    used = {}
    for metrics_file in sweep.glob("*/metrics.json"):
        m = json.loads(metrics_file.read_text())
        row = next(o.split("=")[1] for o in m["overrides"] if o.startswith("ablation="))
        used[row] = (Path(m["init_from"]["path"]).name, m["init_from"]["not_in_file"])
    assert used == {"full": ("ablation-full.ckpt", []), "vgg16": ("ablation-vgg16.ckpt", [])}


def _kept_run(out: Path, name: str, config: dict | None = None, metrics: dict | None = None) -> None:
    hydra_dir = out / "runs" / name / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump(config or {}))
    (hydra_dir / "overrides.yaml").write_text(
        yaml.safe_dump(["experiment=pretrain_fer2013", "hydra.run.dir=x"])
    )
    if metrics is not None:
        (out / "runs" / name / "metrics.json").write_text(json.dumps(metrics))
    (out / "runs" / name / "checkpoints").mkdir()
    (out / "runs" / name / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    (out / f"{name}.ckpt").write_bytes(name.encode())


def test_the_papers_choice_is_pretrained_once_and_shared_by_every_table(tmp_path, capsys):
    # the kept ablation=full run composed exactly what `lbp=circle` and `dilation=d123` compose
    ns = SimpleNamespace(
        table="ablation_modules",
        rows="full",
        out=str(tmp_path),
        fer_root="fer",
        pretrain_seed="0",
        overrides=[],
    )
    _kept_run(tmp_path, "ablation-full", pretrained.job_config(pretrained.pretrain_commands(ns)[0][0]))
    argv = ["pretrain", "--table", "ablation_lbp", "--rows", "circle,uniform", "--fer-root", "fer"]
    assert pretrained.main([*argv, "--out", str(tmp_path), "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == (
        f"lbp-circle is the same network as ablation-full (identical config): {tmp_path}/lbp-circle.ckpt = "
        f"{tmp_path}/ablation-full.ckpt"
    )
    assert "experiment=pretrain_fer2013 lbp=uniform" in lines[1] and len(lines) == 2
    assert not (tmp_path / "lbp-circle.ckpt").exists()  # a dry run copies nothing
    argv = ["pretrain", "--table", "ablation_dilation", "--rows", "d123", "--fer-root", "fer"]
    assert pretrained.main([*argv, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "dilation-d123.ckpt").read_bytes() == b"ablation-full"


def test_publish_copies_the_fer2013_runs_without_checkpoints_and_tabulates_them(tmp_path, capsys):
    out, to = tmp_path / "pretrained", tmp_path / "results"
    metrics = {"val/acc_best": 0.6412, "test/acc": 0.6555, "epochs": 15, "seconds": 600.0}
    _kept_run(out, "ablation-vgg16", {"seed": 0}, metrics)
    _kept_run(out, "lbp-uniform", {"seed": 0}, {**metrics, "test/acc": 0.6601, "seconds": 1380.0})
    assert pretrained.main(["publish", "--out", str(out), "--to", str(to)]) == 0
    readme = (to / "README.md").read_text()
    assert (
        "| ablation-vgg16 | `fer-train experiment=pretrain_fer2013` | 64.12 | 65.55 | 15 | 10.0 |" in readme
    )
    assert "| lbp-uniform | `fer-train experiment=pretrain_fer2013` | 64.12 | 66.01 | 15 | 23.0 |" in readme
    assert sorted(p.name for p in (to / "jobs" / "lbp-uniform").rglob("*") if p.is_file()) == [
        "config.yaml",
        "metrics.json",
        "overrides.yaml",
    ]
    (to / "README.md").write_text(readme + "\n## Notes\n\nkept by hand\n")
    pretrained.main(["publish", "--out", str(out), "--to", str(to)])
    assert (to / "README.md").read_text().endswith("## Notes\n\nkept by hand\n")
    with pytest.raises(SystemExit, match=r"^error: no finished FER2013 run under .*nowhere/runs"):
        pretrained.main(["publish", "--out", str(tmp_path / "nowhere"), "--to", str(to)])
