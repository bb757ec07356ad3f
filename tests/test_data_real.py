"""Integration tests on the real datasets in ../shared/data (skipped where the folder is absent)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fer_attention.data.cache import load_faces
from fer_attention.data.sources.ckplus import CLASS_NAMES_7 as CK7
from fer_attention.data.sources.ckplus import CKPlusSource
from fer_attention.data.sources.fer2013 import CLASS_NAMES as FER
from fer_attention.data.sources.fer2013 import FER2013Source
from fer_attention.data.splits import subject_kfold_split

try:
    from .data_fixtures import SHARED_DATA
except ImportError:
    from data_fixtures import SHARED_DATA

FER2013 = SHARED_DATA / "fer2013"
CKPLUS48 = SHARED_DATA / "ckplus48"

# per class in FER2013's code order: angry, disgust, fear, happy, sad, surprise, neutral
FER2013_COUNTS = {
    "train": [3995, 436, 4097, 7215, 4830, 3171, 4965],
    "val": [467, 56, 496, 895, 653, 415, 607],
    "test": [491, 55, 528, 879, 594, 416, 626],
}


@pytest.fixture(scope="session")
def fer2013_cache(tmp_path_factory):
    if not FER2013.is_dir():
        pytest.skip(f"{FER2013} is not here")
    cache_dir = tmp_path_factory.mktemp("fer2013_cache")
    start = time.perf_counter()
    faces = load_faces(FER2013Source(), FER2013, 48, FER, cache_dir=cache_dir, progress=False)
    return faces, cache_dir, time.perf_counter() - start


def test_fer2013_usage_splits_and_class_counts(fer2013_cache):
    faces, _, seconds = fer2013_cache
    assert seconds < 60, f"building the FER2013 cache took {seconds:.0f} s"
    assert faces.images.shape == (35887, 48, 48) and faces.info["layout"] == "folders"
    assert {s: int((faces.splits == s).sum()) for s in ("train", "val", "test")} == {
        "train": 28709,
        "val": 3589,
        "test": 3589,
    }
    for split, counts in FER2013_COUNTS.items():
        assert np.bincount(faces.labels[faces.splits == split], minlength=7).tolist() == counts, split
    assert all(
        s.split("/")[-1].startswith({"train": "Training_", "val": "PublicTest_", "test": "PrivateTest_"}[sp])
        for s, sp in zip(faces.sources[::97], faces.splits[::97], strict=True)
    )
    assert len(np.unique(faces.subjects)) == len(faces) and faces.skipped == []


def test_fer2013_loads_from_cache_in_seconds(fer2013_cache):
    first, cache_dir, _ = fer2013_cache
    start = time.perf_counter()
    faces = load_faces(FER2013Source(), FER2013, 48, FER, cache_dir=cache_dir, progress=False)
    seconds = time.perf_counter() - start
    assert faces.info["cache_hit"] is True
    assert np.array_equal(faces.images, first.images) and np.array_equal(faces.labels, first.labels)
    assert seconds < 10, f"loading the FER2013 cache took {seconds:.1f} s"


@pytest.mark.skipif(not CKPLUS48.is_dir(), reason=f"{CKPLUS48} is not here")
def test_ckplus48_subjects_and_subject_disjoint_folds(tmp_path):
    faces = load_faces(CKPlusSource(), CKPLUS48, 48, CK7, cache_dir=tmp_path, progress=False)
    assert len(faces) == 981 and faces.info["layout"] == "ck48"
    assert len(np.unique(faces.subjects)) == 118
    assert len(np.unique(faces.sequences)) == 327
    assert np.bincount(faces.labels).tolist() == [135, 54, 177, 75, 207, 84, 249]
    tests = []
    for fold in range(10):
        split = subject_kfold_split(faces.labels, faces.subjects, 10, fold, seed=0)
        subjects = {k: set(faces.subjects[v].tolist()) for k, v in split.items()}
        assert not (
            subjects["train"] & subjects["val"]
            or subjects["train"] & subjects["test"]
            or subjects["val"] & subjects["test"]
        )
        assert sum(len(v) for v in split.values()) == 981
        tests.append(split["test"])
    assert sorted(np.concatenate(tests).tolist()) == list(range(981))
