"""fer-report's decisions: the Bayesian correlated t-test against baycomp on the committed k-fold tables, the
seeds x faces variance on simulated fixed-split jobs whose truth is known, outcomes and verdicts, and the
bad inputs (flags, faces that differ between paired jobs, tables that mix datasets)."""

from __future__ import annotations

import json
from pathlib import Path

import baycomp
import numpy as np
import pytest
import yaml
from scipy import stats

from fer_attention.cli.report import main as report_main
from fer_attention.errors import ReportError
from fer_attention.reporting.aggregate import find_jobs, group_jobs, pick_reference, report
from fer_attention.reporting.decision import (
    CONTRADICTED,
    EQUIVALENT,
    MIXED,
    REF_BETTER,
    REPRODUCED,
    ROW_BETTER,
    UNDECIDED,
    check_decide,
    check_rope,
    claim_verdict,
    kfold_posterior,
    outcome,
    seeds_to_decide,
    two_level_posterior,
    variance_components,
)
from fer_attention.runs import write_predictions

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"
KFOLD_TABLES = [
    "ablation_modules_ckplus48_cpu",
    "ablation_lbp_ckplus48_cpu",
    "ablation_dilation_ckplus48_cpu",
    "pretrained_modules_ckplus48_cpu",
]


def kfold_pairs(folder: str):
    """(row label, row accuracies, reference accuracies, folds, seeds) of each row of a committed table, the
    pairs ordered seed by seed (baycomp's layout: runs of k folds)."""
    _, rows = group_jobs([j for j in find_jobs(RESULTS / folder / "jobs") if j.metrics])
    ref = pick_reference(rows)
    theirs = ref.by_pair()
    for row in rows:
        if row is ref:
            continue
        mine = row.by_pair()
        common = sorted(set(mine) & set(theirs), key=lambda k: (int(k[1]), int(k[0])))
        folds, seeds = len({f for f, _ in common}), len({s for _, s in common})
        yield (
            row.label,
            np.array([mine[k] for k in common]),
            np.array([theirs[k] for k in common]),
            folds,
            seeds,
        )


@pytest.mark.parametrize("folder", KFOLD_TABLES)
def test_rope_probabilities_agree_with_baycomp_on_the_committed_kfold_tables(folder):
    compared = 0
    ratio = float(np.mean([j.test_train_ratio for j in find_jobs(RESULTS / folder / "jobs") if j.metrics]))
    assert ratio == pytest.approx(0.125, abs=0.01)
    for label, row, ref, folds, seeds in kfold_pairs(folder):
        if folds * seeds != len(row):  # an unbalanced row: baycomp needs runs of every fold
            continue
        theirs = baycomp.two_on_single(ref, row, rope=0.02, runs=seeds)  # (ref better, rope, row better)
        # at baycomp's own correlation rho = 1/k, i.e. n_test / n_train = 1 / (k - 1)
        ours = kfold_posterior(row - ref, 1 / (folds - 1), folds, seeds).probabilities(2.0)
        assert ours == pytest.approx(theirs, abs=1e-6), label
        # the suite's own ratio (each job's split sizes: 0.125 on CK+48's folds) moves them by about 0.02
        own = kfold_posterior(row - ref, ratio, folds, seeds).probabilities(2.0)
        assert max(abs(a - b) for a, b in zip(own, theirs, strict=True)) < 0.03, label
        compared += 1
    assert compared >= 1


def simulate_jobs(
    rng, true_diff: float, seed_sd: float, faces: int, seeds: int, face_sd: float = 0.1, fresh: float = 0.2
):
    """Per-face paired differences [seeds, faces] of a row and a reference on a fresh draw of test faces.

    Each face has an accuracy of its own for the reference (uniform in [0.25, 0.75]) and for the row (the
    same plus ``true_diff`` plus the face's own uniform deviation of sd ``face_sd``, mean 0: the row is
    better on some faces and worse on others, seed after seed). A job gets a face right when a uniform draw
    falls below its accuracy plus the job's (model, seed) offset of sd ``seed_sd``. That draw is the face's
    own for every job, except with probability ``fresh`` where the job draws its own: models trained alike
    get the same faces right, as real ones do. No accuracy leaves [0, 1], so the truth is ``true_diff``."""
    easy = rng.uniform(0.25, 0.75, faces)
    lean = face_sd * np.sqrt(3) * rng.uniform(-1, 1, faces)
    shared = rng.random(faces)

    def job(accuracy: np.ndarray) -> np.ndarray:
        u = np.where(rng.random(faces) < fresh, rng.random(faces), shared)
        return u < accuracy + seed_sd * rng.standard_normal()

    out = [job(easy + true_diff + lean).astype(np.int8) - job(easy).astype(np.int8) for _ in range(seeds)]
    return np.stack(out)


