"""FER+ (Barsoum et al., ICMI 2016): the FER2013 faces relabelled by 10 taggers each, 8 classes.

Two layouts, recognised from ``data.root``:

- ``fer2013new.csv`` (``Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,
  unknown,NF``) beside the original ``fer2013.csv`` (same row order; or point ``data.source.fer2013_csv``
  at it): the faces come from fer2013.csv row by row;
- the folders the FERPlus repository's ``generate_training_data.py`` writes: ``FER2013Train/``,
  ``FER2013Valid/``, ``FER2013Test/``, each with ``label.csv`` (``fer0000000.png,"(0, 0, 48, 48)",<10 votes>``)
  and the PNGs.

Label: the class with the most votes (``vote: plurality``, the default), or only when it has more than half
of all votes (``vote: majority``, as the FERPlus reference code's majority mode). A face is left out when
the top vote is ``unknown`` or ``NF`` (not a face), when two or more classes tie for the top, or when it
has no image name (FER+ removed it). Split: Training = train, PublicTest = val, PrivateTest = test.
Each image is its own subject.

Target (``target``): ``label`` trains on that label; ``votes`` trains on each face's vote distribution over
the 8 emotions (``unknown`` and ``NF`` dropped, the rest normalised: the FER+ paper's "probability"
scheme). Under ``votes`` a training face is kept whenever an emotion has at least as many votes as
``unknown`` and ``NF`` (ties between emotions included: the distribution carries them), and its hard label,
used by training metrics and samplers only, is the first most-voted emotion. Validation and test faces
always have the ``vote`` rule's label. Every face carries its distribution (:class:`VoteManifest`).
A PNG of the folders that is not 48x48 8-bit grey is a bad input (``data.on_bad_file``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from fer_attention.data.sources.base import BadInputs, FileSource, Manifest
from fer_attention.data.sources.fer2013 import USAGE_SPLIT, find_csv, read_fer2013_csv
from fer_attention.errors import DataError

CLASS_NAMES: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)
VOTE_COLUMNS: tuple[str, ...] = (*CLASS_NAMES, "unknown", "NF")
FOLDER_SPLITS = {"FER2013Train": "train", "FER2013Valid": "val", "FER2013Test": "test"}
VOTES = ("plurality", "majority")
TARGETS = ("label", "votes")
SIDE = 48


@dataclass
class VoteManifest(Manifest):
    """A FER+ manifest: each face also has its vote distribution over the 8 emotions (``targets``)."""

    targets: list[list[float]] = field(default_factory=list)


def vote_target(votes: list[int]) -> list[float]:
    """The 8 emotions' shares of their votes (``unknown`` and ``NF`` dropped); all 0 without emotion votes."""
    emotions = votes[: len(CLASS_NAMES)]
    total = sum(emotions)
    return [v / total for v in emotions] if total else [0.0] * len(emotions)


def train_vote_label(votes: list[int]) -> tuple[int | None, str | None]:
    """With ``target: votes``, a training face's hard label (for training metrics and samplers): the first
    most-voted emotion, ties included; ``(None, why)`` when ``unknown`` or ``NF`` has more votes than every
    emotion (so also when no emotion has a vote)."""
    if max(votes) <= 0:
        return None, "no votes"
    emotions, other = votes[: len(CLASS_NAMES)], votes[len(CLASS_NAMES) :]
    if max(other) > max(emotions):
        return None, f"top vote is {VOTE_COLUMNS[len(CLASS_NAMES) + other.index(max(other))]}"
    return emotions.index(max(emotions)), None


def png_problem(path: Path) -> str | None:
    """Why ``path`` is not one of FER2013's 48x48 8-bit grey faces (its header only), or None; a file PIL
    cannot open is left to the decoder, which reports it."""
    try:
        with Image.open(path) as im:
            (width, height), mode = im.size, im.mode
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    if (width, height) != (SIDE, SIDE) or mode != "L":
        return f"expected a {SIDE}x{SIDE} 8-bit grey image (mode L), got {width}x{height} mode {mode}"
    return None


