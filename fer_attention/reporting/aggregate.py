"""Turn a multirun directory into a table: group jobs by their swept values, mean ± std over seeds and
folds, compare every row with a reference row on matching (fold, seed) jobs, list failed, missing and
unmatched jobs, and write table.md, table.csv, folds.csv, plot.png, curves.png (validation accuracy
against training time) and confusion matrices."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fer_attention.errors import ReportError
from fer_attention.reporting.decision import (
    DEFAULT_DECIDE,
    DEFAULT_ROPE,
    decide_comparison,
    face_differences,
    kfold_posterior,
    two_level_posterior,
)
from fer_attention.reporting.jobs import COMPARED, Job, Row, launch_order, sort_key
from fer_attention.reporting.plots import plot_curves, plot_rows
from fer_attention.reporting.stats import holm, mean_interval, paired_comparison
from fer_attention.reporting.tables import table_markdown, table_verdict, write_csv_tables
from fer_attention.runs import METRICS_FILE, read_status
from fer_attention.viz.figures import plot_confusion_matrix

log = logging.getLogger(__name__)

# values averaged over rather than grouped by; a (fold, seed) pair identifies a job within a row
REPEAT_KEYS = ("seed", "data.fold")
# overrides that never define a row
IGNORED_KEYS = ("hydra.", "paths.", "skip_done", "resume", "threads", "logger", "data.root", "task_name")
# the top-level config groups whose default a default reference row is made of (the paper's choices)
REFERENCE_GROUPS = ("ablation", "lbp", "dilation", "model", "augment")


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
    for hydra_dir in sorted(root.rglob(".hydra"), key=lambda d: launch_order(d.relative_to(root))):
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
    have = sorted({j.pair_key[1] for j in jobs}, key=sort_key)
    missing = [s for s in seeds if s not in have]
    if missing:
        raise ReportError(f"--seeds {','.join(missing)} matches no job; seeds here: {','.join(have)}")
    return [j for j in jobs if j.pair_key[1] in seeds]


def group_jobs(jobs: list[Job]) -> tuple[list[str], list[Row]]:
    """Group by the override keys whose values differ between jobs (seed and fold are averaged over).

    A job without an override for a key others sweep (pooled from another sweep, e.g. the module table's
    ``full`` jobs as the dilation table's ``d123``) takes the config group option it was composed with
    (:meth:`Job.swept_value`).

    Args:
        jobs: the jobs, e.g. from :func:`find_jobs`.

    Returns:
        ``(swept, rows)``: the swept override keys, sorted (never ``seed``, ``data.fold`` or the
        :data:`IGNORED_KEYS`); one :class:`Row` per combination of their values, in the order its first
        job comes, whose ``key`` is that combination and ``jobs`` its jobs.
    """
    keys = sorted({k for j in jobs for k in j.overrides})
    keys = [k for k in keys if k not in REPEAT_KEYS and not k.startswith(IGNORED_KEYS)]
    values = {k: [j.swept_value(k) for j in jobs] for k in keys}
    swept = [k for k in keys if len(set(values[k])) > 1]
    rows: dict[tuple, Row] = {}
    for i, job in enumerate(jobs):
        key = tuple((k, values[k][i]) for k in swept)
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


def compare_rows(
    rows: list[Row], reference: Row | None, rope: float = DEFAULT_ROPE, decide: float = DEFAULT_DECIDE
) -> list[str]:
    """Fill each row's paired comparison with ``reference`` (Holm-adjusted across the rows) and its decision
    against a ROPE of ``rope`` points at posterior probability ``decide``
    (:mod:`fer_attention.reporting.decision`), and the jobs (of the row, or of the reference) that have no
    partner with the same fold and seed. Returns warnings (one line each) about what the statistics could
    not use.

    Raises:
        ReportError: two paired jobs' per-face predictions are for different faces."""
    if reference is None:
        return []
    warnings: list[str] = []
    no_predictions: list[str] = []
    for row in rows:
        if row is not reference:
            warnings += _compare_row(row, reference, rope, decide, no_predictions)
    if no_predictions:
        warnings.append(
            f"jobs without per-face predictions ({', '.join(no_predictions)}): on this fixed split the "
            "decision counts the seeds' variance only, not the test faces'"
        )
    compared = [r for r in rows if r.comparison is not None]
    for row, p in zip(compared, holm([r.comparison.p_corrected for r in compared]), strict=True):
        row.comparison.p_holm = p
    for line in warnings:
        log.warning(line)
    return warnings


def _compare_row(
    row: Row, reference: Row, rope: float, decide: float, no_predictions: list[str]
) -> list[str]:
    """One row's paired comparison and decision against ``reference`` (see :func:`compare_rows`); adds the
    fixed-split jobs without predictions to ``no_predictions``; returns warnings."""
    warnings = []
    ref, mine = reference.by_pair(), row.by_pair()
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
    row_accs, ref_accs = np.array([mine[k] for k in common]), np.array([ref[k] for k in common])
    seeds = len({seed for _, seed in common})
    row.comparison = paired_comparison(row_accs, ref_accs, ratio, folds=len(folds), repeats=seeds)
    posterior = kfold_posterior(row_accs - ref_accs, ratio, len(folds), seeds)
    if not kfold and len(common) > 1:
        mine_jobs, ref_jobs = row.jobs_by_pair(), reference.jobs_by_pair()
        faces = face_differences([(mine_jobs[k].path, ref_jobs[k].path) for k in common])
        if faces is None:
            for job in (j for k in common for j in (mine_jobs[k], ref_jobs[k])):
                if job.predictions is None and job.path.name not in no_predictions:
                    no_predictions.append(job.path.name)
        else:
            posterior = two_level_posterior(faces)
            row.comparison.faces = int(faces.shape[1])
    decide_comparison(row.comparison, posterior, rope, decide)
    return warnings


def _reference_row(jobs: list[Job], rows: list[Row], reference: str | None) -> tuple[Row | None, str | None]:
    """The reference row, or None and a warning when the jobs mix datasets or protocols (an error when
    ``reference`` was named)."""
    mixed = check_one_dataset(jobs)
    if not mixed:
        return pick_reference(rows, reference), None
    both = f"{'/'.join(mixed[0])} and {'/'.join(mixed[1])}"
    if reference is not None:
        raise ReportError(
            f"the jobs mix datasets or protocols ({both}): rows of different data cannot be paired against "
            "--reference"
        )
    return None, f"the jobs mix datasets or protocols ({both}): no paired comparison"


def check_one_dataset(jobs: list[Job]) -> tuple[str, str] | None:
    """The (dataset, protocol) pairs of the finished jobs: None when they are all one, else the first two
    that differ (rows of different datasets or protocols cannot be paired)."""
    seen: list[tuple[str, str]] = []
    for job in jobs:
        if job.metrics is None:
            continue
        kind = (str(job.config_value("data.name")), str(job.config_value("data.protocol")))
        if kind not in seen:
            seen.append(kind)
        if len(seen) > 1:
            return seen[0], seen[1]
    return None


def report(
    multirun_dir: str | Path | list[str | Path],
    out_dir: str | Path | None = None,
    name: str | None = None,
    reference: str | None = None,
    seeds: list[str] | None = None,
    rope: float = DEFAULT_ROPE,
    decide: float = DEFAULT_DECIDE,
) -> dict[str, Any]:
    """Aggregate a sweep into a table with paired tests and decisions, folds.csv and plots.

    Args:
        multirun_dir: a multirun directory, or a list of them whose jobs are pooled.
        out_dir: where the files go (default ``logs/reports/<name>``).
        name: the table's name (default the jobs' ``task_name``).
        reference: the row the others are compared with, by label (``lbp=uniform``) or value; default
            the row of the config defaults, i.e. the paper's choices.
        seeds: only the jobs of these seeds (default all).
        rope, decide: the region of practical equivalence (points) and the posterior probability at
            which a row is decided (:mod:`fer_attention.reporting.decision`).

    Returns:
        A dict with ``name``, ``out_dir``, ``table`` (markdown), ``rows`` (table.csv's rows),
        ``reference``, ``failed``, ``unmatched`` and ``warnings``.

    Raises:
        ReportError: ``reference`` or ``seeds`` matches no row or job (one line naming what exists); a
            ``reference`` is named but the jobs mix datasets or protocols; paired jobs' predictions are of
            different faces.
        FileNotFoundError: no jobs under ``multirun_dir``.
    """
    dirs = list(multirun_dir) if isinstance(multirun_dir, list | tuple) else [multirun_dir]
    jobs = select_seeds(find_jobs(dirs), seeds)
    name = name or _table_name(jobs, Path(dirs[0]))
    swept, rows = group_jobs(jobs)
    ref_row, mixed = _reference_row(jobs, rows, reference)
    warnings = compare_rows(rows, ref_row, rope, decide) + ([mixed] if mixed else [])
    out = Path(out_dir) if out_dir else Path("logs") / "reports" / name
    out.mkdir(parents=True, exist_ok=True)
    failed = [j for j in jobs if j.metrics is None]
    table = table_markdown(rows, swept, name, ref_row, failed, warnings, decide)
    (out / "table.md").write_text(table)
    summary = write_csv_tables(out, rows, swept)
    _plot_report(rows, ref_row, out, name)
    return {
        "name": name,
        "out_dir": str(out),
        "table": table,
        "rows": summary,
        "reference": ref_row.label if ref_row is not None else None,
        "failed": [str(j.path) for j in failed],
        "unmatched": [str(j.path) for r in rows for j in r.unmatched],
        "warnings": warnings,
        "verdict": table_verdict(rows, ref_row),
    }


def _plot_report(rows: list[Row], ref_row: Row | None, out: Path, name: str) -> None:
    """plot.png, curves.png (when jobs logged per-epoch CSVs) and one confusion matrix per row into ``out``."""
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


def _slug(text: str) -> str:
    """A file-name part for a row label: ``ablation=full, seed=0`` -> ``ablation-full_seed-0``."""
    text = text.replace("=", "-").replace(", ", "_")
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:120] or "all"


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


def _table_name(jobs: list[Job], root: Path) -> str:
    for job in jobs:
        cfg_file = job.path / ".hydra" / "config.yaml"
        if cfg_file.is_file():
            task = (yaml.safe_load(cfg_file.read_text()) or {}).get("task_name")
            if task:
                return str(task)
    return root.name
