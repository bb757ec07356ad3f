"""Expression class names across datasets: the one synonym table, and mapping one class list onto another.

Datasets name the same expression differently (FER2013 ``angry``, CK+ ``anger``, FER+ ``happiness``,
RAF-DB ``sadness`` ...). Everything that compares class lists by name (cross-dataset evaluation,
``model.init_from`` deciding whether the classifier head carries over) goes through :func:`canonical`,
so the table below is the only place where synonyms are defined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# canonical name -> the names datasets use for it (compared case-insensitively; the canonical name itself
# always matches)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "angry": ("anger",),
    "disgust": ("disgusted",),
    "fear": ("fearful", "afraid"),
    "happy": ("happiness", "joy"),
    "sad": ("sadness",),
    "surprise": ("surprised",),
    "neutral": (),
    "contempt": ("contemptuous",),
}

_LOOKUP: dict[str, str] = {
    alias.lower(): name for name, aliases in SYNONYMS.items() for alias in (name, *aliases)
}


def canonical(name: str) -> str:
    """The canonical name of an expression class (``anger`` -> ``angry``); names outside the table are
    only lower-cased, so they match themselves and nothing else."""
    key = str(name).strip().lower()
    return _LOOKUP.get(key, key)


@dataclass
class ClassMapping:
    """How a model's classes meet a target dataset's classes.

    ``shared`` lists ``(canonical name, model index, target index)`` in the target's class order;
    ``model_only`` are model classes the target lacks (their logits are masked out before argmax);
    ``target_only`` are target classes the model lacks (faces of them are left out of the metrics)."""

    model_names: tuple[str, ...]
    target_names: tuple[str, ...]
    shared: list[tuple[str, int, int]] = field(default_factory=list)
    model_only: list[str] = field(default_factory=list)
    target_only: list[str] = field(default_factory=list)

    @property
    def identity(self) -> bool:
        """Same classes in the same order under the same names: nothing to map."""
        return self.model_names == self.target_names

    @property
    def model_indices(self) -> list[int]:
        return [m for _, m, _ in self.shared]

    @property
    def target_indices(self) -> list[int]:
        return [t for _, _, t in self.shared]

    @property
    def shared_target_names(self) -> list[str]:
        """The shared classes under the target's names, in the target's order."""
        return [self.target_names[t] for _, _, t in self.shared]

    def as_dict(self) -> dict:
        return {
            "shared": [
                {"class": c, "model": self.model_names[m], "target": self.target_names[t]}
                for c, m, t in self.shared
            ],
            "model_only": list(self.model_only),
            "target_only": list(self.target_only),
        }


def map_classes(model_names: Sequence[str], target_names: Sequence[str]) -> ClassMapping:
    """Match ``model_names`` to ``target_names`` through :func:`canonical`.

    Raises ``ValueError`` when two names of one list mean the same class (the mapping would be ambiguous).
    An empty ``shared`` list is returned as is; the caller decides whether that is an error."""
    model_names, target_names = tuple(map(str, model_names)), tuple(map(str, target_names))
    for what, names in (("model", model_names), ("target", target_names)):
        seen: dict[str, str] = {}
        for n in names:
            c = canonical(n)
            if c in seen:
                raise ValueError(
                    f"the {what}'s classes {list(names)} name one class twice ('{seen[c]}' and '{n}')"
                )
            seen[c] = n
    model_index = {canonical(n): i for i, n in enumerate(model_names)}
    target_canon = {canonical(n) for n in target_names}
    mapping = ClassMapping(model_names, target_names)
    for t, name in enumerate(target_names):
        c = canonical(name)
        if c in model_index:
            mapping.shared.append((c, model_index[c], t))
        else:
            mapping.target_only.append(name)
    mapping.model_only = [n for n in model_names if canonical(n) not in target_canon]
    return mapping


def same_class_set(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two class lists hold the same classes (by canonical name, any order, same count)."""
    ca, cb = [canonical(n) for n in a], [canonical(n) for n in b]
    return len(ca) == len(cb) and len(set(ca)) == len(ca) and set(ca) == set(cb)
