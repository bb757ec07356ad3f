"""Every dataset source parses a tiny generated fixture in its real layout: counts, labels, subjects, splits."""

from __future__ import annotations

import numpy as np
import pytest

from fer_attention.data.cache import load_faces
from fer_attention.data.sources.affectnet import CLASS_NAMES_7 as AFF7
from fer_attention.data.sources.affectnet import CLASS_NAMES_8 as AFF8
from fer_attention.data.sources.affectnet import AffectNetSource
from fer_attention.data.sources.ckplus import CLASS_NAMES_6 as CK6
from fer_attention.data.sources.ckplus import CLASS_NAMES_7 as CK7
from fer_attention.data.sources.ckplus import CKPlusSource
from fer_attention.data.sources.fer2013 import CLASS_NAMES as FER
from fer_attention.data.sources.fer2013 import FER2013Source
from fer_attention.data.sources.ferplus import CLASS_NAMES as FERPLUS
from fer_attention.data.sources.ferplus import FERPlusSource, vote_label
from fer_attention.data.sources.folder import FolderSource
from fer_attention.data.sources.jaffe import CLASS_NAMES_6 as JAFFE6
from fer_attention.data.sources.jaffe import CLASS_NAMES_7 as JAFFE7
from fer_attention.data.sources.jaffe import JAFFESource
from fer_attention.data.sources.oulu_casia import CLASS_NAMES as OULU
from fer_attention.data.sources.oulu_casia import OuluCASIASource
from fer_attention.data.sources.rafdb import CLASS_NAMES as RAF
from fer_attention.data.sources.rafdb import RAFDBSource
from fer_attention.data.sources.sequences import SequenceFolderSource
from fer_attention.errors import DataError

try:  # tests/ as a package or as a plain folder on sys.path
    from . import data_fixtures as fx
except ImportError:
    import data_fixtures as fx


def load(source, root, class_names, size=48, **kw):
    return load_faces(source, root, size, class_names, cache_dir=None, progress=False, **kw)


def split_counts(faces):
    return {s: int((faces.splits == s).sum()) for s in ("train", "val", "test")}


# ----- FER2013 -----
def test_fer2013_csv_labels_splits_and_pixels(tmp_path):
    rows = fx.fer2013_standard_rows()
    fx.make_fer2013_csv(tmp_path / "fer2013.csv", rows)
    for root in (tmp_path, tmp_path / "fer2013.csv"):  # the folder or the CSV itself
        faces = load(FER2013Source(), root, FER)
        assert len(faces) == len(rows)
        assert faces.labels.tolist() == [code for code, _ in rows]  # CSV codes are the class indices
        assert split_counts(faces) == {"train": 14, "val": 2, "test": 2}
        # PublicTest is validation and PrivateTest the test split, the protocol published results use
        assert faces.labels[faces.splits == "val"].tolist() == [3, 6]
        assert faces.labels[faces.splits == "test"].tolist() == [4, 5]
        assert len(np.unique(faces.subjects)) == len(rows)  # each image its own subject
        assert faces.images.shape == (18, 48, 48)
        assert [int(im[0, 0]) for im in faces.images[:3]] == [0, 10, 20]
        assert faces.info["layout"] == "csv"


def test_fer2013_csv_resizes_to_image_size(tmp_path):
    fx.make_fer2013_csv(tmp_path / "fer2013.csv", fx.fer2013_standard_rows())
    faces = load(FER2013Source(), tmp_path, FER, size=64)
    assert faces.images.shape[1:] == (64, 64)
    assert int(faces.images[1].mean()) == 10


def test_fer2013_folders_map_onto_csv_order(tmp_path):
    files = [
        ("train", "angry", "Training_1.jpg"),
        ("train", "happy", "Training_2.jpg"),
        ("train", "neutral", "Training_3.jpg"),
        ("test", "sad", "PublicTest_4.jpg"),
        ("test", "surprise", "PrivateTest_5.jpg"),
        ("test", "disgust", "PrivateTest_6.jpg"),
    ]
    fx.make_fer2013_folders(tmp_path, files)
    faces = load(FER2013Source(), tmp_path, FER)
    got = {
        src.split("/")[-1]: (FER[label], split)
        for src, label, split in zip(faces.sources, faces.labels, faces.splits, strict=True)
    }
    assert got == {
        "Training_1.jpg": ("angry", "train"),
        "Training_2.jpg": ("happy", "train"),
        "Training_3.jpg": ("neutral", "train"),
        "PublicTest_4.jpg": ("sad", "val"),
        "PrivateTest_5.jpg": ("surprise", "test"),
        "PrivateTest_6.jpg": ("disgust", "test"),
    }
    assert FER.index("neutral") == 6 and FER.index("sad") == 4


