"""Pictures: confusion matrices, table rows and validation curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

# a table row of at least this many jobs (a row over folds) is drawn as its mean validation curve
MEAN_CURVE_FROM = 4


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure (creating the folder). A :class:`~matplotlib.figure.Figure` made
    directly needs no backend and no closing: it is freed with its last reference."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Save a row-normalised confusion matrix (true class per row) with counts and percentages."""
    cm = np.asarray(matrix, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(class_names)
    fig = Figure(figsize=(1.0 + 0.8 * n, 0.8 + 0.7 * n))
    ax = fig.subplots()
    ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}\n{norm[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


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


def save_face_grid(faces, path: str | Path, per_class: int = 8) -> Path:
    """A PNG grid of rendered faces (:class:`~fer_attention.data.synthetic.SyntheticFaces`), one row per
    class, the apex frames of the first subjects first (the picture in docs/datasets.md)."""
    n_cls = len(faces.class_names)
    fig = Figure(figsize=(per_class * 1.1 + 0.9, n_cls * 1.1))
    axes = fig.subplots(n_cls, per_class, squeeze=False)
    for c, name in enumerate(faces.class_names):
        idx = np.flatnonzero(faces.labels == c)
        idx = idx[np.lexsort((faces.subjects[idx], -faces.frames[idx]))][:per_class]
        for j in range(per_class):
            ax = axes[c, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(idx):
                ax.imshow(faces.images[idx[j]], cmap="gray", vmin=0, vmax=255)
        axes[c, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
