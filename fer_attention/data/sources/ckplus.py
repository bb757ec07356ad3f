"""CK+ (Lucey et al., CVPR workshops 2010): 327 labelled posed sequences of 118 subjects.

Two layouts, recognised from ``data.root``:

- the original release: ``cohn-kanade-images/S005/001/S005_001_00000011.png`` and
  ``Emotion/S005/001/S005_001_00000011_emotion.txt`` (one float code: 1 anger, 2 contempt, 3 disgust,
  4 fear, 5 happy, 6 sadness, 7 surprise). The last ``last_k`` frames of each labelled sequence take its
  label; with ``first_frame_neutral`` its first frame is added as ``neutral``. ``data.face_crop=auto``
  means ``haar`` here (full 640x490 frames);
- CK+48: ``<class>/S###_###_########.png`` (the last 3 frames of each sequence, already cropped to
  48x48; ``face_crop=auto`` means ``none``). ``last_k`` below 3 keeps the last k of them.

Classes, in CK+'s code order: anger, contempt, disgust, fear, happy, sadness, surprise; ``classes: 6``
leaves contempt out (``conf/data/ckplus6.yaml``); ``first_frame_neutral: true`` appends ``neutral``.
Subject: the ``S###`` prefix. Protocol: subject-independent stratified 10-fold.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from fer_attention.data.sources.base import (
    BadInputs,
    FileSource,
    Manifest,
    class_lookup,
    last_k_frames,
    natural_key,
)
from fer_attention.errors import DataError

CODES: dict[int, str] = {
    1: "anger",
    2: "contempt",
    3: "disgust",
    4: "fear",
    5: "happy",
    6: "sadness",
    7: "surprise",
}
CLASS_NAMES_7: tuple[str, ...] = tuple(CODES.values())
CLASS_NAMES_6: tuple[str, ...] = tuple(n for n in CLASS_NAMES_7 if n != "contempt")
CK48_NAME = re.compile(r"^(S\d+)_(\d+)_(\d+)$", re.IGNORECASE)


def ckplus_class_names(classes: int = 7, first_frame_neutral: bool = False) -> tuple[str, ...]:
    names = CLASS_NAMES_7 if classes == 7 else CLASS_NAMES_6
    return (*names, "neutral") if first_frame_neutral else names


def _frame_number(path: Path, position: int) -> int:
    m = CK48_NAME.match(path.stem)
    return int(m.group(3)) if m else position


class CKPlusSource(FileSource):
    name = "ckplus"
    layouts_help = "cohn-kanade-images/S###/###/*.png with Emotion/S###/###/*_emotion.txt, or CK+48 <class>/S###_###_########.png"

    def __init__(self, last_k: int = 3, first_frame_neutral: bool = False, classes: int = 7) -> None:
        if classes not in (6, 7):
            raise DataError(f"data.source.classes={classes} must be 7 (with contempt) or 6 (without)")
        if not isinstance(last_k, int) or last_k < 1:
            raise DataError(f"data.source.last_k={last_k!r} must be an integer >= 1")
        super().__init__(last_k=last_k, first_frame_neutral=bool(first_frame_neutral), classes=classes)

    def class_names_for(self, configured):
        return ckplus_class_names(self.settings["classes"], self.settings["first_frame_neutral"])

    def _dirs(self, root: Path) -> tuple[Path, Path] | None:
        for base in (root, root / "CK+"):
            images = base / "cohn-kanade-images"
            if images.is_dir():
                for emotion in (
                    base / "Emotion",
                    base / "Emotion_labels" / "Emotion",
                    base / "Emotion_labels",
                ):
                    if emotion.is_dir():
                        return images, emotion
                raise DataError(
                    f"{base}: cohn-kanade-images/ found but no Emotion/ folder with the *_emotion.txt labels"
                )
        return None

    def layout(self, root: Path) -> str:
        if not root.is_dir():
            raise DataError(f"{root}: not a folder; expected {self.layouts_help}")
        return "original" if self._dirs(root) is not None else "ck48"

    def default_face_crop(self, root: Path) -> str:
        return "haar" if self.layout(root) == "original" else "none"

    def files(self, root: Path) -> list[Path]:
        if self.layout(root) == "original":
            images, emotion = self._dirs(root)
            labels = [p for p in self.walk(emotion, images_only=False) if p.name.endswith("_emotion.txt")]
            return [*self.walk(images), *labels]
        return self.walk(root)

    def index(self, root: Path, class_names, bad: BadInputs) -> Manifest:
        layout = self.layout(root)
        manifest = Manifest(info={"layout": layout})
        if layout == "original":
            self._index_original(root, class_names, manifest, bad)
        else:
            if self.settings["first_frame_neutral"]:
                raise DataError(
                    f"{root}: data.source.first_frame_neutral=true needs the original CK+ release "
                    "(cohn-kanade-images/ and Emotion/); CK+48 has only the last frames"
                )
            self._index_ck48(root, class_names, manifest, bad)
        return manifest

    def _index_original(self, root: Path, class_names, manifest: Manifest, bad: BadInputs) -> None:
        images_dir, emotion_dir = self._dirs(root)
        lookup = class_lookup(class_names)
        k = self.settings["last_k"]
        frames_by_seq: dict[Path, list[Path]] = defaultdict(list)
        for path in self.walk(images_dir):
            frames_by_seq[path.parent].append(path)
        label_files = [
            p for p in self.walk(emotion_dir, images_only=False) if p.name.endswith("_emotion.txt")
        ]
        for txt in label_files:
            try:
                text = txt.read_text().strip()
                value = float(text.split()[0])
            except (OSError, ValueError, IndexError):
                bad(txt, "cannot read an emotion code (expected one number, 1-7)")
                continue
            code = int(value)
            if value != code or code not in CODES:
                bad(
                    txt,
                    f"unknown emotion code {text!r} (expected 1-7: {', '.join(f'{c} {n}' for c, n in CODES.items())})",
                )
                continue
            name = CODES[code]
            if name not in lookup:
                manifest.exclude(f"{name} not among the classes")
                continue
            rel_seq = txt.parent.relative_to(emotion_dir)
            seq_dir = images_dir / rel_seq
            frames = frames_by_seq.get(seq_dir, [])
            if not frames:
                bad(seq_dir, f"no frames for the sequence labelled in {txt.name}")
                continue
            subject = rel_seq.parts[0]
            sequence = "_".join(rel_seq.parts)
            chosen = last_k_frames(frames, k)
            for pos, frame in chosen:
                manifest.add(
                    frame,
                    lookup[name],
                    subject,
                    str(frame),
                    sequence=sequence,
                    frame=_frame_number(frame, pos),
                )
            if self.settings["first_frame_neutral"]:
                first = sorted(frames, key=lambda p: natural_key(p.name))[0]
                if all(first != f for _, f in chosen):
                    manifest.add(
                        first,
                        lookup["neutral"],
                        subject,
                        str(first),
                        sequence=sequence,
                        frame=_frame_number(first, 0),
                    )

    def _index_ck48(self, root: Path, class_names, manifest: Manifest, bad: BadInputs) -> None:
        lookup = class_lookup(class_names)
        known = class_lookup(CLASS_NAMES_7)
        by_seq: dict[str, list[tuple[int, Path, int, str]]] = defaultdict(list)
        reported: set[str] = set()
        for path in self.walk(root):
            rel = path.relative_to(root)
            if len(rel.parts) != 2:
                bad(path, f"expected <class>/S###_###_########.png under {root}")
                continue
            folder = rel.parts[0]
            if folder.lower() not in known:
                if folder not in reported:
                    reported.add(folder)
                    bad(
                        root / folder,
                        f"unknown class folder '{folder}' (expected one of {', '.join(CLASS_NAMES_7)})",
                    )
                continue
            if folder.lower() not in lookup:
                manifest.exclude(f"{folder.lower()} not among the classes")
                continue
            m = CK48_NAME.match(path.stem)
            if not m:
                bad(path, "file name does not match S###_###_######## (subject_sequence_frame)")
                continue
            subject, seq, frame = m.group(1).upper(), m.group(2), int(m.group(3))
            by_seq[f"{subject}_{seq}"].append((frame, path, lookup[folder.lower()], subject))
        k = self.settings["last_k"]
        for sequence in sorted(by_seq):
            entries = sorted(by_seq[sequence])
            labels = {e[2] for e in entries}
            if len(labels) > 1:
                bad(root / f"*/{sequence}_*", f"sequence {sequence} appears in more than one class folder")
                continue
            for frame, path, label, subject in entries[-k:]:
                manifest.add(path, label, subject, str(path), sequence=sequence, frame=frame)