def test_fer2013_unrecognised_layout(tmp_path):
    (tmp_path / "something").mkdir()
    with pytest.raises(DataError, match=r": not a FER2013 layout; expected fer2013\.csv"):
        load(FER2013Source(), tmp_path, FER)


# ----- FER+ -----
def test_ferplus_vote_rules():
    v = [0] * 10
    assert vote_label([6, 2, 0, 0, 0, 0, 0, 0, 2, 0]) == (0, None)
    assert vote_label([4, 4, 2, 0, 0, 0, 0, 0, 0, 0]) == (None, "tie between the top votes")
    assert vote_label([1, 0, 0, 0, 0, 0, 0, 0, 9, 0]) == (None, "top vote is unknown")
    assert vote_label([0, 0, 0, 0, 0, 0, 0, 0, 0, 10]) == (None, "top vote is NF")
    assert vote_label(v) == (None, "no votes")
    assert vote_label([4, 3, 3, 0, 0, 0, 0, 0, 0, 0], "plurality") == (0, None)
    assert vote_label([4, 3, 3, 0, 0, 0, 0, 0, 0, 0], "majority")[0] is None
    assert vote_label([0, 0, 0, 0, 0, 0, 0, 6, 4, 0], "majority") == (7, None)


def test_ferplus_csv_majority_labels_and_drops(tmp_path):
    votes = [
        ("Training", "fer0000000.png", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]),  # happiness
        ("Training", "fer0000001.png", [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]),  # tie: dropped
        ("Training", "fer0000002.png", [0, 0, 0, 0, 0, 0, 0, 7, 3, 0]),  # contempt
        ("Training", "", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # no image name: dropped
        ("PublicTest", "fer0000004.png", [1, 0, 0, 0, 0, 0, 0, 0, 9, 0]),  # unknown: dropped
        ("PublicTest", "fer0000005.png", [0, 0, 8, 2, 0, 0, 0, 0, 0, 0]),  # surprise
        ("PrivateTest", "fer0000006.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),  # not a face: dropped
        ("PrivateTest", "fer0000007.png", [0, 0, 0, 0, 6, 4, 0, 0, 0, 0]),  # anger
    ]
    fx.make_ferplus(tmp_path, votes)
    faces = load(FERPlusSource(), tmp_path, FERPLUS)
    assert [FERPLUS[i] for i in faces.labels] == ["happiness", "contempt", "surprise", "anger"]
    assert faces.splits.tolist() == ["train", "train", "val", "test"]
    # the faces are the fer2013.csv rows with the same index
    assert [int(im[0, 0]) for im in faces.images] == [0, 20, 50, 70]
    assert faces.info["excluded"] == {
        "tie between the top votes": 1,
        "no image name (removed by FER+)": 1,
        "top vote is unknown": 1,
        "top vote is NF": 1,
    }


def test_ferplus_rows_must_align(tmp_path):
    fx.make_ferplus(tmp_path, [("Training", "fer0.png", [10] + [0] * 9)])
    fx.make_fer2013_csv(tmp_path / "fer2013.csv", [(0, "Training"), (1, "Training")])
    with pytest.raises(
        DataError,
        match=r"fer2013new\.csv: 1 rows but .*fer2013\.csv has 2; the two files must be row-aligned",
    ):
        load(FERPlusSource(), tmp_path, FERPLUS)


def test_ferplus_needs_fer2013_csv(tmp_path):
    fx.make_ferplus(tmp_path, [("Training", "fer0.png", [10] + [0] * 9)])
    (tmp_path / "fer2013.csv").unlink()
    with pytest.raises(DataError, match=r"FER\+ labels found but not the FER2013 images"):
        load(FERPlusSource(), tmp_path, FERPLUS)


def test_ferplus_generated_folders(tmp_path):
    fx.make_ferplus_folders(
        tmp_path,
        {
            "FER2013Train": [
                ("fer0000000.png", [0, 9, 1, 0, 0, 0, 0, 0, 0, 0]),
                ("fer0000001.png", [5, 5] + [0] * 8),
            ],
            "FER2013Valid": [("fer0000002.png", [0, 0, 0, 10, 0, 0, 0, 0, 0, 0])],
            "FER2013Test": [("fer0000003.png", [0, 0, 0, 0, 0, 0, 10, 0, 0, 0])],
        },
    )
    faces = load(FERPlusSource(), tmp_path, FERPLUS)
    assert [FERPLUS[i] for i in faces.labels] == ["happiness", "sadness", "fear"]
    assert faces.splits.tolist() == ["train", "val", "test"]
    assert faces.info["layout"] == "folders"


# ----- CK+ -----
def test_ckplus_original_last_k_and_subjects(tmp_path):
    fx.make_ckplus_original(
        tmp_path,
        [
            ("S005", "001", 3, 6),  # disgust
            ("S005", "002", None, 4),  # unlabelled: not used
            ("S010", "001", 2, 5),  # contempt
            ("S011", "003", 7, 3),  # surprise
        ],
    )
    faces = load(CKPlusSource(last_k=3), tmp_path, CK7, face_crop="none")
    assert len(faces) == 9
    assert [CK7[i] for i in faces.labels] == ["disgust"] * 3 + ["contempt"] * 3 + ["surprise"] * 3
    assert faces.subjects.tolist() == ["S005"] * 3 + ["S010"] * 3 + ["S011"] * 3
    assert faces.frames.tolist() == [4, 5, 6, 3, 4, 5, 1, 2, 3]
    assert [int(im.mean()) for im in faces.images[:3]] == [40, 50, 60]  # the last three frames
    assert faces.sequences.tolist()[0] == "S005_001"
    assert faces.info["layout"] == "original"


def test_ckplus_original_first_frame_neutral_and_six_classes(tmp_path):
    fx.make_ckplus_original(tmp_path, [("S005", "001", 3, 6), ("S010", "001", 2, 5)])
    names = (*CK6, "neutral")
    faces = load(
        CKPlusSource(last_k=2, first_frame_neutral=True, classes=6), tmp_path, names, face_crop="none"
    )
    # contempt's sequence is left out; disgust: last 2 frames + first frame as neutral
    assert [names[i] for i in faces.labels] == ["disgust", "disgust", "neutral"]
    assert [int(im.mean()) for im in faces.images] == [50, 60, 10]
    assert faces.info["excluded"] == {"contempt not among the classes": 1}


def test_ckplus_auto_face_crop_is_haar_for_original_and_none_for_ck48(tmp_path):
    fx.make_ckplus_original(tmp_path / "orig", [("S005", "001", 3, 4)])
    fx.make_ck48(tmp_path / "ck48", [("S005", "001", "disgust", 3)])
    src = CKPlusSource()
    assert src.default_face_crop(tmp_path / "orig") == "haar"
    assert src.default_face_crop(tmp_path / "ck48") == "none"
    faces = load(src, tmp_path / "orig", CK7)  # flat frames: no face found, whole image used and counted
    assert faces.info["face_crop"] == "haar" and faces.info["face_crop_fallbacks"] == 3


def test_ck48_layout(tmp_path):
    fx.make_ck48(
        tmp_path,
        [
            ("S005", "001", "anger", 3),
            ("S005", "002", "happy", 3),
            ("S010", "004", "contempt", 3),
            ("S011", "001", "surprise", 3),
        ],
    )
    faces = load(CKPlusSource(), tmp_path, CK7)
    assert len(faces) == 12
    assert sorted(set(faces.subjects.tolist())) == ["S005", "S010", "S011"]
    assert np.bincount(faces.labels, minlength=7).tolist() == [3, 1 * 3, 0, 0, 3, 0, 3]
    six = load(CKPlusSource(classes=6), tmp_path, CK6)
    assert len(six) == 9 and "contempt" not in [CK6[i] for i in six.labels]
    last2 = load(CKPlusSource(last_k=2), tmp_path, CK7)
    assert len(last2) == 8 and set(last2.frames.tolist()) == {11, 12}


def test_ck48_first_frame_neutral_is_refused(tmp_path):
    fx.make_ck48(tmp_path, [("S005", "001", "anger", 3)])
    with pytest.raises(DataError, match="first_frame_neutral=true needs the original CK\\+ release"):
        load(CKPlusSource(first_frame_neutral=True), tmp_path, (*CK7, "neutral"))


def test_ckplus_class_names_must_match_settings(tmp_path):
    fx.make_ck48(tmp_path, [("S005", "001", "anger", 3)])
    with pytest.raises(
        DataError,
        match=r"data\.class_names=\[.*\] but dataset 'ckplus' \(.*classes=6\) has \['anger', 'disgust'",
    ):
        load(CKPlusSource(classes=6), tmp_path, CK7)


# ----- JAFFE -----
@pytest.mark.parametrize("nested", [False, True])
def test_jaffe_labels_from_file_names(tmp_path, nested):
    fx.make_jaffe(tmp_path, nested=nested)
    faces = load(JAFFESource(), tmp_path, JAFFE7, face_crop="none")
    assert len(faces) == 21
    assert sorted(set(faces.subjects.tolist())) == ["KA", "KL", "KM"]
    assert np.bincount(faces.labels).tolist() == [3] * 7
    by_name = {
        src.split("/")[-1]: JAFFE7[label] for src, label in zip(faces.sources, faces.labels, strict=True)
    }
    assert by_name["KA.AN1.1.tiff"] == "angry" and by_name["KL.NE1.12.tiff"] == "neutral"
    six = load(JAFFESource(classes=6), tmp_path, JAFFE6, face_crop="none")
    assert len(six) == 18


# ----- Oulu-CASIA -----
def test_oulu_casia_last_k_and_subset(tmp_path):
    fx.make_oulu(tmp_path, frames=5)
    fx.make_oulu(tmp_path, subjects=("P009",), frames=2, modality="NI", illumination="Dark")
    faces = load(OuluCASIASource(), tmp_path, OULU, face_crop="none")
    assert len(faces) == 3 * 6 * 3
    assert sorted(set(faces.subjects.tolist())) == ["P001", "P002", "P003"]
    assert np.bincount(faces.labels).tolist() == [9] * 6
    assert sorted(set(faces.frames.tolist())) == [2, 3, 4]
    assert abs(int(faces.images[0].mean()) - 80) <= 2
    ni = load(
        OuluCASIASource(modality="NI", illumination="Dark", last_k=1),
        tmp_path / "OriginalImg",
        OULU,
        face_crop="none",
    )
    assert len(ni) == 6 and set(ni.subjects.tolist()) == {"P009"}


def test_oulu_casia_missing_subset(tmp_path):
    fx.make_oulu(tmp_path, subjects=("P001",), frames=1)
    with pytest.raises(DataError, match=r"no OriginalImg/NI/Weak/ folder"):
        load(OuluCASIASource(modality="NI", illumination="Weak"), tmp_path, OULU)


# ----- RAF-DB -----
def test_rafdb_labels_and_fixed_split_with_carved_val(tmp_path):
    fx.make_rafdb(tmp_path, fx.rafdb_entries(42, 14))
    faces = load(RAFDBSource(), tmp_path, RAF)
    assert len(faces) == 56
    assert split_counts(faces) == {"train": 35, "val": 7, "test": 14}
    assert np.bincount(faces.labels[faces.splits == "val"], minlength=7).tolist() == [1] * 7  # stratified
    by_name = {src.split("/")[-1]: RAF[label] for src, label in zip(faces.sources, faces.labels, strict=True)}
    assert (
        by_name["train_00001_aligned.jpg"] == "surprise"
        and by_name["test_0007.jpg".replace(".jpg", "_aligned.jpg")] == "neutral"
    )
    again = load(RAFDBSource(), tmp_path, RAF)
    assert again.splits.tolist() == faces.splits.tolist()  # the same validation faces every time
    other = load(RAFDBSource(seed=1), tmp_path, RAF)
    assert other.splits.tolist() != faces.splits.tolist()


def test_rafdb_basic_folder_and_code_folders(tmp_path):
    fx.make_rafdb(tmp_path / "RAF" / "basic", fx.rafdb_entries(14, 7))
    assert len(load(RAFDBSource(), tmp_path / "RAF", RAF)) == 21
    for split, n in (("train", 28), ("test", 7)):
        for i in range(n):
            fx.save(
                tmp_path / "kaggle" / "DATASET" / split / str(i % 7 + 1) / f"{split}_{i}.jpg", fx.flat(50)
            )
    faces = load(RAFDBSource(), tmp_path / "kaggle", RAF)
    # at least one validation face per class (here 10% of 4 rounds to 0)
    assert split_counts(faces) == {"train": 21, "val": 7, "test": 7}
    assert faces.info["layout"] == "folders"


# ----- AffectNet -----
def test_affectnet_classes_exclusions_split_and_box_crop(tmp_path):
    train = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 4
    fx.make_affectnet(tmp_path, train, [0, 1, 2, 3, 4, 5, 6, 7, 9])
    faces = load(AffectNetSource(classes=7, val_fraction=0.25), tmp_path, AFF7, size=32)
    assert split_counts(faces) == {"train": 21, "val": 7, "test": 7}
    assert faces.info["face_crop"] == "box"
    assert faces.info["excluded"] == {
        "contempt not among the classes": 5,
        "expression 8 (none)": 4,
        "expression 9 (uncertain)": 5,
        "expression 10 (no face)": 4,
    }
    assert faces.images.min() > 200  # the face box (white) was cropped, not the black frame
    eight = load(AffectNetSource(classes=8, val_fraction=0.25), tmp_path, AFF8, size=32)
    assert split_counts(eight) == {"train": 24, "val": 8, "test": 8}
    whole = load(AffectNetSource(classes=8), tmp_path, AFF8, size=32, face_crop="none")
    assert whole.images.min() == 0


# ----- generic folders and sequences -----
def test_folder_kfold_layout_and_subject_regex(tmp_path):
    fx.make_class_folders(tmp_path / "plain", {"Happy": 3, "sad": 2})
    faces = load(FolderSource(), tmp_path / "plain", ("happy", "sad"))
    assert faces.splits is None and len(np.unique(faces.subjects)) == 5
    assert np.bincount(faces.labels).tolist() == [3, 2]
    for cls in ("happy", "sad"):
        for s in ("S1", "S2", "S3"):
            fx.save(tmp_path / "subj" / cls / f"{s}_{cls}.png", fx.flat(9))
    by_subject = load(FolderSource(subject_regex=r"^(S\d+)_"), tmp_path / "subj", ("happy", "sad"))
    assert sorted(set(by_subject.subjects.tolist())) == ["S1", "S2", "S3"]


def test_folder_split_folders_and_folder_names(tmp_path):
    for split, n in (("train", 10), ("validation", 2), ("test", 3)):
        fx.make_class_folders(tmp_path / split, {"1": n, "2": n})
    faces = load(FolderSource(folders=["1", "2"]), tmp_path, ("pos", "neg"))
    assert split_counts(faces) == {"train": 20, "val": 4, "test": 6}
    no_val = tmp_path / "noval"
    fx.make_class_folders(no_val / "train", {"a": 10, "b": 10})
    fx.make_class_folders(no_val / "test", {"a": 2, "b": 2})
    carved = load(FolderSource(val_fraction=0.2), no_val, ("a", "b"))
    assert split_counts(carved) == {"train": 16, "val": 4, "test": 4}


def test_sequences_last_k_and_first_frame_neutral(tmp_path):
    fx.make_sequences(tmp_path, expressions=("Happy", "sad"), frames=4)
    names = ("happy", "sad", "neutral")
    faces = load(SequenceFolderSource(last_k=2), tmp_path, names)
    assert len(faces) == 3 * 2 * 2
    assert sorted(set(faces.subjects.tolist())) == ["alice", "bob", "carol"]
    assert sorted({int(im.mean()) for im in faces.images}) == [60, 80]
    with_neutral = load(SequenceFolderSource(last_k=2, first_frame_neutral=True), tmp_path, names)
    assert np.bincount(with_neutral.labels).tolist() == [6, 6, 6]
    assert {
        int(im.mean()) for im, lab in zip(with_neutral.images, with_neutral.labels, strict=True) if lab == 2
    } == {20}


def test_sequences_natural_frame_order(tmp_path):
    for f in (1, 2, 9, 10, 11):
        fx.save(tmp_path / "s1" / "happy" / f"{f}.png", fx.flat(f))
    faces = load(SequenceFolderSource(last_k=3), tmp_path, ("happy",))
    assert sorted(int(im.mean()) for im in faces.images) == [9, 10, 11]


def test_fer2013_folders_without_prefixes_split_by_folder(tmp_path):
    files = [("train", cls, f"im{i}.png") for i, cls in enumerate(["angry", "happy"] * 10)]
    files += [("test", "sad", "im100.png"), ("test", "neutral", "im101.png")]
    fx.make_fer2013_folders(tmp_path, files)
    faces = load(FER2013Source(val_fraction=0.2), tmp_path, FER)
    assert split_counts(faces) == {"train": 16, "val": 4, "test": 2}
    assert faces.info["val_carved_from_train"] == 4
