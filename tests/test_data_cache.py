"""The decoded-dataset cache: a hit opens no image file and returns identical arrays; any change to the
files or the settings makes a new key; files are written atomically; a damaged cache is rebuilt."""

from __future__ import annotations

import logging
import os

import numpy as np
import PIL.Image
import pytest

from fer_attention.data import cache, preprocess
from fer_attention.data.cache import load_faces
from fer_attention.data.sources import fer2013 as fer2013_module
from fer_attention.data.sources.ckplus import CLASS_NAMES_7 as CK7
from fer_attention.data.sources.ckplus import CKPlusSource
from fer_attention.data.sources.fer2013 import CLASS_NAMES as FER
from fer_attention.data.sources.fer2013 import FER2013Source
from fer_attention.data.sources.folder import FolderSource
from fer_attention.errors import ConfigError, DataError

try:  # tests/ as a package or as a plain folder on sys.path
    from . import data_fixtures as fx
except ImportError:
    import data_fixtures as fx


def load(source, root, class_names, cache_dir, size=32, **kw):
    return load_faces(source, root, size, class_names, cache_dir=cache_dir, progress=False, **kw)


def forbid_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an image file was opened on a cache hit")

    monkeypatch.setattr(preprocess, "read_gray", refuse)
    monkeypatch.setattr(PIL.Image, "open", refuse)


