"""The table's text and CSV files: table.md (mean ± sd of each row, its paired comparison with the
reference row, the legend saying which test the p-values come from, unfinished and unmatched jobs),
table.csv (one line per row) and folds.csv (each row's test accuracy per fold and seed)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from fer_attention.reporting.decision import UNDECIDED, claim_verdict
from fer_attention.reporting.jobs import METRICS, Job, Row, sort_key
from fer_attention.reporting.stats import format_p

# table.csv's decision columns, after the paired test's
DECISION_FIELDS = (
    "rope",
    "p_ref_better",
    "p_rope",
    "p_row_better",
    "p_tost",
    "outcome",
    "variance",
    "faces",
    "rope_equivalent",
    "seeds_to_decide",
)


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
        for name in DECISION_FIELDS:
            value = getattr(c, name) if c else None
            entry[name] = _num(value, 4) if isinstance(value, float) else value
        entry["reference"] = c is None and any(r.comparison for r in rows)
        out.append(entry)
    return out


def _comparison_cells(row: Row, reference: Row | None) -> list[str]:
    if reference is None:
        return []
    if row is reference:
        return ["reference", "", "", "", "", "", "", "", ""]
    c = row.comparison
    if c is None or c.pairs == 0:
        return ["n/a", "n/a", "n/a", "n/a", "n/a", "0", "n/a", "n/a", UNDECIDED]
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
        _probabilities(c),
        format_p(c.p_tost),
        c.outcome or UNDECIDED,
    ]


def _probabilities(c) -> str:
    if c.p_rope is None:
        return "n/a"
    return f"{c.p_ref_better:.2f} / {c.p_rope:.2f} / {c.p_row_better:.2f}"


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
    text += (
        "; p (Holm): the t-test's p adjusted with Holm's method across the rows compared with the "
        "reference; p (Wilcoxon, uncorrected): signed-rank test, corrected neither for overlapping "
        "training sets nor for the number of rows; W/T/L: jobs (fold, seed) where the row wins / ties / "
        "loses against the reference."
    )
    rope = next((c.rope for c in comparisons if c.rope is not None), None)
    if rope is None:
        return text
    sources = sorted({c.variance for c in comparisons if c.variance})
    return text + (
        f" P(ref / ROPE / row): posterior probabilities of the Bayesian correlated t-test (Benavoli et al. "
        f"2017) that the reference is better by more than {rope:g} points, that the two are within ±{rope:g} "
        f"points (the region of practical equivalence, ROPE), and that the row is better by more than "
        f"{rope:g}; its variance: {'; '.join(VARIANCE_TEXT[v] for v in sources) or 'n/a'}; "
        f"p (TOST ±{rope:g}): two one-sided t-tests of equivalence at the ROPE, with the same variance; "
        "outcome: the region whose probability reaches the decision threshold, else undecided."
    )


# what each source of a posterior's variance means, for the legend
VARIANCE_TEXT = {
    "corrected k-fold": "corrected k-fold, as the t-test's interval",
    "seeds + faces": "seeds + faces, the seeds x faces variance components of the jobs' per-face predictions",
    "seeds": "seeds, the paired differences over seeds only (no per-face predictions)",
}


def markdown_table(
    rows: list[Row], swept: list[str], title: str, reference: Row | None = None, decide: float | None = None
) -> str:
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
            "P(ref / ROPE / row)",
            f"p (TOST ±{_rope_text(rows)})",
            "outcome",
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
        if decide is not None:
            lines += ["", verdict_line(rows, reference, decide)]
    return "\n".join(lines) + "\n"


def _rope_text(rows: list[Row]) -> str:
    rope = next((r.comparison.rope for r in rows if r.comparison and r.comparison.rope is not None), None)
    return "n/a" if rope is None else f"{rope:g}"


def table_verdict(rows: list[Row], reference: Row | None) -> tuple[str, str] | None:
    """The claim verdict of the reference row against every other row
    (:func:`fer_attention.reporting.decision.claim_verdict`); None without a reference."""
    if reference is None:
        return None
    compared = [r for r in rows if r is not reference and r.comparison is not None]
    return claim_verdict([(r.label, r.comparison.outcome or UNDECIDED) for r in compared])


def verdict_line(rows: list[Row], reference: Row, decide: float) -> str:
    """One paragraph: the verdict on the reference row being best, and for each undecided row what budget
    would decide it (a second pair, more seeds, or none: the smallest ROPE at which it would be equivalent)."""
    verdict, reason = table_verdict(rows, reference) or ("undecided", "")
    text = f"**Verdict** for {reference.label} (ROPE ±{_rope_text(rows)} points, P ≥ {decide:g}): **{verdict}**; {reason}."
    budget = []
    for row in rows:
        c = row.comparison
        if row is reference or c is None or c.outcome != UNDECIDED:
            continue
        if c.pairs < 2:
            budget.append(
                f"{row.label}: {c.pairs} pair{'' if c.pairs == 1 else 's'}, and a decision needs 2 (another seed)"
            )
        elif c.rope_equivalent is None:
            continue
        elif c.seeds_to_decide is not None:
            budget.append(f"{row.label}: about {c.seeds_to_decide} seeds would decide it")
        else:
            budget.append(
                f"{row.label}: no number of seeds would (equivalent only at a ROPE of ±{c.rope_equivalent:.2f})"
            )
    if budget:
        text += " What would decide the rest, if the mean and the variance stay: " + "; ".join(budget) + "."
    return text


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
    decide: float | None = None,
) -> str:
    """table.md: the table (with the verdict at ``decide``), then the unfinished and unmatched jobs and the
    warnings, if any."""
    table = markdown_table(rows, swept, title, reference, decide)
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
