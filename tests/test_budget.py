"""budget=cpu composes for lab and in-the-wild data, bf16 falls back to fp32 on CPUs without it, and the
make targets run every table over all folds (k-fold data) or over seeds (fixed splits)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from fer_attention import runtime

REPO = Path(__file__).resolve().parents[1]


def test_budget_cpu_composes_a_cpu_setting_per_dataset(make_cfg, tmp_path):
    lab = make_cfg(["budget=cpu", "data=ckplus", f"data.root={tmp_path}"])
    assert lab.trainer.precision == "bf16-mixed"
    assert lab.model.net.backbone.width == 0.25
    wild = make_cfg(["budget=cpu", "data=fer2013", f"data.root={tmp_path}"], subdir="w")
    # lab sets of about a thousand faces 30 epochs, FER2013 15, AffectNet 2, as conf/budget/cpu.yaml says
    affect = make_cfg(["budget=cpu", "data=affectnet", f"data.root={tmp_path}"], subdir="a")
    assert (lab.trainer.max_epochs, wild.trainer.max_epochs, affect.trainer.max_epochs) == (30, 15, 2)


def test_ferplus_trains_30_epochs_on_the_cpu_budget_and_its_committed_table_keeps_15(make_cfg, tmp_path):
    # FER+'s row was chosen on FER2013Valid (experiments/results/ferplus_full_long_cpu) after its table had run
    base = ["data=ferplus", f"data.root={tmp_path}"]
    assert make_cfg(["budget=cpu", *base]).trainer.max_epochs == 30
    assert make_cfg(["budget=cpu", *base, "experiment=shipped"], subdir="s").trainer.max_epochs == 30
    assert make_cfg(["budget=cpu", *base, "sweep=ferplus_targets"], subdir="t").trainer.max_epochs == 15
    # the table's pin is the cpu budget's row only: another budget keeps its own epochs
    quick = make_cfg(["budget=quick", *base], subdir="q").trainer.max_epochs
    table = make_cfg(["budget=quick", *base, "sweep=ferplus_targets"], subdir="qt").trainer.max_epochs
    assert table == quick != 15


def test_bf16_falls_back_to_fp32_with_one_line_on_cpus_without_it(monkeypatch, caplog):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="fer_attention.runtime"):
        assert runtime.resolve_precision("bf16-mixed", "cpu") == "32-true"
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("trainer.precision=bf16-mixed: this CPU has no native bf16") and "32-true" in line
    assert runtime.resolve_precision("32-true", "cpu") == "32-true"
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert runtime.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"


def _make_n(*args: str) -> str:
    return subprocess.run(
        ["make", "-n", "--no-print-directory", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("table", ["ablation-modules", "ablation-lbp", "ablation-dilation", "cv"])
def test_every_table_runs_over_all_folds_on_kfold_data_and_over_seeds_on_fixed_splits(table):
    kfold = _make_n(table, "DATA=ckplus", "DATA_ROOT=/data/ck")
    assert "budget=cpu" in kfold and "'data.fold=range(0,10)'" in kfold and " seed=0 " in kfold
    fixed = _make_n(table, "DATA=fer2013", "DATA_ROOT=/data/fer", "BUDGET=paper")
    assert "experiment=paper" in fixed and "data.fold" not in fixed and " seed=0,1,2 " in fixed
    quick = _make_n(table, "DATA=ckplus", "DATA_ROOT=/data/ck", "QUICK=1", "REFERENCE=ablation=vgg16")
    assert "budget=quick" in quick and "'data.fold=0'" in quick and "--reference 'ablation=vgg16'" in quick
    again = _make_n(table, "DATA=ckplus", "SWEEP_DIR=logs/old", "ARGS=skip_done=true")
    assert "hydra.sweep.dir=logs/old skip_done=true" in again and "fer-report logs/old" in again


def test_the_ferplus_table_runs_on_ferplus_over_three_seeds():
    """make ferplus-targets: FER+ from ../shared unless DATA_ROOT says otherwise, its fixed split, 3 seeds."""
    cmd = _make_n("ferplus-targets")
    assert "sweep=ferplus_targets data=ferplus data.root=../shared/data/ferplus budget=cpu" in cmd
    assert " seed=0,1,2 " in cmd and "data.fold" not in cmd
    assert "data.root=/data/ferplus " in _make_n("ferplus-targets", "DATA_ROOT=/data/ferplus")


def test_make_reads_each_datasets_protocol_from_its_config():
    from experiments.protocol import protocol

    assert [protocol(d) for d in ("ckplus", "synthetic", "fer2013", "folder", "images")] == [
        "kfold 10",
        "kfold 5",
        "fixed",
        "auto",
        "kfold 10",
    ]
    # a k-fold dataset the Makefile never listed by name still runs over its folds
    assert "'data.fold=range(0,10)'" in _make_n("ablation-modules", "DATA=images", "DATA_ROOT=/data/imgs")
