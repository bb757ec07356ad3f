"""Deciding, not only testing: the Bayesian correlated t-test with a region of practical equivalence (ROPE).

A p-value above 0.05 is not "no effect". Following Benavoli, Corani, Demšar & Zaffalon (JMLR 18, 2017; the
``baycomp`` package), the mean paired difference ``row - reference`` gets a posterior, a Student t located
at the observed mean difference, and three probabilities against the ROPE (in accuracy points): the
reference better by more than the ROPE, the two within it, the row better by more than it. A row whose
largest probability reaches ``decide`` has that outcome; otherwise it is *undecided*.

Where the posterior's spread comes from:

- **k folds x r seeds** (``corrected k-fold``): scale ``s sqrt(1/(k r) + n_test/n_train)``, ``k r - 1`` degrees
  of freedom: the corrected variance of the suite's t-test. baycomp fixes the correlation at rho = 1/k, i.e.
  ``n_test/n_train = 1/(k - 1)``; the suite uses each job's own split sizes (on CK+48's 10 folds 0.125 against
  0.111), which moves the probabilities by about 0.02. The test suite checks both against baycomp.
- **one fixed split, r seeds, per-face predictions** (``seeds + faces``): the jobs' per-face paired differences
  ``D[s, i] = correct_row[s, i] - correct_ref[s, i]`` (-1, 0 or 1) are a seeds x faces two-way layout,
  ``D = mu + a_s + b_i + e_si``, where ``a`` is the seed, ``b`` the face (which faces happen to be in the test
  split) and ``e`` their interaction. The mean ``D̄`` has variance
  ``sigma_a^2 / r + sigma_b^2 / N + sigma_e^2 / (r N)``, estimated without bias from the ANOVA mean squares as
  ``(MS_seed + MS_face - MS_err) / (r N)``, with Satterthwaite's degrees of freedom. So *equivalent* holds for
  faces like these, not only for these N. Seeds alone (the plain paired t) leave ``sigma_b^2 / N`` out.
- **one fixed split, r seeds, no predictions** (``seeds``): scale ``s / sqrt(r)``, ``r - 1`` degrees of freedom.

TOST (two one-sided t-tests at ±ROPE, same scale and degrees of freedom) is printed beside it: its p below
``1 - decide`` is the frequentist form of *equivalent*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_attention.errors import ReportError
from fer_attention.reporting.stats import PairedComparison
from fer_attention.runs import PREDICTIONS_FILE, read_predictions

DEFAULT_ROPE = 2.0
DEFAULT_DECIDE = 0.95
REF_BETTER, EQUIVALENT, ROW_BETTER, UNDECIDED = "reference better", "equivalent", "row better", "undecided"
OUTCOMES = (REF_BETTER, EQUIVALENT, ROW_BETTER, UNDECIDED)
# a claim's verdict from its table's outcomes; "mixed": every row decided, ahead of some, equivalent to others
REPRODUCED, CONTRADICTED, MIXED = "reproduced", "contradicted", "mixed"
# the most seeds a budget projection looks at
MAX_SEEDS = 64


def _flag_number(value: object, default: float, ok, flag: str, must: str) -> float:
    """A number flag's value (None: ``default``); a value that is not a number or fails ``ok`` is a
    one-line ReportError naming ``flag`` and what it ``must`` be."""
    if value is None:
        return default
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    if not (math.isfinite(number) and ok(number)):
        raise ReportError(f"{flag} must be {must}, got {value!r}")
    return number


def check_rope(value: object) -> float:
    """``--rope`` in accuracy points: a number > 0 (None: the default)."""
    return _flag_number(
        value, DEFAULT_ROPE, lambda x: x > 0, "--rope", "a number of accuracy points > 0 (e.g. --rope 2)"
    )


def check_decide(value: object) -> float:
    """``--decide``: a probability in (0.5, 1) (None: the default)."""
    return _flag_number(
        value,
        DEFAULT_DECIDE,
        lambda x: 0.5 < x < 1,
        "--decide",
        "a probability in (0.5, 1) (e.g. --decide 0.95)",
    )


@dataclass
class Posterior:
    """The posterior of the mean paired difference ``row - reference``, in accuracy points: a Student t
    with ``df`` degrees of freedom at ``loc``, scale ``sqrt(shrinking + floor)``.

    ``shrinking`` is the part of the variance that falls as 1/seeds (at ``seeds`` seeds), ``floor`` the part
    that more seeds cannot reduce (k-fold: the overlap of training sets; fixed split: the test faces).
    ``variance`` names the sources: ``corrected k-fold``, ``seeds + faces`` or ``seeds``."""

    loc: float
    shrinking: float
    floor: float
    df: float
    seeds: int
    variance: str
    units: int = 1  # folds per seed (k-fold), 1 on a fixed split
    floor_df: float | None = None  # degrees of freedom of the floor term (seeds + faces)

    @property
    def scale(self) -> float:
        return math.sqrt(max(self.shrinking + self.floor, 0.0))

    def cdf(self, x: float) -> float:
        from scipy import stats

        if self.scale == 0:
            return float(x >= self.loc)
        return float(stats.t.cdf(x, self.df, loc=self.loc, scale=self.scale))

    def probabilities(self, rope: float) -> tuple[float, float, float]:
        """(P(reference better by > rope), P(within ±rope), P(row better by > rope))."""
        if self.scale == 0:
            left, right = float(self.loc < -rope), float(self.loc > rope)
        else:
            left, right = self.cdf(-rope), 1.0 - self.cdf(rope)
        return left, 1.0 - left - right, right

    def tost(self, rope: float) -> float:
        """p of the two one-sided t-tests of H0: |difference| >= rope (small p: equivalent)."""
        from scipy import stats

        if self.scale == 0:
            return 0.0 if abs(self.loc) < rope else 1.0
        low = float(stats.t.sf((self.loc + rope) / self.scale, self.df))
        high = float(stats.t.cdf((self.loc - rope) / self.scale, self.df))
        return max(low, high)

    def rope_for_equivalence(self, decide: float) -> float:
        """The smallest ROPE (points) at which this posterior would call the row *equivalent*."""
        lo, hi = 0.0, abs(self.loc) + 100 * self.scale + 1e-9
        for _ in range(80):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if self.probabilities(mid)[1] >= decide else (mid, hi)
        return hi

    def with_seeds(self, seeds: int) -> Posterior:
        """The posterior expected with ``seeds`` seeds if the mean and the variance components stay."""
        shrinking = self.shrinking * self.seeds / seeds
        if self.floor_df is not None:
            df = _satterthwaite([(shrinking, seeds - 1), (self.floor, self.floor_df)])
        else:
            df = self.units * seeds - 1
        return Posterior(self.loc, shrinking, self.floor, df, seeds, self.variance, self.units, self.floor_df)


def _satterthwaite(terms: list[tuple[float, float]]) -> float:
    """Satterthwaite's degrees of freedom of a sum of variance terms ``(value, df)``."""
    total = sum(v for v, _ in terms)
    denom = sum(v * v / df for v, df in terms if df > 0 and v > 0)
    return total * total / denom if denom > 0 else float("inf")


