"""The table's text and CSV files: table.md (mean ± sd of each row, its paired comparison with the
reference row, the legend saying which test the p-values come from, unfinished and unmatched jobs),
table.csv (one line per row) and folds.csv (each row's test accuracy per fold and seed)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from fer_attention.reporting.jobs import METRICS, Job, Row, sort_key
from fer_attention.reporting.stats import format_p


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
    """The markdown table under ``### title``: one line per row, then what its columns mean."""
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
    keys = sorted({k for row in rows for k in row.by_pair()}, key=lambda k: (sort_key(k[0]), sort_key(k[1])))
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


def table_markdown(
    rows: list[Row],
    swept: list[str],
    title: str,
    reference: Row | None,
    failed: list[Job],
    warnings: list[str],
) -> str:
    """table.md: the table, then the unfinished and unmatched jobs and the warnings, if any."""
    table = markdown_table(rows, swept, title, reference)
    table += _unfinished_lines(failed, rows)
    if warnings:
        table += "\nWarnings:\n\n" + "\n".join(f"- {w}" for w in warnings) + "\n"
    return table


def write_csv_tables(out: Path, rows: list[Row], swept: list[str]) -> list[dict[str, Any]]:
    """Write ``out/table.csv`` (:func:`summarise`) and ``out/folds.csv`` (:func:`folds_table`); returns
    table.csv's rows."""
    summary = summarise(rows, swept)
    _write_csv(out / "table.csv", list(summary[0]), summary)
    fold_columns, fold_rows = folds_table(rows)
    _write_csv(out / "folds.csv", fold_columns, fold_rows)
    return summary


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
