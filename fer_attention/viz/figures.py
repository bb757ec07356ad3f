"""Figures every room draws: saving a figure, a confusion matrix (a run's, a result folder's, the shipped
model's card) and a grid of faces."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


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
