"""experiments.tta_choice: ten-crop chosen on validation only, then both test figures; the best job of a sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import tta_choice

try:  # tests/ as a package or as a plain folder on sys.path
    from .test_predict import tiny_checkpoint
except ImportError:
    from test_predict import tiny_checkpoint


def fake_run(
    tmp_path: Path, name: str = "run", val_best: float = 0.5, overrides: tuple[str, ...] = ()
) -> Path:
    run = tmp_path / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides) or "[]\n")
    (run / "metrics.json").write_text(json.dumps({"val/acc_best": val_best, "best_ckpt": f"{run}/best.ckpt"}))
    return run


def scripted_eval(acc: dict[str, float], out: Path, calls: list[str]):
    """A stand-in for fer-eval: the accuracy of each (split, mode); it checks that the choice is on disk
    before any test-split evaluation runs."""

    def evaluate(command: list[str]) -> dict:
        split = next(a for a in command if a.startswith("split=")).split("=")[1]
        mode = next(a for a in command if a.startswith("test_time_augmentation=")).split("=")[1]
        if split == "test":
            assert json.loads((out / "tta.json").read_text())["chosen"] in ("null", "tencrop")
        calls.append(f"{split}_{mode}")
        return {f"{split}/acc": acc[f"{split}_{mode}"]}

    return evaluate


def test_the_mode_is_chosen_on_validation_and_the_test_figures_only_reported(tmp_path):
    run, out, calls = fake_run(tmp_path), tmp_path / "out", []
    # ten-crop is worse on validation and better on test: plain must be chosen and reported
    acc = {"val_null": 0.64, "val_tencrop": 0.63, "test_null": 0.65, "test_tencrop": 0.66}
    result = tta_choice.choose_tta(run, out, evaluate=scripted_eval(acc, out, calls))
    assert calls == ["val_null", "val_tencrop", "test_null", "test_tencrop"]
    assert result["chosen"] == "null" and result["reported_test_acc"] == 0.65
    md = (out / "tta.md").read_text()
    assert "| plain | 64.00% | 65.00% |" in md and "| ten-crop | 63.00% | 66.00% |" in md
    assert "Chosen on validation: **plain**; the reported test figure is **65.00%**" in md
    assert sorted(p.parent.name for p in (out / "evals").glob("*/metrics.json")) == sorted(calls)
    assert not (out / "work").exists()
    # a rerun reads the kept evaluations and runs nothing
    again = tta_choice.choose_tta(run, out, evaluate=lambda c: pytest.fail(f"ran {c}"))
    assert again["acc"] == result["acc"]

    acc = {"val_null": 0.60, "val_tencrop": 0.61, "test_null": 0.65, "test_tencrop": 0.64}
    other = tta_choice.choose_tta(run, tmp_path / "o2", evaluate=scripted_eval(acc, tmp_path / "o2", []))
    assert other["chosen"] == "tencrop" and other["reported_test_acc"] == 0.64


def test_best_run_is_the_matching_job_best_on_validation(tmp_path):
    sweep = tmp_path / "sweep"
    fake_run(sweep, "0", 0.80, ("ablation=full", "seed=0"))
    best = fake_run(sweep, "1", 0.85, ("ablation=full", "seed=1"))
    fake_run(sweep, "2", 0.95, ("ablation=vgg16", "seed=0"))
    assert tta_choice.best_run(sweep, ["ablation=full"]) == best
    assert tta_choice.best_run(sweep).name == "2"
    with pytest.raises(SystemExit, match=r"^no finished job in .*sweep has ablation=no_lbp$"):
        tta_choice.best_run(sweep, ["ablation=no_lbp"])


def test_one_real_fer_eval_of_a_tiny_model_gives_the_metrics_the_choice_reads(
    tmp_path_factory, tmp_path, monkeypatch
):
    ckpt = tiny_checkpoint(tmp_path_factory)
    monkeypatch.chdir(tmp_path)
    command = tta_choice.eval_command(ckpt, "val", "tencrop", tmp_path / "val_tencrop")
    metrics = tta_choice.run_fer_eval(command)
    assert 0.0 <= metrics["val/acc"] <= 1.0 and metrics["test_time_augmentation"] == "tencrop"
    assert metrics["best_ckpt"] == ckpt
    with pytest.raises(SystemExit, match=r"^fer-eval failed \(.*split=train"):
        tta_choice.run_fer_eval(tta_choice.eval_command(ckpt, "train", "null", tmp_path / "bad"))
