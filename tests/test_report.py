"""fer-report's paired comparisons: the statistics against scipy and the formulas, folds.csv, the default
and named reference row, unmatched and failed jobs, and result folders that re-aggregate on their own."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from experiments.check_results import _folder_rows
from fer_attention.cli.report import main as report_main
from fer_attention.errors import ReportError
from fer_attention.reporting.aggregate import report, val_curve
from fer_attention.reporting.jobs import Job
from fer_attention.reporting.results import publish
from fer_attention.reporting.stats import format_p, holm, paired_comparison

TRAIN, TEST = 800, 100


def test_corrected_t_test_follows_nadeau_bengio_and_reduces_to_the_paired_t_test():
    rng = np.random.default_rng(0)
    ref = 0.9 + 0.02 * rng.standard_normal(10)
    row = ref - 0.02 + 0.01 * rng.standard_normal(10)
    plain = paired_comparison(row, ref, 0.0)
    assert plain.p_corrected == pytest.approx(stats.ttest_rel(row, ref).pvalue, rel=1e-9)
    assert plain.p_wilcoxon == pytest.approx(stats.wilcoxon(row - ref).pvalue, rel=1e-9)

    ratio = TEST / TRAIN
    c = paired_comparison(row, ref, ratio)
    d = row - ref
    se = math.sqrt((1 / 10 + ratio) * d.var(ddof=1))
    t = d.mean() / se
    assert c.t == pytest.approx(t) and c.p_corrected == pytest.approx(2 * stats.t.sf(abs(t), 9))
    half = stats.t.ppf(0.975, 9) * se
    assert (c.ci_low, c.ci_high) == pytest.approx((100 * (d.mean() - half), 100 * (d.mean() + half)))
    assert c.mean_diff == pytest.approx(100 * d.mean())
    # the correction widens the interval and weakens the evidence
    assert c.p_corrected > plain.p_corrected and c.ci_high - c.ci_low > plain.ci_high - plain.ci_low
    assert (c.wins, c.ties, c.losses) == (int((d > 0).sum()), 0, int((d < 0).sum()))


def test_fewer_than_two_pairs_or_identical_rows_give_na_not_a_crash():
    one = paired_comparison(np.array([0.9]), np.array([0.8]), 0.1)
    assert one.pairs == 1 and one.mean_diff == pytest.approx(10.0)
    assert one.p_corrected is None and one.p_wilcoxon is None and one.ci_low is None
    same = paired_comparison(np.array([0.8, 0.9]), np.array([0.8, 0.9]), 0.1)
    assert same.p_corrected is None and same.p_wilcoxon is None and (same.ties, same.mean_diff) == (2, 0.0)
    assert format_p(None) == "n/a" and format_p(0.0004) == "<0.001" and format_p(0.0412) == "0.041"


def test_corrected_repeated_kfold_t_matches_a_hand_computed_example():
    # k = 2 folds x r = 2 seeds, n_test / n_train = 0.25. By hand: d = 2, 4, 0, 6 points, mean 3,
    # s^2 = (1 + 1 + 9 + 9) / 3 = 6.667 (points^2), variance (1/4 + 0.25) s^2 = 3.333, se = 1.8257,
    # t = 3 / 1.8257 = 1.6432 with k r - 1 = 3 degrees of freedom, two-sided p = 0.1989
    ref = np.array([0.80, 0.80, 0.80, 0.80])
    row = ref + np.array([0.02, 0.04, 0.00, 0.06])
    c = paired_comparison(row, ref, 0.25, folds=2, repeats=2)
    assert c.t == pytest.approx(1.6432, abs=1e-4)
    assert c.p_corrected == pytest.approx(0.1989, abs=1e-4)
    assert (c.ci_low, c.ci_high) == pytest.approx((3 - 3.1824 * 1.8257, 3 + 3.1824 * 1.8257), abs=1e-3)
    assert (c.pairs, c.folds, c.repeats, c.wins, c.ties) == (4, 2, 2, 3, 1)


def test_wilcoxon_with_ties_and_zero_differences_is_scipys_with_zeros_dropped():
    ref = np.full(9, 0.5)
    d = np.array([0.0, 0.0, 0.02, 0.02, -0.02, 0.04, 0.04, 0.06, -0.01])
    c = paired_comparison(ref + d, ref, 0.1)
    assert c.p_wilcoxon == pytest.approx(stats.wilcoxon(d, zero_method="wilcox").pvalue, rel=1e-12)
    # by hand: 7 non-zero |d| ranks 1 (0.01), 3, 3, 3 (0.02 x3), 5.5, 5.5 (0.04), 7 (0.06); W- = 1 + 3 = 4
    assert stats.wilcoxon(d, zero_method="wilcox").statistic == pytest.approx(4.0)
    assert (c.wins, c.ties, c.losses) == (5, 2, 2)


def test_holm_adjusts_step_down_and_keeps_missing_values_out_of_the_family():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.2, None, 0.6]) == [pytest.approx(0.4), None, pytest.approx(0.6)]
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0]) and holm([]) == []


def test_mean_interval_is_the_t_interval_of_the_mean_in_points():
    from fer_attention.reporting.stats import mean_interval

    low, high = mean_interval(np.array([0.80, 0.90, 0.85]))
    half = stats.t.ppf(0.975, 2) * 0.05 / math.sqrt(3)  # sample sd of 0.80, 0.90, 0.85 is 0.05
    assert (low, high) == pytest.approx((100 * (0.85 - half), 100 * (0.85 + half)), abs=1e-9)
    assert mean_interval(np.array([0.8])) is None


def fake_sweep(
    root: Path,
    rows: dict[str, list[float | None]],
    key: str = "ablation",
    seed: int = 0,
    splits: bool = True,
    kfold: bool = True,
) -> None:
    """One job per (row, fold): test accuracy as given (None = a failed job). ``kfold=False``: one fixed
    split, and the accuracies are seeds ``seed``, ``seed + 1``, ... instead of folds."""
    num = 0
    for value, accs in rows.items():
        for fold, acc in enumerate(accs):
            job_seed = seed if kfold else seed + fold
            job = root / f"{num}_{key}-{value}+data.fold-{fold}+seed-{job_seed}"
            (job / ".hydra").mkdir(parents=True)
            where = [f"data.fold={fold}"] if kfold else []
            overrides = [f"{key}={value}", *where, f"seed={job_seed}", "data.root=/data/CK+48"]
            (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"task_name": "demo"}))
            (job / "checkpoints").mkdir()
            (job / "checkpoints" / "epoch_001.ckpt").write_bytes(b"weights")
            if acc is None:
                (job / "status.json").write_text(json.dumps({"state": "failed", "error": "ValueError: boom"}))
            else:
                (job / "status.json").write_text(json.dumps({"state": "finished"}))
                metrics = {
                    "test/acc": acc,
                    "test/f1_macro": acc - 0.05,
                    "val/acc_best": acc,
                    "seed": job_seed,
                    "seconds": 10.0,
                    "splits": {"train": {"faces": TRAIN}, "test": {"faces": TEST}} if splits else None,
                    "test/confusion_matrix": [[3, 1], [0, 4]],
                    "class_names": ["a", "b"],
                }
                (job / "metrics.json").write_text(json.dumps(metrics))
            num += 1


FULL = [0.90, 0.92, 0.88, 0.91, 0.93]
VGG = [0.86, 0.90, 0.87, 0.88, 0.91]
NO_LBP = [0.91, 0.90, 0.89, 0.90, None]


def test_rows_are_compared_with_the_papers_choice_on_matching_folds(tmp_path):
    fake_sweep(tmp_path / "sweep", {"vgg16": VGG, "full": FULL, "no_lbp": NO_LBP})
    out = report(tmp_path / "sweep", tmp_path / "report")
    assert out["reference"] == "ablation=full"
    rows = {r["ablation"]: r for r in out["rows"]}
    expected = paired_comparison(np.array(VGG), np.array(FULL), TEST / TRAIN)
    assert rows["vgg16"]["mean_diff"] == pytest.approx(expected.mean_diff, abs=1e-3)
    assert rows["vgg16"]["p_corrected"] == pytest.approx(expected.p_corrected, abs=1e-4)
    assert (rows["vgg16"]["wins"], rows["vgg16"]["losses"], rows["vgg16"]["pairs"]) == (0, 5, 5)
    assert rows["full"]["reference"] is True and rows["full"]["pairs"] is None
    # no_lbp's fold 4 failed: 4 pairs, the failed job and full's partnerless fold 4 are both named
    assert rows["no_lbp"]["pairs"] == 4
    assert "`14_ablation-no_lbp+data.fold-4+seed-0`: failed (ValueError: boom)" in out["table"]
    assert (
        "`9_ablation-full+data.fold-4+seed-0` (fold 4, seed 0) in the comparison of ablation=no_lbp"
        in out["table"]
    )
    assert "| vgg16 | 88.40 ± 2.07 |" in out["table"] and "| 0/0/5 | 5 |" in out["table"]

    with open(tmp_path / "report" / "folds.csv") as f:
        folds = list(csv.DictReader(f))
    assert list(folds[0]) == ["row", "fold 0", "fold 1", "fold 2", "fold 3", "fold 4"]
    by_row = {r["row"]: r for r in folds}
    assert float(by_row["ablation=vgg16"]["fold 1"]) == pytest.approx(90.0)
    assert by_row["ablation=no_lbp"]["fold 4"] == ""
    assert (tmp_path / "report" / "plot.png").stat().st_size > 10_000


def test_named_reference_and_a_reference_that_is_no_row(tmp_path, capsys):
    fake_sweep(tmp_path / "sweep", {"full": FULL, "vgg16": VGG})
    out = report(tmp_path / "sweep", tmp_path / "r", reference="vgg16")
    rows = {r["ablation"]: r for r in out["rows"]}
    assert out["reference"] == "ablation=vgg16" and rows["full"]["mean_diff"] > 0
    with pytest.raises(ReportError, match=r"rows: ablation=full; ablation=vgg16$"):
        report(tmp_path / "sweep", tmp_path / "r", reference="ablation=nope")
    assert report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "r"), "--reference", "nope"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --reference 'nope' is not a row of this table; rows: ablation=full; ablation=vgg16"
    ]


def test_published_folder_holds_no_checkpoints_and_re_aggregates_alone(tmp_path):
    fake_sweep(tmp_path / "sweep", {"full": FULL, "vgg16": VGG})
    (tmp_path / "sweep" / "multirun.yaml").write_text(
        yaml.safe_dump({"hydra": {"overrides": {"task": ["sweep=ablation_modules", "data.fold=range(0,5)"]}}})
    )
    assert report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "pub"), "--publish"]) == 0
    files = {p.name for p in (tmp_path / "pub" / "jobs").rglob("*") if p.is_file()}
    assert not list((tmp_path / "pub").rglob("*.ckpt"))
    assert files == {"metrics.json", "status.json", "config.yaml", "overrides.yaml", "multirun.yaml"}
    info = json.loads((tmp_path / "pub" / "run.json").read_text())
    assert info["command"] == "fer-train -m sweep=ablation_modules 'data.fold=range(0,5)'"
    assert info["jobs"] == info["finished"] == 10 and info["machine"]["cores"] >= 1
    again = report(tmp_path / "pub" / "jobs", tmp_path / "again")
    assert again["table"] == (tmp_path / "pub" / "table.md").read_text()
    readme = (tmp_path / "pub" / "README.md").read_text()
    assert again["table"].rstrip() in readme and info["command"] in readme and "wall time" in readme
    # a Notes section written by hand survives publishing again
    (tmp_path / "pub" / "README.md").write_text(readme + "\n## Notes\n\nfold 3 is hard.\n")
    assert report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "pub"), "--publish"]) == 0
    assert (tmp_path / "pub" / "README.md").read_text().endswith("## Notes\n\nfold 3 is hard.\n")
    with pytest.raises(FileNotFoundError, match="no jobs"):
        publish(tmp_path / "pub" / "jobs" / "0_ablation-full+data.fold-0+seed-0" / ".hydra", tmp_path / "x")


def test_a_published_single_run_names_its_fer_train_command_and_start(tmp_path):
    # `fer-train ... hydra.run.dir=runs/x` (no -m) leaves no multirun.yaml: the job's own record stands in
    fake_sweep(tmp_path / "runs", {"full": [0.83]}, kfold=False)
    job = next((tmp_path / "runs").iterdir())
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["data=ferplus", "trainer.max_epochs=30"]))
    assert report_main([str(tmp_path / "runs"), "--out", str(tmp_path / "pub"), "--publish"]) == 0
    info = json.loads((tmp_path / "pub" / "run.json").read_text())
    assert info["command"] == "fer-train data=ferplus trainer.max_epochs=30"
    assert info["started"] is not None and info["wall_seconds"] is not None and info["wall_seconds"] >= 0
    # two single runs side by side are no one command
    fake_sweep(tmp_path / "two", {"full": [0.83, 0.84]}, kfold=False)
    assert report_main([str(tmp_path / "two"), "--out", str(tmp_path / "pub2"), "--publish"]) == 0
    assert json.loads((tmp_path / "pub2" / "run.json").read_text())["command"] is None


def test_val_curve_joins_time_and_accuracy_lines_of_an_epoch(tmp_path):
    job_dir = tmp_path / "sweep" / "0_ablation-full"
    (job_dir / "csv").mkdir(parents=True)
    # CSVLogger's layout: val/acc and the epoch's times land on separate lines of the same epoch
    (job_dir / "csv" / "metrics.csv").write_text(
        "epoch,step,time/train_s,val/acc\n,0,,\n0,9,,0.5\n0,9,60.0,\n1,19,,0.625\n1,19,121.5,\n2,29,,0.7\n"
    )
    seconds, acc = val_curve(Job(job_dir, {}, None, "finished"))
    assert seconds.tolist() == [60.0, 121.5] and acc.tolist() == [50.0, 62.5]  # epoch 2 has no time: left out
    assert val_curve(Job(tmp_path / "nowhere", {}, None, "finished")) is None
    fake_sweep(tmp_path / "sweep2", {"full": [0.9, 0.8], "vgg16": [0.85, 0.8]})
    run = tmp_path / "sweep2" / sorted(p.name for p in (tmp_path / "sweep2").iterdir() if p.is_dir())[0]
    (run / "csv").mkdir(exist_ok=True)
    (run / "csv" / "metrics.csv").write_text((job_dir / "csv" / "metrics.csv").read_text())
    report(tmp_path / "sweep2", tmp_path / "r")
    assert (tmp_path / "r" / "curves.png").stat().st_size > 10_000


def test_mean_curve_is_epoch_by_epoch_over_jobs_up_to_the_shortest():
    from fer_attention.reporting.plots import mean_curve

    seconds, mean, sd = mean_curve(
        [
            (np.array([1.0, 2.0, 3.0]), np.array([50.0, 60.0, 70.0])),
            (np.array([3.0, 4.0]), np.array([70.0, 80.0])),
        ]
    )
    np.testing.assert_allclose(seconds, [2.0, 3.0])
    np.testing.assert_allclose(mean, [60.0, 70.0])
    np.testing.assert_allclose(sd, [10.0, 10.0])


def test_seeds_pool_into_a_repeated_kfold_table_with_holm_and_labelled_wilcoxon(tmp_path):
    fake_sweep(tmp_path / "s0", {"full": FULL, "vgg16": VGG, "no_lbp": [0.91, 0.90, 0.89, 0.90, 0.92]})
    fake_sweep(tmp_path / "s1", {"full": VGG, "vgg16": FULL, "no_lbp": FULL}, seed=1)
    out = report([tmp_path / "s0", tmp_path / "s1"], tmp_path / "r")
    rows = {r["ablation"]: r for r in out["rows"]}
    assert (rows["vgg16"]["pairs"], rows["vgg16"]["folds"], rows["vgg16"]["seeds"]) == (10, 5, 2)
    expected = paired_comparison(np.array(VGG + FULL), np.array(FULL + VGG), TEST / TRAIN)
    assert rows["vgg16"]["p_corrected"] == pytest.approx(expected.p_corrected, abs=1e-4)
    p_holm = holm([rows["no_lbp"]["p_corrected"], rows["vgg16"]["p_corrected"]])
    assert [rows["no_lbp"]["p_holm"], rows["vgg16"]["p_holm"]] == pytest.approx(p_holm, abs=1e-3)
    table = out["table"]
    assert "| p (corrected t) | p (Holm) | p (Wilcoxon, uncorrected) |" in table
    assert "Bouckaert & Frank 2004) over k = 5 folds x r = 2 seeds" in table
    assert "fixed split" not in table and out["warnings"] == []
    # one seed of the pooled jobs is the one-seed table again; a seed that is not there names those that are
    one = report([tmp_path / "s0", tmp_path / "s1"], tmp_path / "r0", seeds=["0"])
    assert {r["ablation"]: r["pairs"] for r in one["rows"]} == {"full": None, "vgg16": 5, "no_lbp": 5}
    seed0 = paired_comparison(np.array(VGG), np.array(FULL), TEST / TRAIN)  # seed 1 has the rows swapped
    vgg_seed0 = next(r for r in one["rows"] if r["ablation"] == "vgg16")
    assert vgg_seed0["mean_diff"] == pytest.approx(seed0.mean_diff) and seed0.mean_diff != 0
    with pytest.raises(ReportError, match=r"^--seeds 7 matches no job; seeds here: 0,1$"):
        report([tmp_path / "s0", tmp_path / "s1"], tmp_path / "r0", seeds=["7"])


def test_table_md_shows_each_rows_own_difference_interval_and_p_values(tmp_path):
    other = [0.91, 0.90, 0.89, 0.90, 0.92]
    fake_sweep(tmp_path / "s", {"full": FULL, "vgg16": VGG, "no_lbp": other})
    report(tmp_path / "s", tmp_path / "r")
    vgg = paired_comparison(np.array(VGG), np.array(FULL), TEST / TRAIN)
    no_lbp = paired_comparison(np.array(other), np.array(FULL), TEST / TRAIN)
    p_holm = holm([vgg.p_corrected, no_lbp.p_corrected])
    assert format_p(p_holm[0]) != format_p(vgg.p_corrected)  # so the cells below tell them apart
    header, rows = _folder_rows(tmp_path / "r")  # table.md, as make check-results reads it
    cells = dict(zip(header, rows["vgg16"], strict=True))
    assert (
        cells["Δ test acc vs ref [95% CI]"] == f"{vgg.mean_diff:+.2f} [{vgg.ci_low:+.2f}, {vgg.ci_high:+.2f}]"
    )
    assert vgg.ci_low < vgg.mean_diff < vgg.ci_high
    assert cells["p (corrected t)"] == format_p(vgg.p_corrected)
    assert cells["p (Holm)"] == format_p(p_holm[0])
    assert cells["p (Wilcoxon, uncorrected)"] == format_p(vgg.p_wilcoxon)
    assert (cells["W/T/L"], cells["pairs"]) == ("0/0/5", "5")
    assert dict(zip(header, rows["full"], strict=True))["Δ test acc vs ref [95% CI]"] == "reference"


def test_seeds_on_one_fixed_split_are_the_plain_paired_t_test_even_with_split_sizes(tmp_path):
    full, vgg = [0.650, 0.655, 0.648, 0.660, 0.652], [0.655, 0.662, 0.650, 0.661, 0.659]
    fake_sweep(tmp_path / "s", {"full": full, "vgg16": vgg}, kfold=False)
    out = report(tmp_path / "s", tmp_path / "r")
    row = {r["ablation"]: r for r in out["rows"]}["vgg16"]
    assert (row["pairs"], row["folds"], row["seeds"]) == (5, 1, 5)
    assert row["p_corrected"] == pytest.approx(stats.ttest_rel(vgg, full).pvalue, abs=1e-4)
    diffs = 100 * (np.array(vgg) - np.array(full))
    half = stats.t.ppf(0.975, 4) * diffs.std(ddof=1) / math.sqrt(5)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        (diffs.mean() - half, diffs.mean() + half), abs=1e-3
    )
    assert "| p (paired t) |" in out["table"]
    assert "p (paired t): the paired t-test over seeds on the one fixed split" in out["table"]
    # no per-face predictions: the decision falls back to the seeds' variance, said once
    assert len(out["warnings"]) == 1 and out["warnings"][0].startswith("jobs without per-face predictions")
    assert row["variance"] == "seeds"


def test_kfold_jobs_without_split_sizes_warn_and_are_never_called_a_fixed_split(tmp_path, caplog):
    fake_sweep(tmp_path / "s", {"full": FULL, "vgg16": VGG}, splits=False)
    out = report(tmp_path / "s", tmp_path / "r")
    assert out["warnings"] == [
        "ablation=vgg16: k-fold jobs without split sizes (metrics.json 'splits'): p is the uncorrected "
        "paired t-test, which overstates significance on overlapping folds"
    ]
    assert "| p (paired t, uncorrected) |" in out["table"] and "fixed split" not in out["table"]
    assert "Warnings:" in (tmp_path / "r" / "table.md").read_text()
    assert any("without split sizes" in r.getMessage() for r in caplog.records)


def test_publish_append_adds_a_sweep_beside_the_committed_jobs(tmp_path):
    fake_sweep(tmp_path / "s0", {"full": FULL, "vgg16": VGG})
    fake_sweep(tmp_path / "more", {"full": VGG, "vgg16": FULL}, seed=1)
    for sweep in ("s0", "more"):
        (tmp_path / sweep / "multirun.yaml").write_text(
            yaml.safe_dump(
                {"hydra": {"overrides": {"task": [f"seed={sweep}"], "hydra": ["hydra.launcher.n_jobs=2"]}}}
            )
        )
    pub = tmp_path / "pub"
    assert report_main([str(tmp_path / "s0"), "--out", str(pub), "--publish"]) == 0
    assert report_main([str(tmp_path / "more"), "--out", str(pub), "--publish", "--append"]) == 0
    info = json.loads((pub / "run.json").read_text())
    assert [s["command"] for s in info["sweeps"]] == [
        "fer-train -m seed=s0 hydra.launcher.n_jobs=2",
        "fer-train -m seed=more hydra.launcher.n_jobs=2",
    ]
    assert info["jobs"] == info["finished"] == 20
    assert (pub / "jobs" / "more" / "0_ablation-full+data.fold-0+seed-1" / "metrics.json").is_file()
    assert (pub / "jobs" / "0_ablation-full+data.fold-0+seed-0" / "metrics.json").is_file()
    assert not [p.name for p in pub.iterdir() if p.name.startswith(".")]
    readme = (pub / "README.md").read_text()
    assert "Sweep 1 of 2" in readme and "Sweep 2 of 2 (`more`)" in readme
    table = (pub / "table.md").read_text()
    assert "| 10 |" in table and "r = 2 seeds" in table
    # appending the same sweep again replaces its jobs instead of doubling them
    assert report_main([str(tmp_path / "more"), "--out", str(pub), "--publish", "--append"]) == 0
    assert json.loads((pub / "run.json").read_text())["jobs"] == 20


def test_jobs_pooled_from_a_sweep_that_left_the_group_to_its_default_take_the_option_they_ran(tmp_path):
    """The module table's ``full`` jobs (no ``dilation=`` override, composed with d123's rates) pooled with a
    dilation sweep are its ``dilation=d123`` row, the default reference; a job whose rates match no option
    stays apart rather than being guessed."""
    fake_sweep(tmp_path / "dil", {"d111": VGG, "d135": NO_LBP}, key="dilation")
    fake_sweep(tmp_path / "mod", {"full": FULL}, key="ablation")
    full = {"name": "full", "attention": True, "reconstruction": True, "lbp": True}
    for job in (tmp_path / "dil").iterdir():
        rates = [1, 1, 1] if "d111" in job.name else [1, 3, 5]
        config = {"dilation": {"rates": rates}, "ablation": full}
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    for job in (tmp_path / "mod").iterdir():
        config = {"dilation": {"rates": [1, 2, 3]}, "ablation": full}
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    out = report([tmp_path / "dil", tmp_path / "mod"], tmp_path / "r")
    assert out["reference"] == "dilation=d123"
    rows = {r["dilation"]: r for r in out["rows"]}
    assert set(rows) == {"d111", "d135", "d123"} and "ablation" not in out["rows"][0]
    assert rows["d111"]["pairs"] == 5 and rows["d123"]["reference"] is True

    odd = next(j for j in (tmp_path / "mod").iterdir() if "fold-0" in j.name)
    (odd / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"dilation": {"rates": [2, 4, 8, 16]}}))
    assert Job(odd, {"ablation": "full"}, None, "missing").swept_value("dilation") == ""
