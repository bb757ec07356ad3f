"""Expression sequences in ``<root>/<subject>/<expression>/<frames>`` (the authors' own Kinect set, and any
set recorded like it).

The class names come from the config (``data.class_names``); each expression folder name must be one of
them (case-insensitive). The last ``last_k`` frames of each sequence (frames sorted by natural order of
their file names, so ``2.png`` comes before ``10.png``) take its label; with ``first_frame_neutral`` the
first frame is added with the class ``neutral_class`` (which must be among the class names). A
``<root>/<subject>/<expression>/<take>/<frames>`` tree works too: every folder that holds frames is a
sequence. Protocol: subject-independent stratified k-fold.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
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


def index_sequence_tree(
    manifest: Manifest,
    base: Path,
    files: Iterable[Path],
    lookup: dict[str, int],
    bad: BadInputs,
    last_k: int | None,
    neutral_label: int | None = None,
) -> None:
    """Add the last-k frames (and optionally the first, as ``neutral_label``) of every sequence in
    ``base/<subject>/<expression>[/...]/<frames>``."""
    sequences: dict[Path, list[Path]] = defaultdict(list)
    for path in files:
        sequences[path.parent].append(path)
    reported: set[Path] = set()
    for seq_dir in sorted(sequences, key=lambda p: natural_key(str(p))):
        frames = sequences[seq_dir]
        rel = seq_dir.relative_to(base)
        if len(rel.parts) < 2:
            for frame in frames:
                bad(frame, "expected <subject>/<expression>/<frames>")
            continue
        subject, expression = rel.parts[0], rel.parts[1]
        if expression.lower() not in lookup:
            folder = base / subject / expression
            if folder not in reported:
                reported.add(folder)
                bad(folder, f"unknown expression folder '{expression}' (expected one of {', '.join(lookup)})")
            continue
        label = lookup[expression.lower()]
        sequence = "/".join(rel.parts)
        chosen = last_k_frames(frames, last_k)
        for pos, frame in chosen:
            manifest.add(frame, label, subject, str(frame), sequence=sequence, frame=pos)
        if neutral_label is not None:
            first = sorted(frames, key=lambda p: natural_key(p.name))[0]
            if all(first != f for _, f in chosen):
                manifest.add(first, neutral_label, subject, str(first), sequence=sequence, frame=0)


class SequenceFolderSource(FileSource):
    name = "sequences"
    layouts_help = "<root>/<subject>/<expression>/<frames>"

    @staticmethod
    def discover_classes(root: Path) -> list[str]:
        """The expression folder names found under the subject folders: what ``data.class_names`` could be."""
        return sorted(
            {e.name for s in root.iterdir() if s.is_dir() for e in s.iterdir() if e.is_dir()}, key=str.lower
        )

    def __init__(
        self, last_k: int = 3, first_frame_neutral: bool = False, neutral_class: str = "neutral"
    ) -> None:
        if not isinstance(last_k, int) or last_k < 1:
            raise DataError(f"data.source.last_k={last_k!r} must be an integer >= 1")
        super().__init__(
            last_k=last_k, first_frame_neutral=bool(first_frame_neutral), neutral_class=neutral_class
        )

    def index(self, root: Path, class_names, bad: BadInputs) -> Manifest:
        if not root.is_dir():
            raise DataError(f"{root}: not a folder; expected {self.layouts_help}")
        lookup = class_lookup(class_names)
        neutral = None
        if self.settings["first_frame_neutral"]:
            neutral = lookup.get(str(self.settings["neutral_class"]).lower())
            if neutral is None:
                raise DataError(
                    f"data.source.first_frame_neutral=true but data.source.neutral_class="
                    f"'{self.settings['neutral_class']}' is not in data.class_names={list(class_names)}"
                )
        manifest = Manifest()
        index_sequence_tree(manifest, root, self.walk(root), lookup, bad, self.settings["last_k"], neutral)
        return manifest