def test_seeds_and_faces_variance_matches_the_spread_over_fresh_faces_and_seeds():
    """Over many fresh draws of test faces and seeds, the two-level posterior's variance is the real
    variance of the mean difference, and its 95% interval covers the truth about 95% of the time; the
    seeds-only variance misses the faces' share."""
    rng = np.random.default_rng(0)
    means, two_level, seeds_only, covered = [], [], [], 0
    draws = 300
    for _ in range(draws):
        d = simulate_jobs(rng, true_diff=0.0, seed_sd=0.003, faces=1500, seeds=3)
        post = two_level_posterior(d)
        vc = variance_components(d)
        means.append(post.loc)
        two_level.append(post.scale**2)
        seeds_only.append(vc["seed_part"])
        half = stats.t.ppf(0.975, post.df) * post.scale
        covered += post.loc - half <= 0.0 <= post.loc + half
    true_var = float(np.var(means, ddof=1))
    assert np.mean(two_level) == pytest.approx(true_var, rel=0.2)
    assert np.mean(seeds_only) < 0.75 * true_var  # without the faces the spread is understated
    assert 0.90 <= covered / draws <= 0.99


@pytest.mark.parametrize(
    "true_diff, seeds, expected",
    [(0.0, 5, EQUIVALENT), (0.06, 3, ROW_BETTER), (-0.06, 3, REF_BETTER), (0.02, 5, UNDECIDED)],
)
def test_simulated_jobs_get_the_outcome_their_truth_implies(true_diff, seeds, expected):
    rng = np.random.default_rng(1)
    d = simulate_jobs(rng, true_diff=true_diff, seed_sd=0.003, faces=3000, seeds=seeds)
    post = two_level_posterior(d)
    assert outcome(post.probabilities(2.0), 0.95) == expected
    if expected == UNDECIDED:  # on the ROPE's edge: more seeds cannot help, the test faces set a floor
        assert seeds_to_decide(post, 2.0, 0.95) is None


def test_variance_components_are_the_two_way_anova_of_a_hand_example():
    # 2 seeds x 3 faces: D = [[1, 0, 0], [1, -1, 0]]; grand 1/6; seed means 1/3, 0; face means 1, -1/2, 0
    d = np.array([[1, 0, 0], [1, -1, 0]])
    vc = variance_components(d)
    assert vc["ms_seed"] == pytest.approx(3 * 2 * (1 / 6) ** 2)  # N sum (seed mean - grand)^2 / (r - 1)
    face_ss = (1 - 1 / 6) ** 2 + (-0.5 - 1 / 6) ** 2 + (1 / 6) ** 2
    assert vc["ms_face"] == pytest.approx(2 * face_ss / 2)
    resid = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()
    assert vc["ms_err"] == pytest.approx((resid**2).sum() / 2)
    total = (vc["ms_seed"] + vc["ms_face"] - vc["ms_err"]) / 6
    assert vc["variance"] == pytest.approx(1e4 * total)
    assert vc["seed_part"] + vc["face_part"] == pytest.approx(vc["variance"])


def test_kfold_posterior_is_the_corrected_t_and_tost_matches_two_one_sided_tests():
    d = np.array([0.02, 0.04, 0.00, 0.06])  # 3 ± 2.58 points, n = 4
    post = kfold_posterior(d, 0.25, folds=2, seeds=2)
    s2 = np.var(100 * d, ddof=1)
    assert (post.loc, post.scale, post.df) == pytest.approx((3.0, np.sqrt((1 / 4 + 0.25) * s2), 3))
    left, rope, right = post.probabilities(2.0)
    assert right == pytest.approx(stats.t.sf((2.0 - 3.0) / post.scale, 3))
    assert left + rope + right == pytest.approx(1.0)
    p_low = stats.t.sf((3.0 + 2.0) / post.scale, 3)
    p_high = stats.t.cdf((3.0 - 2.0) / post.scale, 3)
    assert post.tost(2.0) == pytest.approx(max(p_low, p_high))
    # the smallest ROPE of equivalence gives P(rope) = 0.95 exactly
    assert post.probabilities(post.rope_for_equivalence(0.95))[1] == pytest.approx(0.95, abs=1e-6)
    # k-fold: the n_test / n_train term does not shrink with seeds, so some rows can never be decided
    assert post.with_seeds(50).scale > np.sqrt(0.25 * s2) - 1e-9


