"""Paired comparison of two table rows over matching (fold, seed) jobs.

Two rows of a k-fold table are paired job by job: the same fold (same training, validation and test
subjects) and the same seed. The statistics over the paired differences ``d = row - reference``:

- the mean difference and its 95% confidence interval, from the t distribution with n - 1 degrees of
  freedom;
- the corrected resampled t-test of Nadeau & Bengio (2003, "Inference for the generalization error").
  The k training sets of a k-fold protocol overlap, so the differences are correlated and the plain
  variance estimate ``s^2 / n`` is too small. The corrected variance is ``(1/n + n_test/n_train) s^2``.
  On a fixed split repeated over seeds the training set is the same for every job and there is no
  resampling to correct for, so ``n_test/n_train = 0`` and the test is the ordinary paired t-test;
  With k folds repeated over r seeds the n = k r pairs give the corrected repeated k-fold t-test of
  Bouckaert & Frank (2004): variance ``(1/(k r) + n_test/n_train) s^2`` and ``k r - 1`` degrees of
  freedom, the same formula with n = k r;
- Holm's step-down adjustment of the corrected p-values across the rows of one table (:func:`holm`),
  since every row is tested against the same reference;
- the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, two-sided, zero differences dropped), which
  assumes no normality and is not corrected for overlapping training sets or for the many rows;
- wins / ties / losses of the row against the reference.

Fewer than two pairs, or differences that are all equal, give ``None`` (reported as ``n/a``) where a
statistic is undefined.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# differences smaller than this (in accuracy, 0..1) count as ties
TIE_TOLERANCE = 1e-9


@dataclass
class PairedComparison:
    """The comparison of one row with the reference row; differences in accuracy points (0..100)."""

    pairs: int
    mean_diff: float | None
    ci_low: float | None
    ci_high: float | None
    t: float | None
    p_corrected: float | None
    p_wilcoxon: float | None
    wins: int
    ties: int
    losses: int
    test_train_ratio: float
    folds: int = 0
    repeats: int = 0
    p_holm: float | None = None
    # the decision against a region of practical equivalence (fer_attention.reporting.decision)
    rope: float | None = None
    p_ref_better: float | None = None
    p_rope: float | None = None
    p_row_better: float | None = None
    p_tost: float | None = None
    outcome: str | None = None
    variance: str | None = None
    rope_equivalent: float | None = None
    seeds_to_decide: int | None = None
    faces: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def paired_comparison(
    row: np.ndarray,
    reference: np.ndarray,
    test_train_ratio: float = 0.0,
    confidence: float = 0.95,
    folds: int = 0,
    repeats: int = 0,
) -> PairedComparison:
    """Compare paired accuracies of a row and the reference.

    Args:
        row, reference: accuracies (0..1) of the paired jobs, in the same order.
        test_train_ratio: n_test / n_train of one job (0 for a fixed split over seeds); widens the
            variance as in the corrected (repeated) k-fold t-test, and the confidence interval with it.
        confidence: of the interval of the mean difference.
        folds, repeats: k and r of the pairs (recorded for the legend; the test uses n = k r pairs).

    Returns:
        A :class:`PairedComparison` in accuracy points; undefined statistics are ``None``.
    """
    from scipy import stats

    row, reference = np.asarray(row, dtype=float), np.asarray(reference, dtype=float)
    if row.shape != reference.shape:
        raise ValueError(f"paired values need equal lengths, got {row.shape} and {reference.shape}")
    diffs = row - reference
    n = len(diffs)
    wins = int(np.sum(diffs > TIE_TOLERANCE))
    losses = int(np.sum(diffs < -TIE_TOLERANCE))
    out = PairedComparison(
        pairs=n,
        mean_diff=100 * float(diffs.mean()) if n else None,
        ci_low=None,
        ci_high=None,
        t=None,
        p_corrected=None,
        p_wilcoxon=None,
        wins=wins,
        ties=n - wins - losses,
        losses=losses,
        test_train_ratio=float(test_train_ratio),
        folds=int(folds),
        repeats=int(repeats),
    )
    if n < 2:
        return out
    sd = float(diffs.std(ddof=1))
    se = math.sqrt((1.0 / n + test_train_ratio) * sd**2)
    t_crit = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1))
    out.ci_low = 100 * (float(diffs.mean()) - t_crit * se)
    out.ci_high = 100 * (float(diffs.mean()) + t_crit * se)
    if se > 0:
        out.t = float(diffs.mean()) / se
        out.p_corrected = float(2 * stats.t.sf(abs(out.t), df=n - 1))
    if np.any(np.abs(diffs) > TIE_TOLERANCE):
        out.p_wilcoxon = float(stats.wilcoxon(diffs, zero_method="wilcox").pvalue)
    return out


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values of a family of tests (``None`` entries stay ``None`` and are
    not counted): the i-th smallest of m p-values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(order)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def mean_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float] | None:
    """The t-interval of the mean of ``values`` (0..1), in points; None for fewer than two values."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return None
    half = float(stats.t.ppf(0.5 + confidence / 2, df=len(values) - 1)) * values.std(ddof=1)
    half /= math.sqrt(len(values))
    return 100 * (values.mean() - half), 100 * (values.mean() + half)


def format_p(p: float | None) -> str:
    """A p-value for a table: n/a, <0.001 or three decimals."""
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"
