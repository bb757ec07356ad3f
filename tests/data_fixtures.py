"""Tiny datasets in each real format, written into a tmp dir by the data tests (no dataset images are
committed). Images are flat grey levels that encode something checkable (a frame number, a row index)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def flat(value: int, size: int = 32) -> np.ndarray:
    return np.full((size, size), int(value), dtype=np.uint8)


def save(path: Path, array: np.ndarray, mode: str | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path, **kwargs)
    return path


# ----- FER2013 / FER+ -----
FER_USAGES = ("Training", "PublicTest", "PrivateTest")


def fer_pixels(value: int) -> str:
    return " ".join([str(value)] * 2304)


def make_fer2013_csv(path: Path, rows: list[tuple]) -> Path:
    """``rows``: ``(emotion, usage)`` (pixels all equal to 10 * row index) or ``(emotion, usage, pixels)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for i, row in enumerate(rows):
            pixels = row[2] if len(row) > 2 else fer_pixels(10 * i % 256)
            w.writerow([row[0], pixels, row[1]])
    return path


def fer2013_standard_rows() -> list[tuple[int, str]]:
    """14 rows: every class twice over Training, plus 2 PublicTest and 2 PrivateTest... (order: code, usage)."""
    rows = [(code, "Training") for code in range(7)] + [(code, "Training") for code in range(7)]
    rows += [(3, "PublicTest"), (6, "PublicTest"), (4, "PrivateTest"), (5, "PrivateTest")]
    return rows


def make_fer2013_folders(root: Path, files: list[tuple[str, str, str]]) -> Path:
    """``files``: ``(split folder, class folder, file name)``; each a flat 48x48 JPEG."""
    for i, (split, cls, name) in enumerate(files):
        save(root / split / cls / name, flat(20 + 10 * i, 48), quality=95)
    return root


FERPLUS_HEADER = [
    "Usage",
    "Image name",
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
]


def make_ferplus(root: Path, votes: list[tuple[str, str, list[int]]]) -> Path:
    """``votes``: ``(usage, image name, 10 vote counts)`` per row; fer2013.csv gets matching rows."""
    make_fer2013_csv(root / "fer2013.csv", [(0, usage) for usage, _, _ in votes])
    with open(root / "fer2013new.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(FERPLUS_HEADER)
        for usage, name, v in votes:
            w.writerow([usage, name, *v])
    return root


def make_ferplus_folders(root: Path, rows: dict[str, list[tuple[str, list[int]]]]) -> Path:
    for folder, entries in rows.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        with open(root / folder / "label.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            for i, (name, v) in enumerate(entries):
                save(root / folder / name, flat(30 + i, 48))
                w.writerow([name, "(0, 0, 48, 48)", *v])
    return root


# ----- CK+ -----
def make_ckplus_original(root: Path, sequences: list[tuple[str, str, float | None, int]]) -> Path:
    """``sequences``: ``(subject, sequence, emotion code or None, number of frames)``; frame f (1-based)
    has grey level 10 * f."""
    for subject, seq, code, n in sequences:
        for f in range(1, n + 1):
            name = f"{subject}_{seq}_{f:08d}.png"
            save(root / "cohn-kanade-images" / subject / seq / name, flat(10 * f, 64))
        if code is not None:
            txt = root / "Emotion" / subject / seq / f"{subject}_{seq}_{n:08d}_emotion.txt"
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text(f"   {float(code):.7e}\n")
    return root


def make_ck48(root: Path, sequences: list[tuple[str, str, str, int]]) -> Path:
    """``sequences``: ``(subject, sequence, class folder, frames)``: the last ``frames`` frames, numbered
    from 10, grey level 10 * frame number."""
    for subject, seq, cls, n in sequences:
        for f in range(10, 10 + n):
            save(root / cls / f"{subject}_{seq}_{f:08d}.png", flat(10 * f % 256, 48))
    return root


def ck48_many(root: Path, subjects: int = 12) -> Path:
    """``subjects`` subjects, each with one 3-frame sequence of 3 of the 7 classes."""
    classes = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
    seqs = []
    for s in range(subjects):
        for j in range(3):
            seqs.append((f"S{100 + s:03d}", f"{j + 1:03d}", classes[(s + j) % 7], 3))
    return make_ck48(root, seqs)


# ----- JAFFE -----
JAFFE_CODES = ("AN", "DI", "FE", "HA", "NE", "SA", "SU")


def make_jaffe(root: Path, subjects=("KA", "KL", "KM"), nested: bool = False, size: int = 64) -> Path:
    number = 1
    for s in subjects:
        for code in JAFFE_CODES:
            folder = root / s if nested else root
            save(folder / f"{s}.{code}1.{number}.tiff", flat(number % 256, size))
            number += 1
    return root


# ----- Oulu-CASIA -----
OULU_EXPRESSIONS = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")


def make_oulu(
    root: Path, subjects=("P001", "P002", "P003"), frames: int = 5, modality="VL", illumination="Strong"
) -> Path:
    for s in subjects:
        for e in OULU_EXPRESSIONS:
            for f in range(frames):
                save(
                    root / "OriginalImg" / modality / illumination / s / e / f"{f:03d}.jpeg",
                    flat(40 * f, 48),
                    quality=95,
                )
    return root


# ----- RAF-DB -----
def make_rafdb(root: Path, entries: list[tuple[str, int]], aligned: bool = True) -> Path:
    """``entries``: ``(train_00001.jpg, code 1-7)``."""
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (name, code) in enumerate(entries):
        stem = name.rsplit(".", 1)[0]
        file = f"{stem}_aligned.jpg" if aligned else name
        save(
            root / "Image" / ("aligned" if aligned else "original") / file, flat(i * 5 % 256, 40), quality=95
        )
        lines.append(f"{name} {code}")
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


def rafdb_entries(n_train: int = 42, n_test: int = 14) -> list[tuple[str, int]]:
    out = [(f"train_{i + 1:05d}.jpg", i % 7 + 1) for i in range(n_train)]
    out += [(f"test_{i + 1:04d}.jpg", i % 7 + 1) for i in range(n_test)]
    return out


# ----- AffectNet -----
AFFECTNET_HEADER = [
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
]


def make_affectnet(root: Path, train_codes: list[int], val_codes: list[int]) -> Path:
    """Each image is 80x80 black with a white 40x40 face box at (20, 10)."""
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True, exist_ok=True)
    for name, codes in (("training.csv", train_codes), ("validation.csv", val_codes)):
        with open(lists / name, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(AFFECTNET_HEADER)
            for i, code in enumerate(codes):
                rel = f"{i % 3 + 1}/{name[:5]}_{i:04d}.jpg"
                img = np.zeros((80, 80), dtype=np.uint8)
                img[10:50, 20:60] = 255
                save(root / "Manually_Annotated_Images" / rel, img, quality=95)
                w.writerow([rel, 20, 10, 40, 40, "1;2;3", code, 0.1, -0.2])
    return root


# ----- generic folders and sequences -----
def make_class_folders(root: Path, counts: dict[str, int], prefix: str = "img", size: int = 32) -> Path:
    for cls, n in counts.items():
        for i in range(n):
            save(root / cls / f"{prefix}{i:03d}.png", flat(7 * i % 256, size))
    return root


def make_sequences(
    root: Path, subjects=("alice", "bob", "carol"), expressions=("happy", "sad", "neutral"), frames=4
) -> Path:
    for s in subjects:
        for e in expressions:
            for f in range(1, frames + 1):
                save(root / s / e / f"frame{f}.png", flat(20 * f, 32))
    return root
