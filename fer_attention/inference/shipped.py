"""The model that ships inside the package: ``load_model()`` and `fer-predict` with no checkpoint use it.

Its files lie in ``fer_attention/inference/shipped/``: the weights in fp16 (a slim fer-attention checkpoint,
no optimiser state), the same network as int8 ONNX, ``card.json`` (what :func:`shipped_card` returns: the
training data and its terms, the protocol, the test accuracy with the committed result folder behind it, the
command that rebuilds it, the suite's commit) and ``MODEL_CARD.md`` with its confusion matrix. `make model`
rebuilds them (``experiments/ship_model.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fer_attention.errors import CheckpointError

SHIPPED_DIR = Path(__file__).with_name("shipped")
CARD_FILE = "card.json"
# the formats a card names a file for; load_model() takes the first
FORMATS = ("fp16", "int8_onnx")
REBUILD_HINT = "rebuild it with `make model` in a checkout, or pass ckpt_path=<a checkpoint or .onnx file>"


def shipped_card(folder: Path = SHIPPED_DIR) -> dict[str, Any]:
    """The shipped model's card (``card.json``): its name, files, classes, data, accuracy and provenance.

    Raises:
        CheckpointError: one line when the card or a file it names is missing (a broken install), saying
            how to rebuild it or what to pass instead.
    """
    card_file = folder / CARD_FILE
    if not card_file.is_file():
        raise CheckpointError(f"the shipped model is missing from this install ({card_file}): {REBUILD_HINT}")
    card = json.loads(card_file.read_text())
    for fmt in FORMATS:
        name = (card.get("files") or {}).get(fmt)
        if not name or not (folder / name).is_file():
            raise CheckpointError(
                f"the shipped model's {fmt} file {folder / str(name)} is missing from this install: {REBUILD_HINT}"
            )
    return card


def shipped_model_path(fmt: str = "fp16", folder: Path = SHIPPED_DIR) -> Path:
    """The file of the shipped model in ``fmt`` (``fp16``: the weights, ``int8_onnx``: ONNX Runtime's)."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} is not one of {', '.join(FORMATS)}")
    return folder / shipped_card(folder)["files"][fmt]


def describe(card: dict[str, Any]) -> str:
    """One line naming the shipped model and how good it is, for logs and `fer-predict`'s output."""
    return (
        f"shipped model {card['name']} ({100 * card['test_acc']:.2f}% on {card['test_split']}; "
        "its card: fer_attention/inference/shipped/MODEL_CARD.md)"
    )