@pytest.mark.parametrize(
    "outcomes, verdict",
    [
        ([("a", REF_BETTER), ("b", REF_BETTER)], REPRODUCED),
        ([("a", REF_BETTER), ("b", ROW_BETTER)], CONTRADICTED),
        ([("a", EQUIVALENT), ("b", EQUIVALENT)], EQUIVALENT),
        ([("a", REF_BETTER), ("b", EQUIVALENT)], MIXED),
        ([("a", EQUIVALENT), ("b", UNDECIDED)], UNDECIDED),
    ],
)
def test_claim_verdicts(outcomes, verdict):
    got, reason = claim_verdict(outcomes)
    assert got == verdict
    if verdict == UNDECIDED:
        assert reason == "still undecided: b"


def fixed_split_sweep(
    root: Path, rows: dict[str, np.ndarray], predictions: bool = True, data: str = "fer2013"
):
    """Fixed-split jobs (one per row and seed) from per-face correctness [seeds, faces]; with
    ``predictions``, each job's predictions.npz."""
    num = 0
    for value, correct in rows.items():
        for seed, faces in enumerate(correct):
            job = root / f"{num}_ablation-{value}+seed-{seed}"
            (job / ".hydra").mkdir(parents=True)
            (job / ".hydra" / "overrides.yaml").write_text(
                yaml.safe_dump([f"ablation={value}", f"seed={seed}"])
            )
            config = {"task_name": "demo", "data": {"name": data, "protocol": "fixed"}}
            (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
            metrics = {
                "test/acc": float(faces.mean()),
                "test/f1_macro": 0.5,
                "val/acc_best": 0.5,
                "seed": seed,
            }
            (job / "metrics.json").write_text(json.dumps(metrics))
            if predictions:
                labels = np.zeros(len(faces), dtype=int)
                probs = np.where(faces[:, None], [[0.9, 0.1]], [[0.1, 0.9]])
                ids = [f"test/face_{i}.png" for i in range(len(faces))]
                write_predictions(job / "predictions.npz", ids, labels, probs, ["a", "b"], "test")
            num += 1


def test_fixed_split_table_decides_with_seeds_and_faces(tmp_path):
    rng = np.random.default_rng(3)
    ref = rng.random((4, 2000)) < 0.65
    same = ref ^ (rng.random((4, 2000)) < 0.03)  # disagrees on 3% of faces: equivalent at ±2
    worse = ref & (rng.random((4, 2000)) < 0.85)  # about 10 points below
    fixed_split_sweep(tmp_path / "s", {"full": ref, "no_lbp": same, "vgg16": worse})
    out = report(tmp_path / "s", tmp_path / "r")
    rows = {r["ablation"]: r for r in out["rows"]}
    assert rows["no_lbp"]["outcome"] == EQUIVALENT and rows["no_lbp"]["variance"] == "seeds + faces"
    assert rows["no_lbp"]["faces"] == 2000
    assert rows["vgg16"]["outcome"] == REF_BETTER and rows["vgg16"]["p_ref_better"] > 0.99
    assert out["verdict"] == (MIXED, "reference better than ablation=vgg16; equivalent: ablation=no_lbp")
    assert "**Verdict** for ablation=full (ROPE ±2 points, P ≥ 0.95): **mixed**" in out["table"]
    assert out["warnings"] == []
    # a wider ROPE makes both equivalent? no: vgg16 is 10 points below; a 15-point ROPE does
    wide = report(tmp_path / "s", tmp_path / "w", rope=15.0)
    assert wide["verdict"][0] == EQUIVALENT and "p (TOST ±15)" in wide["table"]


def test_a_row_of_one_pair_is_undecided_and_its_budget_is_a_second_seed(tmp_path):
    rng = np.random.default_rng(6)
    ref = rng.random((1, 800)) < 0.65
    fixed_split_sweep(tmp_path / "s", {"full": ref, "vgg16": ref ^ (rng.random((1, 800)) < 0.02)})
    out = report(tmp_path / "s", tmp_path / "r")
    assert {r["ablation"]: r for r in out["rows"]}["vgg16"]["outcome"] == UNDECIDED
    assert (
        "What would decide the rest, if the mean and the variance stay: ablation=vgg16: 1 pair, "
        "and a decision needs 2 (another seed)." in out["table"]
    )


def test_rows_follow_the_sweep_order_past_job_9(tmp_path):
    rng = np.random.default_rng(7)
    rows = {name: rng.random((2, 200)) < 0.6 for name in ("full", "b", "c", "d", "e", "f")}
    # jobs 0_ to 11_, two a row: "f" is 10_ and 11_, which a text sort puts before 1_
    fixed_split_sweep(tmp_path / "s", rows)
    # a sweep appended beside the jobs (as a published folder's jobs/ holds it) comes after them
    fixed_split_sweep(tmp_path / "s" / "appended", {"g": rng.random((2, 200)) < 0.6})
    out = report(tmp_path / "s", tmp_path / "r")
    assert [r["ablation"] for r in out["rows"]] == ["full", "b", "c", "d", "e", "f", "g"]


def test_jobs_without_predictions_fall_back_to_seeds_with_one_warning_naming_them(tmp_path):
    rng = np.random.default_rng(4)
    ref = rng.random((3, 500)) < 0.65
    fixed_split_sweep(
        tmp_path / "s", {"full": ref, "vgg16": ref ^ (rng.random((3, 500)) < 0.1)}, predictions=False
    )
    out = report(tmp_path / "s", tmp_path / "r")
    assert len(out["warnings"]) == 1
    assert out["warnings"][0].startswith("jobs without per-face predictions (3_ablation-vgg16+seed-0, ")
    assert {r["ablation"]: r for r in out["rows"]}["vgg16"]["variance"] == "seeds"


def test_paired_jobs_of_different_faces_are_an_error_naming_both(tmp_path):
    rng = np.random.default_rng(5)
    ref = rng.random((2, 300)) < 0.6
    fixed_split_sweep(tmp_path / "s", {"full": ref, "vgg16": ref})
    other = tmp_path / "s" / "3_ablation-vgg16+seed-1" / "predictions.npz"
    ids = [f"test/other_{i}.png" for i in range(300)]
    write_predictions(other, ids, np.zeros(300, int), np.full((300, 2), 0.5), ["a", "b"], "test")
    with pytest.raises(
        ReportError,
        match=r"^per-face predictions of 3_ablation-vgg16\+seed-1 \(300 faces\) and "
        r"1_ablation-full\+seed-1 \(300 faces\) are not of the same faces",
    ):
        report(tmp_path / "s", tmp_path / "r")


def test_a_table_mixing_datasets_is_not_paired(tmp_path, capsys):
    rng = np.random.default_rng(6)
    fixed_split_sweep(tmp_path / "a", {"full": rng.random((2, 100)) < 0.6}, data="fer2013")
    fixed_split_sweep(tmp_path / "b", {"vgg16": rng.random((2, 100)) < 0.6}, data="ferplus")
    assert report_main([str(tmp_path / "a"), str(tmp_path / "b"), "--reference", "ablation=full"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: the jobs mix datasets or protocols (fer2013/fixed and ferplus/fixed): rows of different data "
        "cannot be paired against --reference"
    ]
    out = report([tmp_path / "a", tmp_path / "b"], tmp_path / "r")
    assert out["reference"] is None and out["verdict"] is None
    assert "no paired comparison" in out["warnings"][-1]


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--rope", "0", "--rope must be a number of accuracy points > 0 (e.g. --rope 2), got '0'"),
        ("--rope", "lots", "--rope must be a number of accuracy points > 0 (e.g. --rope 2), got 'lots'"),
        ("--decide", "1", "--decide must be a probability in (0.5, 1) (e.g. --decide 0.95), got '1'"),
        ("--decide", "0.4", "--decide must be a probability in (0.5, 1) (e.g. --decide 0.95), got '0.4'"),
    ],
)
def test_bad_rope_or_decide_is_one_line_naming_the_flag(tmp_path, capsys, flag, value, message):
    fixed_split_sweep(tmp_path / "s", {"full": np.ones((2, 10), bool), "vgg16": np.ones((2, 10), bool)})
    assert report_main([str(tmp_path / "s"), "--out", str(tmp_path / "r"), flag, value]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]
    assert not (tmp_path / "r").exists()


