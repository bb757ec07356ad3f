"""Turn a multirun directory into a table: group jobs by their swept values, mean ± std over seeds and
folds, compare every row with a reference row on matching (fold, seed) jobs, list failed, missing and
unmatched jobs, and write table.md, table.csv, folds.csv, plot.png, curves.png (validation accuracy
against training time) and confusion matrices."""

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
from fer_attention.reporting.plots import plot_confusion_matrix, plot_curves, plot_rows
from fer_attention.reporting.stats import PairedComparison, format_p, holm, mean_interval, paired_comparison

log = logging.getLogger(__name__)

# values averaged over rather than grouped by; a (fold, seed) pair identifies a job within a row
REPEAT_KEYS = ("seed", "data.fold")
# overrides that never define a row
IGNORED_KEYS = ("hydra.", "paths.", "skip_done", "resume", "threads", "logger", "data.root", "task_name")
METRICS = ("test/acc", "test/f1_macro", "val/acc_best")
# the metric rows are compared on
COMPARED = "test/acc"
# the top-level config groups whose default a default reference row is made of (the paper's choices)
REFERENCE_GROUPS = ("ablation", "lbp", "dilation", "model", "augment")


class ReportError(ValueError):
    """A report cannot be made as asked; the message is one line."""


@dataclass
class Job:
    """One job of a multirun: its directory, overrides, metrics (None if unfinished) and state."""

    path: Path
    overrides: dict[str, str]
    metrics: dict[str, Any] | None
    state: str
    error: str | None = None

    @property
    def pair_key(self) -> tuple[str, str]:
        """(fold, seed): what a job is paired on across rows."""
        seed = self.overrides.get("seed", str((self.metrics or {}).get("seed", "")))
        return self.overrides.get("data.fold", "-"), seed

    @property
    def test_train_ratio(self) -> float | None:
        splits = (self.metrics or {}).get("splits") or {}
        train, test = (splits.get(s, {}).get("faces") for s in ("train", "test"))
        return test / train if train and test else None


@dataclass
class Row:
    """One configuration of the table and the jobs that ran it."""

    key: tuple[tuple[str, str], ...]
    jobs: list[Job] = field(default_factory=list)
    comparison: PairedComparison | None = None
    unmatched: list[Job] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.key) or "(all jobs)"

    def values(self, metric: str) -> np.ndarray:
        vals = [j.metrics.get(metric) for j in self.jobs if j.metrics and j.metrics.get(metric) is not None]
        return np.asarray(vals, dtype=float)

    def by_pair(self, metric: str = COMPARED) -> dict[tuple[str, str], float]:
        return {
            j.pair_key: float(j.metrics[metric])
            for j in self.jobs
            if j.metrics and j.metrics.get(metric) is not None
        }


def _parse_overrides(path: Path) -> dict[str, str]:
    file = path / ".hydra" / "overrides.yaml"
    if not file.is_file():
        return {}
    out = {}
    for item in yaml.safe_load(file.read_text()) or []:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def find_jobs(multirun_dir: str | Path | list[str | Path]) -> list[Job]:
    """Every job directory (one holding ``.hydra/``) under ``multirun_dir``.

    Args:
        multirun_dir: a multirun directory, or a list of them whose jobs are pooled (e.g. seed 0
            committed and seeds 1-2 run later).

    Returns:
        One :class:`Job` per job directory (searched recursively, in path order per directory): its
        ``path``, ``overrides`` (from ``.hydra/overrides.yaml``), ``metrics`` (its metrics.json, None if
        unfinished), ``state`` (``finished``, else the state its status file records, else ``missing``)
        and ``error``.

    Raises:
        FileNotFoundError: a directory does not exist, or there are no jobs under them.
    """
    roots = (
        [Path(d) for d in multirun_dir] if isinstance(multirun_dir, list | tuple) else [Path(multirun_dir)]
    )
    jobs = []
    for root in roots:
        jobs += _jobs_under(root)
    if not jobs:
        raise FileNotFoundError(f"no jobs (directories with .hydra/) under {', '.join(map(str, roots))}")
    return jobs


