"""Bad input: with data.on_bad_file=error one clear DataError line naming the file and the reason; with
skip the input is left out, counted, listed in FaceArrays.skipped and logged. Never a wrong label."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fer_attention.data.cache import load_faces
from fer_attention.data.records import FaceArrays
from fer_attention.data.sources.affectnet import CLASS_NAMES_7 as AFF7
from fer_attention.data.sources.affectnet import AffectNetSource
from fer_attention.data.sources.ckplus import CLASS_NAMES_7 as CK7
from fer_attention.data.sources.ckplus import CKPlusSource
from fer_attention.data.sources.fer2013 import CLASS_NAMES as FER
from fer_attention.data.sources.fer2013 import FER2013Source
from fer_attention.data.sources.folder import FolderSource
from fer_attention.data.sources.jaffe import CLASS_NAMES_7 as JAFFE7
from fer_attention.data.sources.jaffe import JAFFESource
from fer_attention.data.sources.rafdb import CLASS_NAMES as RAF
from fer_attention.data.sources.rafdb import RAFDBSource
from fer_attention.errors import DataError

try:  # tests/ as a package or as a plain folder on sys.path
    from . import data_fixtures as fx
except ImportError:
    import data_fixtures as fx


def load(source, root, class_names, **kw):
    kw.setdefault("face_crop", "none")
    return load_faces(source, root, 32, class_names, cache_dir=None, progress=False, **kw)


def test_corrupt_image(tmp_path):
    fx.make_class_folders(tmp_path, {"happy": 3, "sad": 2})
    bad = tmp_path / "happy" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(DataError) as err:
        load(FolderSource(), tmp_path, ("happy", "sad"))
    assert str(err.value).startswith(f"{bad}: cannot decode image (")
    assert "\n" not in str(err.value)


def test_truncated_jpeg(tmp_path):
    fx.make_class_folders(tmp_path, {"happy": 1})
    fx.save(tmp_path / "happy" / "t.jpg", np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    data = (tmp_path / "happy" / "t.jpg").read_bytes()
    (tmp_path / "happy" / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"happy/t\.jpg: cannot decode image \(.*truncated"):
        load(FolderSource(), tmp_path, ("happy",))


def test_zero_byte_image(tmp_path):
    fx.make_jaffe(tmp_path)
    empty = tmp_path / "KA.HA2.99.tiff"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=rf"^{empty}: empty file \(0 bytes\)$"):
        load(JAFFESource(), tmp_path, JAFFE7)


def test_skip_lists_counts_and_warns(tmp_path, caplog):
    fx.make_jaffe(tmp_path)
    (tmp_path / "KA.HA2.99.tiff").write_bytes(b"")
    (tmp_path / "KA.XX1.98.tiff").write_bytes(b"whatever")
    (tmp_path / "notjaffe.tiff").write_bytes(b"whatever")
    faces = load(JAFFESource(), tmp_path, JAFFE7, on_bad_file="skip")
    assert len(faces) == 21
    assert sorted(faces.skipped) == sorted(
        [
            (str(tmp_path / "KA.HA2.99.tiff"), "empty file (0 bytes)"),
            (
                str(tmp_path / "KA.XX1.98.tiff"),
                "unknown expression code 'XX' (expected one of AN, DI, FE, HA, NE, SA, SU)",
            ),
            (
                str(tmp_path / "notjaffe.tiff"),
                "file name does not match JAFFE's <subject>.<code><n>.<number>.tiff (e.g. KA.AN1.39.tiff)",
            ),
        ]
    )
    # the datamodule logs the count
    from fer_attention.data.datamodule import FaceDataModule

    dm = FaceDataModule(
        name="jaffe",
        source={"_target_": "fer_attention.data.sources.jaffe.JAFFESource"},
        class_names=JAFFE7,
        image_size=32,
        root=str(tmp_path),
        num_folds=3,
        face_crop="none",
        on_bad_file="skip",
        progress=False,
    )
    with caplog.at_level(logging.WARNING):
        dm.load()
    assert "skipped 3 bad input(s) (data.on_bad_file=skip)" in caplog.text


def test_csv_row_with_wrong_pixel_count(tmp_path):
    rows = fx.fer2013_standard_rows()
    rows[2] = (2, "Training", " ".join(["7"] * 2000))
    csv_path = fx.make_fer2013_csv(tmp_path / "fer2013.csv", rows)
    with pytest.raises(DataError, match=rf"^{csv_path}:4: expected 2304 pixels \(48x48\), got 2000$"):
        load(FER2013Source(), tmp_path, FER)
    faces = load(FER2013Source(), tmp_path, FER, on_bad_file="skip")
    assert len(faces) == len(rows) - 1 and faces.skipped == [
        (f"{csv_path}:4", "expected 2304 pixels (48x48), got 2000")
    ]
    # the rows after the bad one keep their own labels
    assert faces.labels.tolist() == [code for i, (code, *_) in enumerate(rows) if i != 2]


def test_csv_bad_pixel_values_and_unknown_codes(tmp_path):
    rows = fx.fer2013_standard_rows()
    rows[0] = (0, "Training", " ".join(["300"] * 2304))
    rows[1] = (9, "Training")
    rows[3] = (3, "Validation")
    csv_path = fx.make_fer2013_csv(tmp_path / "fer2013.csv", rows)
    faces = load(FER2013Source(), tmp_path, FER, on_bad_file="skip")
    assert faces.skipped == [
        (f"{csv_path}:2", "pixel values must be integers 0-255"),
        (f"{csv_path}:3", "unknown emotion code '9' (expected 0-6)"),
        (f"{csv_path}:5", "unknown Usage 'Validation' (expected Training, PublicTest, PrivateTest)"),
    ]
    with pytest.raises(DataError, match=rf"^{csv_path}:2: pixel values must be integers 0-255$"):
        load(FER2013Source(), tmp_path, FER)


def test_unknown_class_folder(tmp_path):
    fx.make_ck48(tmp_path, [("S005", "001", "anger", 3), ("S006", "001", "angry", 3)])
    with pytest.raises(
        DataError,
        match=rf"^{tmp_path / 'angry'}: unknown class folder 'angry' \(expected one of anger, contempt",
    ):
        load(CKPlusSource(), tmp_path, CK7)
    faces = load(CKPlusSource(), tmp_path, CK7, on_bad_file="skip")
    assert len(faces) == 3 and len(faces.skipped) == 1  # the folder is listed once


def test_unknown_folder_in_generic_source(tmp_path):
    fx.make_class_folders(tmp_path, {"happy": 2, "sad": 2, "meh": 4})
    with pytest.raises(
        DataError, match=r"/meh: unknown class folder 'meh' \(4 images; expected one of happy, sad\)$"
    ):
        load(FolderSource(), tmp_path, ("happy", "sad"))


def test_unknown_label_codes(tmp_path):
    fx.make_ckplus_original(tmp_path / "ck", [("S005", "001", 3, 4), ("S006", "001", 9, 4)])
    with pytest.raises(
        DataError,
        match=r"S006_001_00000004_emotion\.txt: unknown emotion code '9\.0000000e\+00' \(expected 1-7",
    ):
        load(CKPlusSource(), tmp_path / "ck", CK7)
    fx.make_rafdb(tmp_path / "raf", [("train_00001.jpg", 1), ("train_00002.jpg", 8), ("test_0001.jpg", 2)])
    with pytest.raises(
        DataError, match=r"list_patition_label\.txt:2: unknown label code '8' \(expected 1-7\)$"
    ):
        load(RAFDBSource(), tmp_path / "raf", RAF)
    fx.make_affectnet(tmp_path / "aff", [0, 1, 12], [0])
    with pytest.raises(DataError, match=r"training\.csv:4: unknown expression code 12 \(expected 0-10\)$"):
        load(AffectNetSource(), tmp_path / "aff", AFF7)


def test_missing_listed_image(tmp_path):
    fx.make_rafdb(tmp_path, [("train_00001.jpg", 1), ("test_0001.jpg", 2)])
    (tmp_path / "Image" / "aligned" / "test_0001_aligned.jpg").unlink()
    with pytest.raises(
        DataError, match=r"test_0001_aligned\.jpg: listed in list_patition_label\.txt line 2 but missing$"
    ):
        load(RAFDBSource(), tmp_path, RAF)


def test_subject_regex_mismatch_is_never_a_silent_subject(tmp_path):
    fx.save(tmp_path / "happy" / "S1_a.png", fx.flat(1))
    fx.save(tmp_path / "happy" / "nosubject.png", fx.flat(1))
    with pytest.raises(
        DataError,
        match=r"nosubject\.png: file name does not match data\.source\.subject_regex='\^\(S\\\\d\+\)_'$",
    ):
        load(FolderSource(subject_regex=r"^(S\d+)_"), tmp_path, ("happy",))


def test_empty_dataset(tmp_path):
    (tmp_path / "anger").mkdir()
    with pytest.raises(
        DataError, match=rf"^{tmp_path}: no images found for dataset 'ckplus'; expected cohn-kanade-images/"
    ):
        load(CKPlusSource(), tmp_path, CK7)
    with pytest.raises(DataError, match="the dataset is empty"):
        FaceArrays(np.zeros((0, 4, 4), np.uint8), np.zeros(0), np.zeros(0), ("a",))


def test_all_inputs_bad(tmp_path):
    (tmp_path / "happy").mkdir()
    (tmp_path / "happy" / "a.png").write_bytes(b"")
    with pytest.raises(
        DataError,
        match=r"no usable images for dataset 'folder' \(1 bad inputs skipped, first: .*a\.png: empty file",
    ):
        load(FolderSource(), tmp_path, ("happy",), on_bad_file="skip")


def test_nonexistent_and_unset_root(tmp_path):
    with pytest.raises(DataError, match=rf"^{tmp_path / 'nope'}: no such file or directory \(data\.root\)$"):
        load(CKPlusSource(), tmp_path / "nope", CK7)
    with pytest.raises(DataError, match=r"^data\.root is not set: pass data\.root=/path/to/ckplus"):
        load(CKPlusSource(), "???", CK7)


def test_bad_option_values(tmp_path):
    fx.make_class_folders(tmp_path, {"happy": 1})
    with pytest.raises(DataError, match=r"data\.on_bad_file='ignore' is not one of error, skip"):
        load(FolderSource(), tmp_path, ("happy",), on_bad_file="ignore")
    with pytest.raises(DataError, match=r"data\.face_crop='mtcnn' is not one of auto, none, haar, box"):
        load(FolderSource(), tmp_path, ("happy",), face_crop="mtcnn")
    with pytest.raises(
        DataError, match=r"data\.face_crop=box but dataset 'folder' has no face boxes; use haar or none"
    ):
        load(FolderSource(), tmp_path, ("happy",), face_crop="box")
