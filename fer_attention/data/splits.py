"""Train / val / test index splits: fixed by the dataset, or subject-independent stratified k-fold."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

SPLIT_NAMES = ("train", "val", "test")


def check_folds(num_folds: int, fold: int) -> None:
    """A k-fold protocol needs at least 2 folds and a test fold among them (one-line ValueError)."""
    if num_folds < 2:
        raise ValueError(f"data.num_folds={num_folds} must be at least 2")
    if not 0 <= fold < num_folds:
        raise ValueError(f"data.fold={fold} must be in 0..{num_folds - 1} (data.num_folds={num_folds})")


def fixed_split(splits: np.ndarray, allow_empty: bool = False) -> dict[str, np.ndarray]:
    """Indices of each split named in ``splits`` (one of train / val / test per face); a split with no
    face is an error unless ``allow_empty`` (a summary of a partial copy)."""
    out = {name: np.flatnonzero(splits == name) for name in SPLIT_NAMES}
    for name, idx in out.items():
        if len(idx) == 0 and not allow_empty:
            raise ValueError(f"the dataset's fixed split has no '{name}' faces")
    return out


def subject_kfold_split(
    labels: np.ndarray, subjects: np.ndarray, num_folds: int, fold: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Subject-independent split: fold ``fold`` of ``num_folds`` is the test set, and validation is one
    fold of a second subject-grouped stratified split of the remaining subjects.

    No subject appears in two of train / val / test.
    """
    check_folds(num_folds, fold)
    n_subjects = len(np.unique(subjects))
    if n_subjects < num_folds:
        raise ValueError(
            f"data.num_folds={num_folds} needs at least as many subjects; the dataset has {n_subjects}"
        )
    outer = StratifiedGroupKFold(n_splits=num_folds, shuffle=True, random_state=seed)
    rest, test = list(outer.split(np.zeros(len(labels)), labels, subjects))[fold]
    inner_folds = max(2, num_folds - 1)
    inner = StratifiedGroupKFold(n_splits=inner_folds, shuffle=True, random_state=seed + 1)
    tr, va = next(inner.split(np.zeros(len(rest)), labels[rest], subjects[rest]))
    return {"train": np.sort(rest[tr]), "val": np.sort(rest[va]), "test": np.sort(test)}