def assert_same(a, b):
    for name in ("images", "labels", "subjects", "splits", "sequences", "frames", "sources"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert a.class_names == b.class_names and a.skipped == b.skipped


def cache_files(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_second_load_opens_no_image_file(tmp_path, monkeypatch):
    root = fx.ck48_many(tmp_path / "ck48", subjects=4)
    first = load(CKPlusSource(), root, CK7, tmp_path / "cache")
    assert first.info["cache_hit"] is False
    assert len(cache_files(tmp_path / "cache")) == 1
    forbid_decoding(monkeypatch)
    second = load(CKPlusSource(), root, CK7, tmp_path / "cache")
    assert second.info["cache_hit"] is True
    assert_same(first, second)
    assert second.info["cache_file"] == first.info["cache_file"]


def test_csv_is_not_parsed_on_a_hit(tmp_path, monkeypatch):
    fx.make_fer2013_csv(tmp_path / "fer2013.csv", fx.fer2013_standard_rows())
    first = load(FER2013Source(), tmp_path, FER, tmp_path / "cache", size=48)

    def refuse(*a, **k):
        raise AssertionError("CSV parsed on a cache hit")

    monkeypatch.setattr(fer2013_module, "read_fer2013_csv", refuse)
    assert_same(first, load(FER2013Source(), tmp_path, FER, tmp_path / "cache", size=48))


def test_settings_and_files_change_the_key(tmp_path):
    root = fx.ck48_many(tmp_path / "ck48", subjects=4)
    cdir = tmp_path / "cache"
    base = load(CKPlusSource(), root, CK7, cdir).info["cache_file"]
    keys = {base}
    for faces in (
        load(CKPlusSource(), root, CK7, cdir, size=40),  # image size
        load(CKPlusSource(), root, CK7, cdir, face_crop="haar"),  # face crop
        load(CKPlusSource(last_k=2), root, CK7, cdir),  # source settings
    ):
        assert faces.info["cache_hit"] is False
        keys.add(faces.info["cache_file"])
    assert len(keys) == 4
    assert "ckplus_40px_none_" in " ".join(keys) and "ckplus_32px_haar_" in " ".join(keys)
    # auto resolves to the same crop as none here (CK+48): the same cache file
    assert load(CKPlusSource(), root, CK7, cdir, face_crop="auto").info["cache_file"] == base

    # a file moved to another class folder (same size and time): a new key, and the new label
    moved = next((root / "anger").iterdir())
    os.replace(moved, root / "disgust" / moved.name)
    after_move = load(CKPlusSource(), root, CK7, cdir, on_bad_file="skip")
    assert after_move.info["cache_hit"] is False and after_move.info["cache_file"] != base
    # a rewritten file (new content and time)
    target = next((root / "happy").iterdir())
    fx.save(target, fx.flat(3, 50))
    os.utime(target, ns=(1, os.stat(target).st_mtime_ns + 10**9))
    after_edit = load(CKPlusSource(), root, CK7, cdir, on_bad_file="skip")
    assert after_edit.info["cache_hit"] is False


def test_no_cache_dir_writes_nothing(tmp_path):
    root = fx.ck48_many(tmp_path / "ck48", subjects=3)
    for value in (None, ""):
        faces = load(CKPlusSource(), root, CK7, value)
        assert "cache_file" not in faces.info
    assert not (tmp_path / "cache").exists()


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    root = fx.ck48_many(tmp_path / "ck48", subjects=3)
    cdir = tmp_path / "cache"

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(KeyboardInterrupt):
        load(CKPlusSource(), root, CK7, cdir)
    assert cache_files(cdir) == []  # no temporary file, no half-written cache
    monkeypatch.undo()
    load(CKPlusSource(), root, CK7, cdir)
    assert len(cache_files(cdir)) == 1 and cache_files(cdir)[0].endswith(".npz")


def test_damaged_cache_file_is_rebuilt(tmp_path, caplog):
    root = fx.ck48_many(tmp_path / "ck48", subjects=3)
    first = load(CKPlusSource(), root, CK7, tmp_path / "cache")
    with open(first.info["cache_file"], "r+b") as fh:
        fh.truncate(100)
    with caplog.at_level(logging.WARNING):
        again = load(CKPlusSource(), root, CK7, tmp_path / "cache")
    assert "is unreadable" in caplog.text and again.info["cache_hit"] is False
    assert_same(first, again)
    assert load(CKPlusSource(), root, CK7, tmp_path / "cache").info["cache_hit"] is True


def test_cache_remembers_skipped_files(tmp_path):
    fx.make_class_folders(tmp_path / "faces", {"happy": 3})
    (tmp_path / "faces" / "happy" / "zero.png").write_bytes(b"")
    skipped = load(FolderSource(), tmp_path / "faces", ("happy",), tmp_path / "cache", on_bad_file="skip")
    assert len(skipped) == 3 and len(skipped.skipped) == 1
    hit = load(FolderSource(), tmp_path / "faces", ("happy",), tmp_path / "cache", on_bad_file="skip")
    assert hit.info["cache_hit"] is True and hit.skipped == skipped.skipped
    with pytest.raises(DataError, match=r"zero\.png: empty file \(0 bytes\)$"):
        load(FolderSource(), tmp_path / "faces", ("happy",), tmp_path / "cache", on_bad_file="error")


def test_rebuild_ignores_a_matching_cache(tmp_path):
    root = fx.ck48_many(tmp_path / "ck48", subjects=3)
    load(CKPlusSource(), root, CK7, tmp_path / "cache")
    assert load(CKPlusSource(), root, CK7, tmp_path / "cache", rebuild=True).info["cache_hit"] is False


def test_pool_decoding_matches_single_process(tmp_path, monkeypatch):
    root = fx.ck48_many(tmp_path / "ck48", subjects=6)
    single = load(CKPlusSource(), root, CK7, None)
    monkeypatch.setenv("FER_DECODE_WORKERS", "2")
    pooled = load(CKPlusSource(), root, CK7, None)
    assert_same(single, pooled)
    monkeypatch.delenv("FER_DECODE_WORKERS")
    assert cache.decode_workers([root] * 10, "none") == 1


def test_pool_stops_at_the_first_bad_file(tmp_path, monkeypatch):
    root = fx.ck48_many(tmp_path / "ck48", subjects=6)
    broken = sorted((root / "anger").iterdir())[0]
    broken.write_bytes(b"")
    monkeypatch.setenv("FER_DECODE_WORKERS", "2")
    with pytest.raises(DataError, match=rf"^{broken}: empty file \(0 bytes\)$"):
        load(CKPlusSource(), root, CK7, None)


def test_data_min_face_reaches_the_detector_and_keys_only_haar_caches(tmp_path, monkeypatch):
    """``data.min_face`` is the detector's smallest face when faces are cropped with ``haar`` (the same value
    fer-predict uses): it reaches every decode job and makes a new cache key, while a cache of faces that are
    not detected keeps its key; a value outside [0, 1] is one line naming ``data.min_face``."""
    root = fx.ck48_many(tmp_path / "ck48", subjects=2)
    seen = []
    real = cache.decode_item

    def spy(job):
        seen.append(job[4])
        return real(job)

    monkeypatch.setattr(cache, "decode_item", spy)
    load(CKPlusSource(), root, CK7, tmp_path / "c", face_crop="haar", min_face=0.3)
    assert seen and set(seen) == {0.3}
    load(CKPlusSource(), root, CK7, tmp_path / "c", face_crop="haar", min_face=0.2)
    assert len(cache_files(tmp_path / "c")) == 2
    load(CKPlusSource(), root, CK7, tmp_path / "n", face_crop="none", min_face=0.3)
    load(CKPlusSource(), root, CK7, tmp_path / "n", face_crop="none", min_face=0.2)
    assert len(cache_files(tmp_path / "n")) == 1
    with pytest.raises(ConfigError, match=r"^data\.min_face=1\.5 must be a number in \[0, 1\]"):
        load(CKPlusSource(), root, CK7, tmp_path / "n", min_face=1.5)