def vote_label(votes: list[int], rule: str = "plurality") -> tuple[int | None, str | None]:
    """``(class index, None)`` or ``(None, why the face is left out)`` from the 10 vote counts."""
    top = max(votes)
    if top <= 0:
        return None, "no votes"
    winners = [i for i, v in enumerate(votes) if v == top]
    if len(winners) > 1:
        return None, "tie between the top votes"
    winner = winners[0]
    if winner >= len(CLASS_NAMES):
        return None, f"top vote is {VOTE_COLUMNS[winner]}"
    if rule == "majority" and top * 2 <= sum(votes):
        return None, "no majority (top vote not above half)"
    return winner, None


class FERPlusSource(FileSource):
    name = "ferplus"
    layouts_help = (
        "fer2013new.csv + fer2013.csv, or FER2013Train/label.csv, FER2013Valid/..., FER2013Test/..."
    )

    #: each face has its taggers' votes: ``data.source.target=votes`` trains on them
    has_votes = True

    def __init__(
        self, fer2013_csv: str | None = None, vote: str = "plurality", target: str = "label"
    ) -> None:
        if vote not in VOTES:
            raise DataError(f"data.source.vote='{vote}' is not one of {', '.join(VOTES)}")
        if target not in TARGETS:
            raise DataError(f"data.source.target='{target}' is not one of {', '.join(TARGETS)}")
        fer2013_csv = None if fer2013_csv is None else str(fer2013_csv)
        super().__init__(fer2013_csv=fer2013_csv, vote=vote, target=target)

    def class_names_for(self, configured):
        return CLASS_NAMES

    def _csvs(self, root: Path) -> tuple[Path, Path] | None:
        new = find_csv(root, ("fer2013new.csv",))
        if new is None or new.name == "fer2013.csv":
            return None
        if self.settings["fer2013_csv"]:
            old = Path(self.settings["fer2013_csv"]).expanduser()
            if not old.is_file():
                raise DataError(f"{old}: no such file (data.source.fer2013_csv)")
        else:
            old = next(
                (p for p in (new.parent / "fer2013.csv", new.parent.parent / "fer2013.csv") if p.is_file()),
                None,
            )
            if old is None:
                old = find_csv(new.parent / "fer2013")
            if old is None:
                raise DataError(
                    f"{new}: FER+ labels found but not the FER2013 images; put fer2013.csv beside it "
                    "or set data.source.fer2013_csv=/path/to/fer2013.csv"
                )
        return new, old.resolve()

    def layout(self, root: Path) -> str:
        if root.is_dir() and any((root / d / "label.csv").is_file() for d in FOLDER_SPLITS):
            return "folders"
        if self._csvs(root) is not None:
            return "csv"
        raise DataError(f"{root}: not a FER+ layout; expected {self.layouts_help}")

    def files(self, root: Path) -> list[Path]:
        if self.layout(root) == "csv":
            return list(self._csvs(root))
        return [
            *self.walk(root),
            *[root / d / "label.csv" for d in FOLDER_SPLITS if (root / d / "label.csv").is_file()],
        ]

    def index(self, root: Path, class_names, bad: BadInputs) -> Manifest:
        layout = self.layout(root)
        vote, target = self.settings["vote"], self.settings["target"]
        info = {"layout": layout, "vote": vote, "target": target, "eval_label": vote}
        manifest = VoteManifest(info={**info, "excluded_by_split": {}})
        if layout == "csv":
            self._index_csv(*self._csvs(root), manifest, bad)
        else:
            self._index_folders(root, manifest, bad)
        return manifest

    def _label(self, votes: list[int], split: str | None, manifest: VoteManifest) -> int | None:
        """The face's label (the training rule of ``target: votes`` for training faces, else ``vote``'s), or
        None after counting why it is left out (in ``excluded`` and, per split, ``excluded_by_split``)."""
        if self.settings["target"] == "votes" and split == "train":
            label, why = train_vote_label(votes)
        else:
            label, why = vote_label(votes, self.settings["vote"])
        if label is None:
            manifest.exclude(why)
            per_split = manifest.info["excluded_by_split"].setdefault(str(split), {})
            per_split[why] = per_split.get(why, 0) + 1
        return label

    @staticmethod
    def _add(manifest: VoteManifest, item, label: int, votes: list[int], subject: str, source: str, split):
        manifest.targets.append(vote_target(votes))
        manifest.add(item, label, subject, source, split=split)

    def _votes(self, fields: list[str], where: str, bad: BadInputs) -> list[int] | None:
        try:
            votes = [int(float(v)) for v in fields]
        except ValueError:
            bad(where, f"vote counts must be numbers, got {fields}")
            return None
        if len(votes) != len(VOTE_COLUMNS) or min(votes) < 0:
            bad(
                where,
                f"expected {len(VOTE_COLUMNS)} non-negative vote counts ({', '.join(VOTE_COLUMNS)}), got {fields}",
            )
            return None
        return votes

    def _index_csv(self, new: Path, old: Path, manifest: Manifest, bad: BadInputs) -> None:
        faces = read_fer2013_csv(old, bad, need_emotion=False)
        with open(new, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            lower = [h.lower() for h in header]
            if "usage" not in lower or "image name" not in lower or "nf" not in lower:
                raise DataError(f"{new}: not a FER+ label file (header {header})")
            u, n = lower.index("usage"), lower.index("image name")
            first_vote = lower.index(VOTE_COLUMNS[0].lower())
            rows = [f for f in reader if f and any(x.strip() for x in f)]
        if len(rows) != len(faces):
            raise DataError(
                f"{new}: {len(rows)} rows but {old} has {len(faces)}; the two files must be row-aligned"
            )
        for i, (fields, face) in enumerate(zip(rows, faces, strict=True)):
            where = f"{new}:{i + 2}"
            usage = fields[u].strip()
            if face["pixels"] is None:
                continue  # reported by read_fer2013_csv
            if face["usage"] != usage:
                raise DataError(
                    f"{where}: Usage '{usage}' but {old} row {i + 2} says '{face['usage']}'; the files are not row-aligned"
                )
            if not fields[n].strip():
                manifest.exclude("no image name (removed by FER+)")
                continue
            votes = self._votes(fields[first_vote : first_vote + len(VOTE_COLUMNS)], where, bad)
            if votes is None:
                continue
            split = USAGE_SPLIT.get(usage)
            label = self._label(votes, split, manifest)
            if label is None:
                continue
            if split is None:
                bad(where, f"unknown Usage '{usage}' (expected {', '.join(USAGE_SPLIT)})")
                continue
            self._add(manifest, face["pixels"], label, votes, f"row{i}", f"{old}:{face['line']}", split)

    def _index_folders(self, root: Path, manifest: Manifest, bad: BadInputs) -> None:
        for folder, split in FOLDER_SPLITS.items():
            label_file = root / folder / "label.csv"
            if not label_file.is_file():
                continue
            with open(label_file, newline="", encoding="utf-8-sig") as fh:
                for line_no, fields in enumerate(csv.reader(fh), start=1):
                    if not fields or not fields[0].strip():
                        continue
                    where = f"{label_file}:{line_no}"
                    if len(fields) != 2 + len(VOTE_COLUMNS):
                        bad(
                            where,
                            f"expected image name, face box and {len(VOTE_COLUMNS)} votes, got {len(fields)} fields",
                        )
                        continue
                    votes = self._votes(fields[2:], where, bad)
                    if votes is None:
                        continue
                    label = self._label(votes, split, manifest)
                    if label is None:
                        continue
                    image = root / folder / fields[0].strip()
                    if not image.is_file():
                        bad(image, f"listed in {label_file} line {line_no} but missing")
                        continue
                    problem = png_problem(image)
                    if problem is not None:
                        bad(image, problem)
                        continue
                    self._add(manifest, image, label, votes, f"{folder}/{image.stem}", str(image), split)
