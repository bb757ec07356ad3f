"""Turn a multirun directory into a table: group jobs by their swept values, mean ± std over seeds and
folds, list failed or missing jobs, and write table.md, table.csv, plot.png and confusion matrices."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fer_attention.reporting.files import METRICS_FILE, read_status
from fer_attention.reporting.plots import plot_confusion_matrix

log = logging.getLogger(__name__)

# values averaged over rather than grouped by
REPEAT_KEYS = ("seed", "data.fold")
# overrides that never define a row
IGNORED_KEYS = ("hydra.", "paths.", "skip_done", "logger")
METRICS = ("test/acc", "test/f1_macro", "val/acc_best")


@dataclass
class Job:
    """One job of a multirun: its directory, overrides, metrics (None if unfinished) and state."""

    path: Path
    overrides: dict[str, str]
    metrics: dict[str, Any] | None
    state: str
    error: str | None = None


@dataclass
class Row:
    """One configuration of the table and the jobs that ran it."""

    key: tuple[tuple[str, str], ...]
    jobs: list[Job] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.key) or "(all jobs)"

    def values(self, metric: str) -> np.ndarray:
        vals = [j.metrics.get(metric) for j in self.jobs if j.metrics and j.metrics.get(metric) is not None]
        return np.asarray(vals, dtype=float)


def _parse_overrides(path: Path) -> dict[str, str]:
    file = path / ".hydra" / "overrides.yaml"
    if not file.is_file():
        return {}
    out = {}
    for item in yaml.safe_load(file.read_text()) or []:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def find_jobs(multirun_dir: str | Path) -> list[Job]:
    """Every job directory (one holding ``.hydra/``) under ``multirun_dir``."""
    root = Path(multirun_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"multirun dir {root} does not exist")
    jobs = []
    for hydra_dir in sorted(root.rglob(".hydra")):
        path = hydra_dir.parent
        if path == root:
            continue
        metrics_file = path / METRICS_FILE
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
        status = read_status(path)
        state = "finished" if metrics is not None else status.get("state", "missing")
        if state == "finished" and metrics is None:
            state = "missing"
        jobs.append(Job(path, _parse_overrides(path), metrics, state, status.get("error")))
    if not jobs:
        raise FileNotFoundError(f"no jobs (directories with .hydra/) under {root}")
    return jobs


def group_jobs(jobs: list[Job]) -> tuple[list[str], list[Row]]:
    """Group by the override keys whose values differ between jobs (seed and fold are averaged over)."""
    keys = sorted({k for j in jobs for k in j.overrides})
    swept = [
        k
        for k in keys
        if k not in REPEAT_KEYS
        and not k.startswith(IGNORED_KEYS)
        and len({j.overrides.get(k) for j in jobs}) > 1
    ]
    rows: dict[tuple, Row] = {}
    for job in jobs:
        key = tuple((k, job.overrides.get(k, "")) for k in swept)
        rows.setdefault(key, Row(key)).jobs.append(job)
    return swept, list(rows.values())


def _fmt(vals: np.ndarray) -> str:
    if len(vals) == 0:
        return "-"
    if len(vals) == 1:
        return f"{100 * vals[0]:.2f}"
    return f"{100 * vals.mean():.2f} ± {100 * vals.std(ddof=1):.2f}"


def summarise(rows: list[Row], swept: list[str]) -> list[dict[str, Any]]:
    """One dict per row: the swept values, mean and std (in %) of each metric, finished / total jobs."""
    out = []
    for row in rows:
        entry: dict[str, Any] = dict(row.key)
        for metric in METRICS:
            vals = row.values(metric)
            entry[f"{metric} mean"] = round(100 * float(vals.mean()), 3) if len(vals) else None
            entry[f"{metric} std"] = round(100 * float(vals.std(ddof=1)), 3) if len(vals) > 1 else None
        entry["runs"] = sum(j.metrics is not None for j in row.jobs)
        entry["jobs"] = len(row.jobs)
        out.append(entry)
    return out


def markdown_table(rows: list[Row], swept: list[str], title: str) -> str:
    header = [*(swept or ["configuration"]), "test acc (%)", "test macro F1 (%)", "val acc best (%)", "runs"]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [v for _, v in row.key] if swept else [row.label]
        finished = sum(j.metrics is not None for j in row.jobs)
        cells += [_fmt(row.values(m)) for m in METRICS] + [f"{finished}/{len(row.jobs)}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Mean ± sample standard deviation over seeds and folds; runs = finished / launched jobs.")
    return "\n".join(lines) + "\n"


def plot_table(rows: list[Row], path: Path, title: str, metric: str = "test/acc") -> Path:
    import matplotlib.pyplot as plt

    labels = [row.label for row in rows]
    means = [100 * row.values(metric).mean() if len(row.values(metric)) else 0.0 for row in rows]
    stds = [100 * row.values(metric).std(ddof=1) if len(row.values(metric)) > 1 else 0.0 for row in rows]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) + 1.5), 4.0))
    ax.bar(range(len(rows)), means, yerr=stds, capsize=4, color="#4c72b0")
    for i, m in enumerate(means):
        ax.text(i, m + (stds[i] if stds else 0) + 0.5, f"{m:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "=-_." else "_" for c in text)[:120] or "all"


def report(
    multirun_dir: str | Path, out_dir: str | Path | None = None, name: str | None = None
) -> dict[str, Any]:
    """Aggregate ``multirun_dir`` into ``out_dir`` (default ``logs/reports/<name>``); returns a summary."""
    jobs = find_jobs(multirun_dir)
    name = name or _table_name(jobs, Path(multirun_dir))
    out = Path(out_dir) if out_dir else Path("logs") / "reports" / name
    out.mkdir(parents=True, exist_ok=True)
    swept, rows = group_jobs(jobs)
    table = markdown_table(rows, swept, name)
    failed = [j for j in jobs if j.metrics is None]
    if failed:
        table += (
            "\nUnfinished jobs:\n\n"
            + "\n".join(
                f"- `{j.path.name}`: {j.state}" + (f" ({j.error})" if j.error else "") for j in failed
            )
            + "\n"
        )
    (out / "table.md").write_text(table)
    summary = summarise(rows, swept)
    with open(out / "table.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    plot_table(rows, out / "plot.png", name)
    for row in rows:
        matrices = [
            j.metrics["test/confusion_matrix"]
            for j in row.jobs
            if j.metrics and j.metrics.get("test/confusion_matrix")
        ]
        if matrices:
            names = next(j.metrics["class_names"] for j in row.jobs if j.metrics)
            total = np.sum(np.asarray(matrices), axis=0)
            plot_confusion_matrix(
                total, names, out / f"confusion_{_slug(row.label)}.png", f"{name}: {row.label}"
            )
    return {
        "name": name,
        "out_dir": str(out),
        "table": table,
        "rows": summary,
        "failed": [str(j.path) for j in failed],
    }


def _table_name(jobs: list[Job], root: Path) -> str:
    for job in jobs:
        cfg_file = job.path / ".hydra" / "config.yaml"
        if cfg_file.is_file():
            task = (yaml.safe_load(cfg_file.read_text()) or {}).get("task_name")
            if task:
                return str(task)
    return root.name