def test_defaults_of_the_flags():
    assert (check_rope(None), check_decide(None)) == (2.0, 0.95)
    assert (check_rope("1.5"), check_decide("0.9")) == (1.5, 0.9)


def test_two_seeds_with_the_same_mean_difference_keep_the_interactions_variance():
    """Two seeds that happen to give the same mean difference, on faces whose differences do not repeat: the
    unbiased total (MS_seed + MS_face - MS_err) / (r N) is 0 or below, but the variance of the mean never
    drops under MS_err / (r N), so the posterior is not a zero-width certainty."""
    n = 3000
    d = np.zeros((2, n), dtype=int)
    for s in range(2):  # each seed: 60 faces only the row gets right, 80 only the reference, none shared
        d[s, 140 * s : 140 * s + 60], d[s, 140 * s + 60 : 140 * s + 140] = 1, -1
    vc = variance_components(d)
    assert vc["ms_seed"] == pytest.approx(0.0)  # same mean difference, -20 faces, in both seeds
    assert vc["ms_seed"] + vc["ms_face"] - vc["ms_err"] <= 0.0
    assert vc["variance"] == pytest.approx(1e4 * vc["ms_err"] / (2 * n)) and vc["variance"] > 0.07
    post = two_level_posterior(d)
    assert post.loc == pytest.approx(-20 / 30) and post.scale == pytest.approx(vc["variance"] ** 0.5)
