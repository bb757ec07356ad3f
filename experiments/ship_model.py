"""Build the model that ships inside the package (`make model`): `python -m experiments.ship_model`.

    python -m experiments.ship_model choose <sweep dir or result folder> ...   # the job best on validation
    python -m experiments.ship_model build --run <run dir> --folder <result folder> --command '<command>'

`build` takes a training run's best-on-validation checkpoint and writes into fer_attention/inference/shipped/:
its weights in fp16 (a slim checkpoint, no optimiser state), the same network as int8 ONNX (static QDQ,
calibrated on its own training faces), the test split's accuracy of both, the confusion matrix as a picture,
``card.json`` and ``MODEL_CARD.md``. Test faces are read once here, after the choice was made on validation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from fer_attention.inference.shipped import CARD_FILE, SHIPPED_DIR

ROOT = Path(__file__).resolve().parents[1]
# the terms each training set comes with, for the card
DATA_TERMS = {
    "fer2013": "FER2013 (Goodfellow et al., ICML 2013 challenge; Kaggle): for research, non-commercial use",
    "ferplus": "FER+ labels (Barsoum et al. 2016; MIT licence) on FER2013's faces (research, non-commercial)",
}


def validation_accuracy(metrics: dict[str, Any]) -> float | None:
    """A training job's best validation accuracy, or that of a `fer-eval split=val` run: a model trained on
    another dataset, scored on the same validation faces (its classes the validation set lacks masked, faces
    of classes it lacks left out, as fer-eval's cross-dataset rule does)."""
    value = metrics.get("val/acc_best") or metrics.get("val/acc")
    return None if value is None else float(value)


def choose(dirs: list[str]) -> dict[str, Any]:
    """The finished job with the highest validation accuracy under ``dirs`` (the first of a tie), and every
    candidate's: the shipped model is chosen on validation only. Every candidate must have been scored on
    one dataset's validation split."""
    from fer_attention.reporting.aggregate import find_jobs

    jobs = [j for j in find_jobs([Path(d) for d in dirs]) if validation_accuracy(j.metrics or {}) is not None]
    if not jobs:
        raise SystemExit(f"error: no finished job with a validation accuracy under {', '.join(dirs)}")
    validated_on = {j.path.name: j.config_value("data.name") for j in jobs}
    if len(set(validated_on.values())) > 1:
        mixed = ", ".join(f"{name}: {data}" for name, data in validated_on.items())
        raise SystemExit(f"error: the candidates were validated on different datasets ({mixed})")
    best = max(jobs, key=lambda j: validation_accuracy(j.metrics))
    return {
        "run": str(best.path),
        "val_acc": validation_accuracy(best.metrics),
        "validation": next(iter(validated_on.values())),
        "candidates": {j.path.name: round(validation_accuracy(j.metrics), 4) for j in jobs},
        # the candidates that are evaluations of a model trained on another dataset
        "trained_on": {j.path.name: j.metrics["trained_on"] for j in jobs if j.metrics.get("trained_on")},
    }


def slim_checkpoint(ckpt: Path, out: Path) -> Path:
    """The checkpoint's weights in fp16 with its hyperparameters only (what ``load_model`` needs)."""
    from fer_attention.training.checkpoint import read_checkpoint

    full = read_checkpoint(ckpt)
    state = {k: v.half() if torch.is_floating_point(v) else v for k, v in full["state_dict"].items()}
    slim = {
        "state_dict": state,
        "hyper_parameters": full["hyper_parameters"],
        "pytorch-lightning_version": full.get("pytorch-lightning_version"),
        "epoch": full.get("epoch"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(slim, out)
    return out


def _compose(config_name: str, overrides: list[str], run_dir: Path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from fer_attention.config import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    return cfg


def evaluate_test(ckpt: Path, work: Path) -> dict[str, Any]:
    """fer-eval of ``ckpt`` on its own data's test split: metrics.json's content."""
    from fer_attention.training.task import evaluate

    return evaluate(_compose("eval", [f"ckpt_path={ckpt}", "trainer.accelerator=cpu"], work / "eval"))


def export_int8(ckpt: Path, out: Path, work: Path) -> dict[str, Any]:
    """`fer-export format=onnx quantize=int8 calib=data` of ``ckpt`` into ``out``: the calibration report."""
    from fer_attention.inference.export import export_checkpoint

    overrides = [f"ckpt_path={ckpt}", "format=onnx", "quantize=int8", "calib=data", f"output={out}"]
    return export_checkpoint(_compose("export", overrides, work / "export"))


def per_class_recall(matrix: list[list[int]], names: list[str]) -> dict[str, float]:
    return {
        n: (row[i] / sum(row) if sum(row) else 0.0)
        for i, (n, row) in enumerate(zip(names, matrix, strict=True))
    }


def build(run: Path, folder: str, command: str, out: Path = SHIPPED_DIR, chosen: dict | None = None) -> dict:
    """Write the shipped model of training run ``run`` into ``out`` (see the module's docstring)."""
    from fer_attention.viz.figures import plot_confusion_matrix

    metrics = json.loads((run / "metrics.json").read_text())
    ckpt = Path(metrics["best_ckpt"])
    if not ckpt.is_absolute():
        ckpt = run / ckpt
    data, image_size = ckpt_data(ckpt)
    name = f"{data}_{metrics.get('num_parameters', 0) // 1000}k"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*"):
        old.unlink()
    fp16 = slim_checkpoint(ckpt, out / f"{name}.fp16.pt")
    with tempfile.TemporaryDirectory() as tmp:
        evaluated = evaluate_test(fp16, Path(tmp))
        int8 = export_int8(fp16, out / f"{name}.int8.onnx", Path(tmp))
    # fer-export's own report beside the model: its figures go into the card instead
    (out / f"{name}.int8.json").unlink(missing_ok=True)
    names = list(evaluated["class_names"])
    matrix = evaluated["test/confusion_matrix"]
    plot_confusion_matrix(matrix, names, out / "confusion.png", f"shipped model on {data} test")
    card = {
        "name": name,
        "data": data,
        "data_terms": DATA_TERMS.get(data, "see the dataset's own licence"),
        "network": network_line(metrics, ckpt),
        "classes": names,
        "image_size": image_size,
        "files": {"fp16": fp16.name, "int8_onnx": f"{name}.int8.onnx"},
        "test_split": test_split_name(data),
        "test_acc": float(evaluated["test/acc"]),
        "test_f1_macro": float(evaluated["test/f1_macro"]),
        "test_acc_training_run": float(metrics["test/acc"]),
        "test_acc_int8": (int8.get("test") or {}).get("acc_int8"),
        "int8_agreement": (int8.get("test") or {}).get("agreement"),
        "int8_calibration": {k: int8.get(k) for k in ("calib_source", "calib_faces", "quantization")},
        "per_class_recall": per_class_recall(matrix, names),
        "confusion_matrix": matrix,
        "val_acc": float(metrics["val/acc_best"]),
        "chosen": chosen,
        "result_folder": folder,
        "rebuild": command,
        "commit": git_commit(),
        "built": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(model_card(card))
    return card


def ckpt_data(ckpt: Path) -> tuple[str, int]:
    """The dataset name and face size the checkpoint was trained on."""
    from fer_attention.training.checkpoint import read_checkpoint

    data_config = read_checkpoint(ckpt)["hyper_parameters"].get("data_config") or {}
    return str(data_config.get("name")), int(data_config.get("image_size") or 48)


ABLATIONS = {
    "full": "the paper's full network: image and LBP streams, attention, dilated reconstruction",
    "vgg16": "the VGG16 image stream and classifier alone",
    "no_lbp": "the paper's network without the LBP stream: image stream, attention, dilated reconstruction",
    "no_attention": "the paper's network without the attention: image and LBP streams, dilated reconstruction",
    "no_reconstruction": "the paper's network without the dilated reconstruction: image and LBP streams, attention",
}


def network_line(metrics: dict[str, Any], ckpt: Path) -> str:
    """The network of a run in words: its ablation row, width, epochs and seed (from its metrics.json and
    checkpoint, so any run dir will do)."""
    from fer_attention.training.checkpoint import read_checkpoint

    overrides = metrics.get("overrides") or []
    ablation = next((o.split("=", 1)[1] for o in overrides if str(o).startswith("ablation=")), "full")
    kind = ABLATIONS.get(ablation, f"the full network, ablation {ablation}")
    net = read_checkpoint(ckpt)["hyper_parameters"]["net"]
    width = (net.get("backbone") or {}).get("width")
    return f"{kind} (ablation={ablation}), VGG16 widths x {width}, {metrics.get('epochs')} epochs, seed {metrics.get('seed')}"


def test_split_name(data: str) -> str:
    return {"fer2013": "FER2013 PrivateTest", "ferplus": "FER+ FER2013Test"}.get(data, f"{data} test")


def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def model_card(card: dict[str, Any]) -> str:
    """MODEL_CARD.md: what the model is, what it was trained on and under what terms, how good it is on
    which split, where the figures come from, how to rebuild it."""
    recall = ", ".join(f"{n} {100 * r:.1f}%" for n, r in card["per_class_recall"].items())
    int8 = card.get("test_acc_int8")
    chosen = card.get("chosen") or {}
    lines = [
        f"# Model card: {card['name']}",
        "",
        "The model `load_model()` and `fer-predict` use when no checkpoint is named.",
        "",
        "| | |",
        "|---|---|",
        f"| network | {card['network']} |",
        f"| classes | {', '.join(card['classes'])} ({card['image_size']}x{card['image_size']} grey faces) |",
        f"| training data | {card['data_terms']} |",
        "| protocol | trained on Training, epoch chosen on PublicTest (validation), PrivateTest read once |"
        if card["data"] == "fer2013"
        else "| protocol | trained on FER2013Train, epoch chosen on FER2013Valid, FER2013Test read once |",
        f"| chosen | highest validation accuracy ({100 * card['val_acc']:.2f}%) among "
        f"{len(chosen.get('candidates') or {}) or 1} candidates (below) |",
        f"| test accuracy | **{100 * card['test_acc']:.2f}%** on {card['test_split']} (fp16 weights; macro F1 "
        f"{100 * card['test_f1_macro']:.2f}%)"
        + (
            f"; int8 ONNX {100 * int8:.2f}%, same answer on {100 * card['int8_agreement']:.1f}% of faces"
            if int8
            else ""
        )
        + " |",
        f"| per-class recall | {recall} |",
        f"| result folder | [{card['result_folder']}](../../../{card['result_folder']}/README.md) |",
        f"| files | `{card['files']['fp16']}` (fp16 weights), `{card['files']['int8_onnx']}` (int8 ONNX) |",
        f"| rebuild | `{card['rebuild']}` (MODEL_DATA_ROOT=<the data>; conf/experiment/shipped.yaml is the recipe) |",
        f"| suite commit | `{card['commit']}` ({card['built']}) |",
        "",
        "![confusion matrix on the test split](confusion.png)",
        "",
        *candidate_lines(chosen),
        "Not for decisions about people: expressions are not emotions, and FER2013's faces and their labels carry",
        "the biases of web images and of their taggers.",
        "",
    ]
    return "\n".join(lines)


def candidate_lines(chosen: dict[str, Any]) -> list[str]:
    """The card's list of the candidates and their validation accuracy, best first."""
    candidates = chosen.get("candidates") or {}
    if not candidates:
        return []
    elsewhere = chosen.get("trained_on") or {}
    data = chosen.get("validation")
    lines = [f"Candidates, accuracy on {f'the {data} validation split' if data else 'validation'}:", ""]
    for name, acc in sorted(candidates.items(), key=lambda item: -item[1]):
        note = (
            f" (a model trained on {elsewhere[name]}, scored on these faces by `fer-eval split=val`)"
            if name in elsewhere
            else ""
        )
        lines.append(f"- `{name}`: {100 * acc:.2f}%{note}")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.ship_model", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True)
    pick = sub.add_parser("choose", help="the finished job best on validation")
    pick.add_argument("dirs", nargs="+")
    make = sub.add_parser("build", help="write the shipped model from a training run")
    make.add_argument("--run", required=True, help="the run dir (metrics.json names its best checkpoint)")
    make.add_argument("--folder", required=True, help="the committed result folder behind its figures")
    make.add_argument("--command", required=True, help="the command that rebuilds it, for the card")
    make.add_argument("--choose-from", nargs="*", default=None, help="the sweep dirs it was chosen from")
    make.add_argument("--out", default=str(SHIPPED_DIR))
    args = parser.parse_args(argv)
    if args.verb == "choose":
        print(json.dumps(choose(args.dirs), indent=2))
        return 0
    chosen = choose(args.choose_from) if args.choose_from else None
    card = build(Path(args.run), args.folder, args.command, Path(args.out), chosen)
    print(f"{card['name']}: {100 * card['test_acc']:.2f}% on {card['test_split']} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
