"""fer-report's pictures: table rows and validation curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fer_attention.viz.figures import save_figure

# a table row of at least this many jobs (a row over folds) is drawn as its mean validation curve
MEAN_CURVE_FROM = 4


def plot_rows(
    labels: Sequence[str],
    values: Sequence[np.ndarray],
    intervals: Sequence[tuple[float, float] | None],
    comparisons: Sequence | None,
    reference: str | None,
    path: str | Path,
    title: str = "",
) -> Path:
    """A table's rows as pictures: each job's test accuracy as a point with the row's mean and 95%
    interval (left) and, given a reference, each row's mean paired difference from it with the
    corrected 95% interval (right). ``values`` and intervals are in points (0..100)."""
    panels = 2 if comparisons is not None else 1
    height = max(2.8, 0.42 * len(labels) + 1.4)
    fig = Figure(figsize=(6.0 * panels, height))
    axes = fig.subplots(1, panels, squeeze=False)
    ax = axes[0][0]
    rng = np.random.default_rng(0)
    for i, (vals, ci) in enumerate(zip(values, intervals, strict=True)):
        y = len(labels) - 1 - i
        if len(vals):
            ax.scatter(vals, y + rng.uniform(-0.15, 0.15, len(vals)), s=14, alpha=0.55, color="#4c72b0")
            ax.plot([vals.mean()], [y], "D", color="black", ms=5)
        if ci is not None:
            ax.plot(ci, [y, y], color="black", lw=2)
    ax.set_yticks(range(len(labels)), list(reversed(labels)), fontsize=8)
    ax.set_xlabel("test accuracy per job (%), mean and 95% interval")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=10)
    if comparisons is not None:
        ax = axes[0][1]
        for i, c in enumerate(comparisons):
            y = len(labels) - 1 - i
            if labels[i] == reference:
                ax.text(0.0, y, " reference", va="center", ha="left", fontsize=8, color="grey")
            if c is None or c.mean_diff is None:
                continue
            ax.plot([c.mean_diff], [y], "o", color="#c44e52")
            if c.ci_low is not None:
                ax.plot([c.ci_low, c.ci_high], [y, y], color="#c44e52", lw=2)
        ax.axvline(0.0, color="grey", lw=1)
        ax.set_yticks(range(len(labels)), list(reversed(labels)), fontsize=8)
        ax.set_xlabel("paired difference from the reference (points), 95% interval")
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def mean_curve(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epoch by epoch over jobs (up to the shortest job): mean seconds, mean accuracy and its standard
    deviation."""
    n = min(len(seconds) for seconds, _ in curves)
    seconds = np.stack([s[:n] for s, _ in curves])
    acc = np.stack([a[:n] for _, a in curves])
    return seconds.mean(axis=0), acc.mean(axis=0), acc.std(axis=0)


def plot_curves(
    series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    path: str | Path,
    title: str = "",
    mean_from: int = MEAN_CURVE_FROM,
) -> Path:
    """Validation accuracy against training wall-clock time, one colour per row. ``series`` holds (row
    label, seconds, accuracy in %) per job. A row of fewer than ``mean_from`` jobs draws each job; a larger
    one (a row over folds) draws its jobs faintly and, on top, the epoch-by-epoch mean with a +-1 sd band."""
    rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for label, seconds, acc in series:
        rows.setdefault(label, []).append((np.asarray(seconds), np.asarray(acc)))
    fig = Figure(figsize=(7.0, 4.2))
    ax = fig.subplots()
    for k, (label, curves) in enumerate(rows.items()):
        colour = f"C{k % 10}"
        if len(curves) < mean_from:
            for i, (seconds, acc) in enumerate(curves):
                ax.plot(
                    seconds / 60.0,
                    acc,
                    "-o",
                    ms=2.5,
                    lw=1.2,
                    alpha=0.8,
                    color=colour,
                    label=None if i else label,
                )
            continue
        for seconds, acc in curves:
            ax.plot(seconds / 60.0, acc, "-", lw=0.6, alpha=0.15, color=colour)
        seconds, mean, sd = mean_curve(curves)
        ax.fill_between(seconds / 60.0, mean - sd, mean + sd, color=colour, alpha=0.15, lw=0)
        ax.plot(seconds / 60.0, mean, "-", lw=2.0, color=colour, label=f"{label} (mean of {len(curves)})")
    ax.set_xlabel("training wall-clock time (min; validation after each epoch)")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