def _jobs_under(root: Path) -> list[Job]:
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
    return jobs


def select_seeds(jobs: list[Job], seeds: list[str] | None) -> list[Job]:
    """The jobs whose seed is one of ``seeds`` (all jobs for ``None``); a seed that matches no job is a
    :class:`ReportError` naming the seeds there are."""
    if not seeds:
        return jobs
    have = sorted({j.pair_key[1] for j in jobs}, key=_sort_key)
    missing = [s for s in seeds if s not in have]
    if missing:
        raise ReportError(f"--seeds {','.join(missing)} matches no job; seeds here: {','.join(have)}")
    return [j for j in jobs if j.pair_key[1] in seeds]


def group_jobs(jobs: list[Job]) -> tuple[list[str], list[Row]]:
    """Group by the override keys whose values differ between jobs (seed and fold are averaged over).

    Args:
        jobs: the jobs, e.g. from :func:`find_jobs`.

    Returns:
        ``(swept, rows)``: the swept override keys, sorted (never ``seed``, ``data.fold`` or the
        :data:`IGNORED_KEYS`); one :class:`Row` per combination of their values, in the order its first
        job comes, whose ``key`` is that combination and ``jobs`` its jobs.
    """
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


def default_choices() -> dict[str, str]:
    """The default option of each reference group in ``conf/train.yaml`` (the paper's choices: full,
    circle, d123, ...): the one place the default reference row comes from."""
    from fer_attention.config import config_dir

    defaults = yaml.safe_load((Path(config_dir()) / "train.yaml").read_text()).get("defaults", [])
    return {
        k: str(v)
        for entry in defaults
        if isinstance(entry, dict)
        for k, v in entry.items()
        if k in REFERENCE_GROUPS and v is not None
    }


def pick_reference(rows: list[Row], reference: str | None = None) -> Row | None:
    """The row named by ``reference`` (its label, e.g. ``lbp=uniform``, or its values, e.g. ``uniform``);
    by default the row made of the config defaults, else the first row. None for a one-row table."""
    if len(rows) < 2 and reference is None:
        return None
    if reference is not None:
        for row in rows:
            if reference in (row.label, ", ".join(v for _, v in row.key), row.label.replace(" ", "")):
                return row
        raise ReportError(
            f"--reference {reference!r} is not a row of this table; rows: {'; '.join(r.label for r in rows)}"
        )
    choices = default_choices()
    for row in rows:
        if row.key and all(choices.get(k) == v for k, v in row.key):
            return row
    return rows[0]


def compare_rows(rows: list[Row], reference: Row | None) -> list[str]:
    """Fill each row's paired comparison with ``reference`` (Holm-adjusted across the rows), and the jobs
    (of the row, or of the reference) that have no partner with the same fold and seed. Returns warnings
    (one line each) about what the statistics could not use."""
    if reference is None:
        return []
    warnings: list[str] = []
    ref = reference.by_pair()
    for row in rows:
        if row is reference:
            continue
        mine = row.by_pair()
        common = sorted(set(mine) & set(ref))
        row.unmatched = [j for j in row.jobs if j.metrics and j.pair_key not in ref]
        row.unmatched += [j for j in reference.jobs if j.metrics and j.pair_key not in mine]
        folds = {fold for fold, _ in common}
        # k-fold: folds differ between jobs, so training sets overlap -> the corrected t-test
        kfold = len(folds) > 1
        ratios = [j.test_train_ratio for j in row.jobs if j.test_train_ratio is not None]
        if kfold and not ratios:
            warnings.append(
                f"{row.label}: k-fold jobs without split sizes (metrics.json 'splits'): p is the "
                "uncorrected paired t-test, which overstates significance on overlapping folds"
            )
        ratio = float(np.mean(ratios)) if kfold and ratios else 0.0
        row.comparison = paired_comparison(
            np.array([mine[k] for k in common]),
            np.array([ref[k] for k in common]),
            ratio,
            folds=len(folds),
            repeats=len({seed for _, seed in common}),
        )
    compared = [r for r in rows if r.comparison is not None]
    for row, p in zip(compared, holm([r.comparison.p_corrected for r in compared]), strict=True):
        row.comparison.p_holm = p
    for line in warnings:
        log.warning(line)
    return warnings


