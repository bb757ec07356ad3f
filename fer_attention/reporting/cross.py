"""The cross-dataset table: training sets as rows, test sets (dataset and split) as columns, from the run
dirs of `fer-eval ckpt_path=<model> data=<other> split=all|test` (docs/transfer.md)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fer_attention.errors import ReportError
from fer_attention.reporting.results import kept_notes, machine
from fer_attention.runs import METRICS_FILE, PREDICTIONS_FILE, STATUS_FILE

EVAL_SPLITS = ("all", "test", "val")
# what a published eval run keeps, relative to its run dir
RUN_FILES = (METRICS_FILE, PREDICTIONS_FILE, STATUS_FILE, ".hydra/overrides.yaml")


def _split_of(metrics: dict[str, Any]) -> str | None:
    return next((s for s in EVAL_SPLITS if metrics.get(f"{s}/acc") is not None), None)


def find_eval_runs(root: str | Path) -> list[dict[str, Any]]:
    """Every fer-eval run under ``root`` (a metrics.json that records ``trained_on``), as one dict each:
    training set, test set and split, accuracy, macro F1, faces, classes, run dir and command."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    runs = []
    for file in sorted(root.rglob(METRICS_FILE)):
        metrics = json.loads(file.read_text())
        split = _split_of(metrics)
        if "trained_on" not in metrics or split is None:
            continue
        cm = np.asarray(metrics.get(f"{split}/confusion_matrix") or [[0]])
        overrides_file = file.parent / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else None
        # without Hydra's record (a run from the Python API) the command is rebuilt from the metrics
        overrides = (
            overrides
            or metrics.get("overrides")
            or [
                f"ckpt_path={metrics.get('best_ckpt')}",
                f"data={metrics.get('data')}",
                f"split={split}",
            ]
        )
        runs.append(
            {
                "trained_on": metrics["trained_on"],
                "tested_on": f"{metrics.get('data')} {split}",
                "acc": 100.0 * metrics[f"{split}/acc"],
                "f1_macro": 100.0 * metrics[f"{split}/f1_macro"],
                "faces": int((metrics.get("faces") or {}).get("evaluated", cm.sum())),
                "classes": len(metrics.get("class_names") or []),
                "left_out": (metrics.get("faces") or {}).get("left_out") or {},
                "run_dir": file.parent,
                "command": "fer-eval " + " ".join(o for o in overrides if not o.startswith("hydra.")),
            }
        )
    if not runs:
        raise ReportError(f"no fer-eval run (a metrics.json with trained_on) under {root}")
    return runs


def cross_markdown(runs: list[dict[str, Any]], title: str = "cross-dataset") -> str:
    """Rows = training sets, columns = test sets; each cell accuracy (macro F1) over the shared classes."""
    rows = sorted({r["trained_on"] for r in runs})
    cols = sorted({r["tested_on"] for r in runs})
    cell = {(r["trained_on"], r["tested_on"]): r for r in runs}
    lines = [
        f"## {title}",
        "",
        "Accuracy % (macro F1 %) on the classes both datasets share; faces of classes the model lacks are left out.",
        "",
        "| trained on \\ tested on | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for row in rows:
        cells = []
        for col in cols:
            r = cell.get((row, col))
            cells.append(
                f"{r['acc']:.2f} ({r['f1_macro']:.2f}); {r['faces']} faces, {r['classes']} classes"
                if r
                else "-"
            )
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    left = [(r, k, v) for r in runs for k, v in sorted(r["left_out"].items()) if v]
    if left:
        lines += [
            "",
            "Left out (class the model lacks): "
            + "; ".join(f"{r['trained_on']} -> {r['tested_on']}: {k} {v}" for r, k, v in left),
        ]
    return "\n".join(lines) + "\n"


def cross_report(root: str | Path, out_dir: str | Path, publish: bool = False) -> dict[str, Any]:
    """Write ``table.md`` and ``table.csv`` of the fer-eval runs under ``root`` into ``out_dir``.

    Args:
        root: a folder searched recursively for fer-eval runs (a metrics.json that records
            ``trained_on``).
        out_dir: where the files go (created if needed).
        publish: also copy each run's metrics, status and overrides under ``out_dir/runs/`` and write a
            README with the commands and the machine, so that ``fer-report --cross <out_dir>/runs``
            re-aggregates it (a ``## Notes`` section of an existing README is kept).

    Returns:
        A dict with ``out_dir``, ``table`` (the markdown: rows = training sets, columns = test sets) and
        ``runs`` (how many runs it holds). table.csv's columns: ``trained_on``, ``tested_on``, ``acc``,
        ``f1_macro`` (in %), ``faces``, ``classes``, ``command``.

    Raises:
        FileNotFoundError: ``root`` is not a directory.
        ReportError: no fer-eval run under ``root``.
    """
    runs = find_eval_runs(root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = cross_markdown(runs)
    (out / "table.md").write_text(table)
    _write_csv(runs, out / "table.csv")
    if publish:
        _copy_runs(runs, Path(root), out)
        _write_readme(runs, table, out)
    return {"out_dir": str(out), "table": table, "runs": len(runs)}


def _write_csv(runs: list[dict[str, Any]], path: Path) -> None:
    columns = ["trained_on", "tested_on", "acc", "f1_macro", "faces", "classes", "command"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**r, "acc": round(r["acc"], 2), "f1_macro": round(r["f1_macro"], 2)} for r in runs)


def _copy_runs(runs: list[dict[str, Any]], root: Path, out: Path) -> None:
    """Each run's :data:`RUN_FILES` under ``out/runs/``, at its path below ``root``."""
    for r in runs:
        dest = (
            out
            / "runs"
            / (r["run_dir"].relative_to(root) if r["run_dir"] != root else Path(r["run_dir"].name))
        )
        if dest.resolve() == r["run_dir"].resolve():
            continue
        for name in RUN_FILES:
            if (r["run_dir"] / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(r["run_dir"] / name, dest / name)


def _write_readme(runs: list[dict[str, Any]], table: str, out: Path) -> None:
    """``out/README.md``: the table, the commands, the machine and how to re-aggregate; a ``## Notes``
    section already in the file is kept."""
    m = machine()
    readme = [
        table.rstrip(),
        "",
        "Commands (one fer-eval run each):",
        "",
        *[f"- `{r['command']}`" for r in runs],
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {'GPU ' + m['gpu'] if m['gpu'] else 'no GPU'}; "
        f"torch {m['torch']}. Written {dt.datetime.now().isoformat(timespec='seconds')}.",
        "",
        f"`runs/` holds every run's metrics.json (confusion matrix, class mapping, faces left out) and "
        f"overrides; `fer-report --cross {out}/runs --out {out}` re-aggregates this folder.",
        "",
    ]
    readme_path = out / "README.md"
    notes = kept_notes(readme_path)
    readme_path.write_text("\n".join(readme) + ("\n" + notes if notes else ""))