def kfold_posterior(diffs: np.ndarray, test_train_ratio: float, folds: int, seeds: int) -> Posterior | None:
    """Correlated t posterior of paired accuracy differences (0..1) over k folds x r seeds (or r seeds on a
    fixed split, ``test_train_ratio = 0``); None for fewer than two pairs."""
    diffs = 100 * np.asarray(diffs, dtype=float)
    n = len(diffs)
    if n < 2:
        return None
    var = float(diffs.var(ddof=1))
    kind = "corrected k-fold" if test_train_ratio > 0 else "seeds"
    return Posterior(
        float(diffs.mean()),
        var / n,
        test_train_ratio * var,
        n - 1,
        max(seeds, 1),
        kind,
        max(1, n // max(seeds, 1)),
    )


def variance_components(differences: np.ndarray) -> dict[str, float]:
    """Two-way (seeds x faces) mean squares of per-face paired differences ``D`` (-1, 0, 1; shape
    ``[seeds, faces]``) and the variance of their mean, ``(MS_seed + MS_face - MS_err) / (r N)``, in
    squared accuracy points, with its seed part (falls with more seeds) and face part (does not)."""
    d = np.asarray(differences, dtype=float)
    r, n = d.shape
    grand = d.mean()
    seed_means, face_means = d.mean(axis=1), d.mean(axis=0)
    ms_seed = n * float(((seed_means - grand) ** 2).sum()) / (r - 1)
    ms_face = r * float(((face_means - grand) ** 2).sum()) / (n - 1)
    resid = d - seed_means[:, None] - face_means[None, :] + grand
    ms_err = float((resid**2).sum()) / ((r - 1) * (n - 1))
    # sigma_a^2 / r + sigma_e^2 / (r N) falls with seeds; sigma_b^2 / N does not (clipped at 0 each). The
    # unbiased total can reach 0 (two seeds with the same mean difference, faces that matter no more than
    # chance): it is kept at least sigma_e^2 / (r N), the interaction's own share, which MS_err estimates
    sigma_b2 = max((ms_face - ms_err) / r, 0.0)
    total = max((ms_seed + ms_face - ms_err) / (r * n), ms_err / (r * n))
    face_part = min(sigma_b2 / n, total)
    return {
        "ms_seed": ms_seed,
        "ms_face": ms_face,
        "ms_err": ms_err,
        "variance": 1e4 * total,
        "seed_part": 1e4 * (total - face_part),
        "face_part": 1e4 * face_part,
        "seeds": r,
        "faces": n,
    }


def two_level_posterior(differences: np.ndarray) -> Posterior | None:
    """Posterior of the mean difference (points) from per-face paired differences ``[seeds, faces]`` on a
    fixed split, both seeds and test faces counted (:func:`variance_components`); None for one seed."""
    d = np.asarray(differences, dtype=float)
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 2:
        return None
    vc = variance_components(d)
    r, n = d.shape
    df = _satterthwaite([(vc["seed_part"], r - 1), (vc["face_part"], n - 1)])
    return Posterior(
        100 * float(d.mean()), vc["seed_part"], vc["face_part"], df, r, "seeds + faces", 1, n - 1
    )


def outcome(probabilities: tuple[float, float, float], decide: float) -> str:
    """The row's outcome: the region whose probability reaches ``decide``, else *undecided*."""
    left, rope, right = probabilities
    for p, name in ((left, REF_BETTER), (rope, EQUIVALENT), (right, ROW_BETTER)):
        if p >= decide:
            return name
    return UNDECIDED


def seeds_to_decide(posterior: Posterior, rope: float, decide: float) -> int | None:
    """The fewest seeds (up to :data:`MAX_SEEDS`) at which the posterior, with its mean and variance
    components unchanged, would reach an outcome; None when no number of seeds can (the variance floor)."""
    for seeds in range(posterior.seeds, MAX_SEEDS + 1):
        if seeds < 2:
            continue
        if outcome(posterior.with_seeds(seeds).probabilities(rope), decide) != UNDECIDED:
            return seeds
    return None


def claim_verdict(outcomes: list[tuple[str, str]]) -> tuple[str, str]:
    """A claim's verdict from its table's ``(row, outcome)`` pairs, each row against the paper's choice:
    *reproduced* (better than every rival), *contradicted* (some rival better), *equivalent* (every rival
    within the ROPE), *mixed* (every row decided, ahead of some, equivalent to others), else *undecided*.
    Returns the verdict and a sentence naming the rows behind it."""
    if not outcomes:
        return UNDECIDED, "no rival row was compared"

    def named(kind: str) -> str:
        return ", ".join(row for row, o in outcomes if o == kind)

    kinds = {o for _, o in outcomes}
    if ROW_BETTER in kinds:
        return CONTRADICTED, f"better than the reference: {named(ROW_BETTER)}"
    if kinds == {REF_BETTER}:
        return REPRODUCED, "the reference is better than every row"
    if kinds == {EQUIVALENT}:
        return EQUIVALENT, "every row is within the ROPE of the reference"
    if UNDECIDED in kinds:
        return UNDECIDED, f"still undecided: {named(UNDECIDED)}"
    return MIXED, f"reference better than {named(REF_BETTER)}; equivalent: {named(EQUIVALENT)}"


def face_differences(pairs: list[tuple[Path, Path]]) -> np.ndarray | None:
    """Per-face paired differences ``[pairs, faces]`` (1: only the row's job right, -1: only the
    reference's) of ``(row job dir, reference job dir)`` pairs, from their ``predictions.npz``; None when
    a job has none. Raises ReportError when two paired jobs' faces differ."""
    files = [(a / PREDICTIONS_FILE, b / PREDICTIONS_FILE) for a, b in pairs]
    if any(not f.is_file() for pair in files for f in pair):
        return None
    out = []
    for (mine, ref), (mine_dir, ref_dir) in zip(files, pairs, strict=True):
        a, b = read_predictions(mine), read_predictions(ref)
        if a["ids"].shape != b["ids"].shape or not (a["ids"] == b["ids"]).all():
            raise ReportError(
                f"per-face predictions of {mine_dir.name} ({len(a['ids'])} faces) and {ref_dir.name} "
                f"({len(b['ids'])} faces) are not of the same faces: they cannot be paired"
            )
        out.append(a["correct"].astype(np.int8) - b["correct"].astype(np.int8))
    return np.stack(out)


def decide_comparison(
    comparison: PairedComparison, posterior: Posterior | None, rope: float, decide: float
) -> None:
    """The posterior's ROPE probabilities, TOST p, outcome, the smallest ROPE of equivalence and (when
    undecided) the seeds that would decide it, into ``comparison``; no posterior: undecided."""
    comparison.rope = rope
    if posterior is None:
        comparison.outcome = UNDECIDED
        return
    probs = posterior.probabilities(rope)
    comparison.p_ref_better, comparison.p_rope, comparison.p_row_better = probs
    comparison.p_tost = posterior.tost(rope)
    comparison.outcome = outcome(probs, decide)
    comparison.variance = posterior.variance
    comparison.rope_equivalent = posterior.rope_for_equivalence(decide)
    if comparison.outcome == UNDECIDED:
        comparison.seeds_to_decide = seeds_to_decide(posterior, rope, decide)