def _fmt(vals: np.ndarray) -> str:
    if len(vals) == 0:
        return "-"
    if len(vals) == 1:
        return f"{100 * vals[0]:.2f}"
    return f"{100 * vals.mean():.2f} ± {100 * vals.std(ddof=1):.2f}"


def _num(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def summarise(rows: list[Row], swept: list[str]) -> list[dict[str, Any]]:
    """One dict per row: the swept values, mean and std (in %) of each metric, finished / total jobs,
    and the paired comparison with the reference row."""
    out = []
    for row in rows:
        entry: dict[str, Any] = dict(row.key) if row.key else {"configuration": row.label}
        for metric in METRICS:
            vals = row.values(metric)
            entry[f"{metric} mean"] = round(100 * float(vals.mean()), 3) if len(vals) else None
            entry[f"{metric} std"] = round(100 * float(vals.std(ddof=1)), 3) if len(vals) > 1 else None
        entry["runs"] = sum(j.metrics is not None for j in row.jobs)
        entry["jobs"] = len(row.jobs)
        c = row.comparison
        entry["pairs"] = c.pairs if c else None
        entry["folds"] = c.folds if c else None
        entry["seeds"] = c.repeats if c else None
        for name in ("mean_diff", "ci_low", "ci_high", "p_corrected", "p_holm", "p_wilcoxon"):
            entry[name] = _num(getattr(c, name), 4 if name.startswith("p_") else 3) if c else None
        for name in ("wins", "ties", "losses"):
            entry[name] = getattr(c, name) if c else None
        entry["reference"] = c is None and any(r.comparison for r in rows)
        out.append(entry)
    return out


def _comparison_cells(row: Row, reference: Row | None) -> list[str]:
    if reference is None:
        return []
    if row is reference:
        return ["reference", "", "", "", "", ""]
    c = row.comparison
    if c is None or c.pairs == 0:
        return ["n/a", "n/a", "n/a", "n/a", "n/a", "0"]
    diff = f"{c.mean_diff:+.2f}"
    if c.ci_low is not None:
        diff += f" [{c.ci_low:+.2f}, {c.ci_high:+.2f}]"
    return [
        diff,
        format_p(c.p_corrected),
        format_p(c.p_holm),
        format_p(c.p_wilcoxon),
        f"{c.wins}/{c.ties}/{c.losses}",
        str(c.pairs),
    ]


def _test_name(rows: list[Row]) -> str:
    """Which t-test the table's p-values come from: corrected (repeated) k-fold, or paired on one split."""
    comparisons = [r.comparison for r in rows if r.comparison is not None and r.comparison.pairs]
    if any(c.test_train_ratio > 0 for c in comparisons):
        return "corrected t"
    if any(c.folds > 1 for c in comparisons):
        return "paired t, uncorrected"
    return "paired t"


def _legend(rows: list[Row], reference: Row) -> str:
    comparisons = [r.comparison for r in rows if r.comparison is not None and r.comparison.pairs]
    test = _test_name(rows)
    repeats = max((c.repeats for c in comparisons), default=1)
    folds = max((c.folds for c in comparisons), default=1)
    text = (
        f"Δ: mean paired difference from the reference row ({reference.label}) over jobs with the same "
        "fold and seed, in points, with its 95% interval"
    )
    if test == "corrected t" and repeats > 1:
        text += (
            f"; p (corrected t): the corrected repeated k-fold t-test (Bouckaert & Frank 2004) over "
            f"k = {folds} folds x r = {repeats} seeds: variance × (1/(k r) + n_test/n_train), k r - 1 "
            "degrees of freedom, since k-fold training sets overlap; the interval is widened the same way"
        )
    elif test == "corrected t":
        text += (
            " widened by Nadeau & Bengio's correction (variance × (1/n + n_test/n_train)), since k-fold "
            "training sets overlap; p (corrected t): the corrected resampled t-test"
        )
    elif test == "paired t, uncorrected":
        text += (
            "; p (paired t, uncorrected): these k-fold jobs record no split sizes, so the correction for "
            "overlapping training sets could not be applied and p overstates significance"
        )
    else:
        text += "; p (paired t): the paired t-test over seeds on the one fixed split"
    return text + (
        "; p (Holm): the t-test's p adjusted with Holm's method across the rows compared with the "
        "reference; p (Wilcoxon, uncorrected): signed-rank test, corrected neither for overlapping "
        "training sets nor for the number of rows; W/T/L: jobs (fold, seed) where the row wins / ties / "
        "loses against the reference."
    )


def markdown_table(rows: list[Row], swept: list[str], title: str, reference: Row | None = None) -> str:
    header = [*(swept or ["configuration"]), "test acc (%)", "test macro F1 (%)", "val acc best (%)", "runs"]
    if reference is not None:
        header += [
            "Δ test acc vs ref [95% CI]",
            f"p ({_test_name(rows)})",
            "p (Holm)",
            "p (Wilcoxon, uncorrected)",
            "W/T/L",
            "pairs",
        ]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [v for _, v in row.key] if swept else [row.label]
        finished = sum(j.metrics is not None for j in row.jobs)
        cells += [_fmt(row.values(m)) for m in METRICS] + [f"{finished}/{len(row.jobs)}"]
        cells += _comparison_cells(row, reference)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Mean ± sample standard deviation over seeds and folds; runs = finished / launched jobs.")
    if reference is not None:
        lines.append(_legend(rows, reference))
    return "\n".join(lines) + "\n"


def folds_table(rows: list[Row]) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows × (fold, seed) test accuracy in %: the column names and one dict per row."""
    keys = sorted(
        {k for row in rows for k in row.by_pair()}, key=lambda k: (_sort_key(k[0]), _sort_key(k[1]))
    )
    seeds = {s for _, s in keys}
    folds = {f for f, _ in keys}

    def column(key: tuple[str, str]) -> str:
        fold, seed = key
        parts = ([f"fold {fold}"] if folds != {"-"} else []) + ([f"seed {seed}"] if len(seeds) > 1 else [])
        return " ".join(parts) or "test acc"

    columns = [column(k) for k in keys]
    out = []
    for row in rows:
        values = row.by_pair()
        entry: dict[str, Any] = {"row": row.label}
        for key, name in zip(keys, columns, strict=True):
            entry[name] = round(100 * values[key], 3) if key in values else None
        out.append(entry)
    return ["row", *columns], out


def _sort_key(value: str) -> tuple[int, float | str]:
    try:
        return 0, float(value)
    except ValueError:
        return 1, value


def _slug(text: str) -> str:
    """A file-name part for a row label: ``ablation=full, seed=0`` -> ``ablation-full_seed-0``."""
    text = text.replace("=", "-").replace(", ", "_")
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:120] or "all"


def _unfinished_lines(failed: list[Job], rows: list[Row]) -> str:
    text = ""
    if failed:
        text += "\nUnfinished jobs (left out of every row):\n\n" + "\n".join(
            f"- `{j.path.name}`: {j.state}" + (f" ({j.error})" if j.error else "") for j in failed
        )
        text += "\n"
    unmatched = [(row, j) for row in rows for j in row.unmatched]
    if unmatched:
        text += "\nUnmatched jobs (no job with the same fold and seed in the other row; left out of the paired test):\n\n"
        text += "\n".join(
            f"- `{j.path.name}` (fold {j.pair_key[0]}, seed {j.pair_key[1]}) in the comparison of {row.label}"
            for row, j in unmatched
        )
        text += "\n"
    return text


def report(
    multirun_dir: str | Path | list[str | Path],
    out_dir: str | Path | None = None,
    name: str | None = None,
    reference: str | None = None,
    seeds: list[str] | None = None,
) -> dict[str, Any]:
    """Aggregate a sweep into a table with paired tests, folds.csv and plots.

    Args:
        multirun_dir: a multirun directory, or a list of them whose jobs are pooled.
        out_dir: where the files go (default ``logs/reports/<name>``).
        name: the table's name (default the jobs' ``task_name``).
        reference: the row the others are compared with, by label (``lbp=uniform``) or value; default
            the row of the config defaults, i.e. the paper's choices.
        seeds: only the jobs of these seeds (default all).

    Returns:
        A dict with ``name``, ``out_dir``, ``table`` (markdown), ``rows`` (table.csv's rows),
        ``reference``, ``failed``, ``unmatched`` and ``warnings``.

    Raises:
        ReportError: ``reference`` or ``seeds`` matches no row or job (one line naming what exists).
        FileNotFoundError: no jobs under ``multirun_dir``.
    """
    dirs = list(multirun_dir) if isinstance(multirun_dir, list | tuple) else [multirun_dir]
    jobs = select_seeds(find_jobs(dirs), seeds)
    name = name or _table_name(jobs, Path(dirs[0]))
    swept, rows = group_jobs(jobs)
    ref_row = pick_reference(rows, reference)
    warnings = compare_rows(rows, ref_row)
    out = Path(out_dir) if out_dir else Path("logs") / "reports" / name
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows, swept, name, ref_row)
    failed = [j for j in jobs if j.metrics is None]
    table += _unfinished_lines(failed, rows)
    if warnings:
        table += "\nWarnings:\n\n" + "\n".join(f"- {w}" for w in warnings) + "\n"
    (out / "table.md").write_text(table)
    summary = summarise(rows, swept)
    _write_csv(out / "table.csv", list(summary[0]), summary)
    fold_columns, fold_rows = folds_table(rows)
    _write_csv(out / "folds.csv", fold_columns, fold_rows)
    plot_rows(
        [r.label for r in rows],
        [100 * r.values(COMPARED) for r in rows],
        [mean_interval(r.values(COMPARED)) for r in rows],
        [r.comparison for r in rows] if ref_row is not None else None,
        ref_row.label if ref_row is not None else None,
        out / "plot.png",
        name,
    )
    curves = [(row.label, *curve) for row in rows for j in row.jobs if (curve := val_curve(j)) is not None]
    if curves:
        plot_curves(curves, out / "curves.png", f"{name}: validation accuracy against training time")
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
        "reference": ref_row.label if ref_row is not None else None,
        "failed": [str(j.path) for j in failed],
        "unmatched": [str(j.path) for r in rows for j in r.unmatched],
        "warnings": warnings,
    }


def val_curve(job: Job) -> tuple[np.ndarray, np.ndarray] | None:
    """A job's (cumulative training seconds, validation accuracy in %) per epoch, from its
    ``csv/metrics.csv`` (``time/train_s`` and ``val/acc`` are logged on separate lines of one epoch);
    None without that file or those columns."""
    path = job.path / "csv" / "metrics.csv"
    if not path.is_file():
        return None
    seconds: dict[int, float] = {}
    acc: dict[int, float] = {}
    with open(path, newline="") as f:
        for line in csv.DictReader(f):
            if not line.get("epoch"):
                continue
            epoch = int(float(line["epoch"]))
            if line.get("time/train_s"):
                seconds[epoch] = float(line["time/train_s"])
            if line.get("val/acc"):
                acc[epoch] = 100.0 * float(line["val/acc"])
    epochs = sorted(set(seconds) & set(acc))
    if not epochs:
        return None
    return np.asarray([seconds[e] for e in epochs]), np.asarray([acc[e] for e in epochs])


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _table_name(jobs: list[Job], root: Path) -> str:
    for job in jobs:
        cfg_file = job.path / ".hydra" / "config.yaml"
        if cfg_file.is_file():
            task = (yaml.safe_load(cfg_file.read_text()) or {}).get("task_name")
            if task:
                return str(task)
    return root.name
