"""`fer-report DIRS --along model.net.backbone.width`: one paired comparison per value of a config key
(the network width, say) instead of one table: at each value, each row against the reference row on the
jobs of that value with the same fold and seed, and a figure of Δ with its 95% interval against the
value, beside each row's accuracy and minutes per job. The value is read from each job's own
``.hydra/config.yaml``, so jobs that took it from a budget rather than an override count too."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from fer_attention.errors import ReportError
from fer_attention.reporting.aggregate import compare_rows, find_jobs, group_jobs, pick_reference
from fer_attention.reporting.decision import DEFAULT_DECIDE, DEFAULT_ROPE
from fer_attention.reporting.jobs import COMPARED, Job, Row, sort_key
from fer_attention.reporting.stats import format_p
from fer_attention.viz.figures import save_figure

# the decision's fields each point of along.csv carries
ALONG_DECISION = ("rope", "p_ref_better", "p_rope", "p_row_better", "p_tost", "outcome", "rope_equivalent")


def along_report(
    multirun_dirs: list[str | Path],
    key: str,
    out_dir: str | Path,
    reference: str | None = None,
    rows: list[str] | None = None,
    rope: float = DEFAULT_ROPE,
    decide: float = DEFAULT_DECIDE,
) -> dict[str, Any]:
    """Compare the rows with the reference row separately at each value of ``key``, with each comparison's
    decision against a ROPE of ``rope`` points at probability ``decide``.

    Args:
        multirun_dirs: sweep directories whose jobs are pooled.
        key: a dotted config key, e.g. ``model.net.backbone.width``.
        out_dir: where ``along.md``, ``along.csv`` and ``along.png`` go.
        reference: the reference row (as for :func:`fer_attention.reporting.aggregate.report`).
        rows: keep only these rows (labels such as ``ablation=full`` or values such as ``full``).

    Returns:
        ``{"key", "out_dir", "table" (markdown), "points" (one dict per value and row)}``.

    Raises:
        ReportError: no job has ``key`` in its config, or a value has fewer than two rows.
    """
    by_value = _jobs_by_value(multirun_dirs, key)
    points = []
    for value in sorted(by_value, key=sort_key):
        points += _points_at(by_value[value], key, value, reference, rows, rope, decide)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(points, out / "along.csv")
    table = _markdown(points, key)
    (out / "along.md").write_text(table)
    _plot(points, key, out / "along.png")
    return {"key": key, "out_dir": str(out), "table": table, "points": points}


def _jobs_by_value(multirun_dirs: list[str | Path], key: str) -> dict[str, list[Job]]:
    """The finished jobs grouped by their value of ``key``, which is dropped from their overrides (it is
    what the comparisons run along, not what makes a row)."""
    jobs = [j for j in find_jobs([Path(d) for d in multirun_dirs]) if j.metrics is not None]
    by_value: dict[str, list[Job]] = {}
    for job in jobs:
        # a config group (``ablation``, ``lbp``, ...) by its option's name, not its node's content
        value = job.group_choice(key) or job.config_value(key)
        if value is not None:
            job.overrides = {k: v for k, v in job.overrides.items() if k != key}
            by_value.setdefault(value, []).append(job)
    if not by_value:
        raise ReportError(f"--along {key}: no finished job has that key in its .hydra/config.yaml")
    return by_value


def _points_at(
    jobs: list[Job],
    key: str,
    value: str,
    reference: str | None,
    rows: list[str] | None,
    rope: float,
    decide: float,
) -> list[dict[str, Any]]:
    """The rows of the jobs at ``key=value``, each compared with the reference row: one point per row."""
    _, groups = group_jobs(jobs)
    if rows:
        groups = [g for g in groups if g.label in rows or ", ".join(v for _, v in g.key) in rows]
    if len(groups) < 2:
        raise ReportError(
            f"--along {key}: at {key}={value} there are fewer than two rows "
            f"({', '.join(g.label for g in groups) or 'none'})"
        )
    ref = pick_reference(groups, reference)
    compare_rows(groups, ref, rope, decide)
    return [_point(row, ref, key, value) for row in groups]


def _point(row: Row, ref: Row, key: str, value: str) -> dict[str, Any]:
    """One row at one value: its accuracy, minutes per job and paired comparison (None for the reference)."""
    accs = 100 * row.values(COMPARED)
    minutes = [j.metrics.get("seconds") for j in row.jobs if j.metrics.get("seconds")]
    c = row.comparison
    return {
        key: value,
        "row": row.label,
        "reference": ref.label,
        "jobs": len(accs),
        "test/acc mean": float(accs.mean()),
        "test/acc std": float(accs.std(ddof=1)) if len(accs) > 1 else None,
        "minutes per job": float(np.mean(minutes)) / 60 if minutes else None,
        "pairs": c.pairs if c else None,
        "mean_diff": c.mean_diff if c else None,
        "ci_low": c.ci_low if c else None,
        "ci_high": c.ci_high if c else None,
        "p_corrected": c.p_corrected if c else None,
        "seeds": c.repeats if c else None,
        **{name: getattr(c, name) if c else None for name in ALONG_DECISION},
    }


def _write_csv(points: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(points[0]))
        writer.writeheader()
        writer.writerows(
            [{k: round(v, 4) if isinstance(v, float) else v for k, v in p.items()} for p in points]
        )


def _markdown(points: list[dict[str, Any]], key: str) -> str:
    lines = [
        f"### Paired comparisons along {key}",
        "",
        f"| {key} | row | test acc (%) | min / job | Δ vs reference [95% CI] | p (corrected t) | pairs (seeds) "
        "| P(ref / ROPE / row) | outcome | equivalent at ± |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        acc = f"{p['test/acc mean']:.2f}" + (
            f" ± {p['test/acc std']:.2f}" if p["test/acc std"] is not None else ""
        )
        decision = ""
        if p["mean_diff"] is None:
            diff, pval, pairs = "reference", "", ""
        else:
            diff = f"{p['mean_diff']:+.2f}"
            if p["ci_low"] is not None:
                diff += f" [{p['ci_low']:+.2f}, {p['ci_high']:+.2f}]"
            pval, pairs = format_p(p["p_corrected"]), f"{p['pairs']} ({p['seeds']})"
            if p["p_rope"] is not None:
                decision = f"{p['p_ref_better']:.2f} / {p['p_rope']:.2f} / {p['p_row_better']:.2f}"
            decision += f" | {p['outcome']} | "
            decision += "" if p["rope_equivalent"] is None else f"{p['rope_equivalent']:.2f}"
        minutes = "" if p["minutes per job"] is None else f"{p['minutes per job']:.2f}"
        lines.append(
            f"| {p[key]} | {p['row']} | {acc} | {minutes} | {diff} | {pval} | {pairs} | {decision or ' | |'} |"
        )
    lines += [
        "",
        "At each value, every row is paired with the reference row on jobs of that value with the same fold "
        "and seed (corrected k-fold t-test, as in the tables). P(ref / ROPE / row) and outcome: the "
        f"Bayesian correlated t-test's decision at a ROPE of ±{_rope(points)} points "
        "(docs/statistics.md, as in the tables); equivalent at ±: the smallest ROPE at which the row would be "
        "equivalent to the reference.",
    ]
    return "\n".join(lines) + "\n"


def _rope(points: list[dict[str, Any]]) -> str:
    rope = next((p["rope"] for p in points if p.get("rope") is not None), None)
    return "n/a" if rope is None else f"{rope:g}"


def _positions(values: list[str]) -> tuple[dict[str, float], bool]:
    """Where each value of the key goes on the x axis, and whether that axis is numeric (log 2, as widths
    are) or one slot per option in table order (``ablation=full,vgg16``)."""
    try:
        return {v: float(v) for v in values}, True
    except ValueError:
        return {v: float(i) for i, v in enumerate(values)}, False


def _plot(points: list[dict[str, Any]], key: str, path: Path) -> Path:
    fig = Figure(figsize=(12.0, 3.8))
    ax_diff, ax_acc, ax_min = fig.subplots(1, 3)
    values = list(dict.fromkeys(p[key] for p in points))
    at, numeric = _positions(values)
    style = "-o" if numeric else "o"  # options of a group are not joined by lines
    rows = sorted({p["row"] for p in points})
    for k, row in enumerate(rows):
        mine = [p for p in points if p["row"] == row]
        x = [at[p[key]] for p in mine]
        ax_acc.errorbar(
            x,
            [p["test/acc mean"] for p in mine],
            [p["test/acc std"] or 0 for p in mine],
            fmt=style,
            capsize=3,
            color=f"C{k}",
            label=row,
        )
        ax_min.plot(x, [p["minutes per job"] or np.nan for p in mine], style, color=f"C{k}", label=row)
        compared = [p for p in mine if p["mean_diff"] is not None]
        if compared:
            cx = [at[p[key]] for p in compared]
            diff = np.array([p["mean_diff"] for p in compared])
            low = np.array([p["ci_low"] if p["ci_low"] is not None else p["mean_diff"] for p in compared])
            high = np.array([p["ci_high"] if p["ci_high"] is not None else p["mean_diff"] for p in compared])
            ax_diff.errorbar(
                cx,
                diff,
                [diff - low, high - diff],
                fmt=style,
                capsize=3,
                color=f"C{k}",
                label=f"{row} - {compared[0]['reference']}",
            )
    ax_diff.axhline(0.0, color="grey", lw=1)
    for ax, ylabel in (
        (ax_diff, "Δ test accuracy (points), 95% CI"),
        (ax_acc, "test accuracy (%), mean ± sd"),
        (ax_min, "minutes per job"),
    ):
        if numeric:
            ax.set_xscale("log", base=2)
            ax.minorticks_off()
        else:
            ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set_xticks([at[v] for v in values], values)
        ax.set_xlabel(key)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
