"""`fer-report --wandb`: the paired table of a sweep as a W&B run of job type ``report`` in the sweep's
group, beside its training runs: the table and the folds as ``wandb.Table``, plot.png and curves.png as
images, the exact command, and summary values per row for the W&B UI's charts."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from fer_attention.tracking import finish_wandb, wandb_credentials_available

log = logging.getLogger(__name__)

# table.csv columns a row's summary values come from (W&B key suffix -> column)
SUMMARY_COLUMNS = {
    "test_acc": "test/acc mean",
    "test_acc_std": "test/acc std",
    "delta": "mean_diff",
    "ci_low": "ci_low",
    "ci_high": "ci_high",
    "p_corrected": "p_corrected",
    "p_holm": "p_holm",
    "p_wilcoxon_uncorrected": "p_wilcoxon",
    "p_ref_better": "p_ref_better",
    "p_rope": "p_rope",
    "p_row_better": "p_row_better",
    "p_tost": "p_tost",
    "outcome": "outcome",
    "pairs": "pairs",
}


class DashboardUnavailable(RuntimeError):
    """W&B cannot take the report (not installed, or disabled); the message is one line."""


def _read_csv(path: Path) -> tuple[list[str], list[list[Any]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return (rows[0], [[_value(v) for v in r] for r in rows[1:]]) if rows else ([], [])


def _value(text: str) -> Any:
    if text in ("", "None"):
        return None
    try:
        return float(text) if any(c in text for c in ".e") else int(text)
    except ValueError:
        return text


def sweep_identity(sweep_dir: Path, table_name: str) -> dict[str, str]:
    """The W&B project and group the sweep's training runs logged to (their config, or the defaults)."""
    project = "fer-attention"
    for cfg_file in sorted(sweep_dir.rglob(".hydra/config.yaml"))[:1]:
        cfg = yaml.safe_load(cfg_file.read_text()) or {}
        project = ((cfg.get("logger") or {}).get("wandb") or {}).get("project") or project
    return {"project": str(project), "group": f"{table_name}/{sweep_dir.name}"}


def _run_config(result: dict[str, Any], command: str | None) -> dict[str, Any]:
    """The W&B config of a report run: its command, reference row, table and claim verdict."""
    verdict = result.get("verdict")
    return {
        "command": command,
        "reference": result.get("reference"),
        "table": result["name"],
        "verdict": list(verdict) if verdict else None,
    }


def log_report(result: dict[str, Any], sweep_dir: str | Path, command: str | None = None) -> Path:
    """Log a report (:func:`fer_attention.reporting.aggregate.report`'s result, files already written)
    to W&B, online with credentials, else offline under ``<out dir>/wandb``.

    Args:
        result: what ``report`` returned (its ``out_dir`` holds table.csv, folds.csv and the plots).
        sweep_dir: the (first) sweep directory, whose name and task give the W&B group.
        command: the fer-report command line, recorded in the run's config.

    Returns:
        The W&B run's local directory.

    Raises:
        DashboardUnavailable: wandb is not installed or ``WANDB_MODE=disabled``.
    """
    if os.environ.get("WANDB_MODE") == "disabled":
        raise DashboardUnavailable("W&B is disabled (WANDB_MODE=disabled): the report is in the files only")
    try:
        import wandb
    except ImportError:
        raise DashboardUnavailable("--wandb needs the wandb package (pip install wandb)") from None
    out = Path(result["out_dir"])
    ident = sweep_identity(Path(sweep_dir), result["name"])
    mode = "online" if wandb_credentials_available() else "offline"
    if mode == "offline":
        log.info("W&B: no credentials found, logging the report offline (upload later with `wandb sync`)")
    columns, rows = _read_csv(out / "table.csv")
    fold_columns, fold_rows = _read_csv(out / "folds.csv")
    run = wandb.init(
        project=ident["project"],
        group=ident["group"],
        job_type="report",
        name=f"report-{result['name']}",
        dir=str(out),
        mode=mode,
        config=_run_config(result, command),
        reinit="finish_previous",
    )
    try:
        logged: dict[str, Any] = {
            "table": wandb.Table(columns=columns, data=rows),
            "folds": wandb.Table(columns=fold_columns, data=fold_rows),
        }
        for picture in ("plot.png", "curves.png"):
            if (out / picture).is_file():
                logged[picture.removesuffix(".png")] = wandb.Image(str(out / picture))
        run.log(logged)
        # the columns before the metrics name the row (the swept values)
        key_columns = columns[: columns.index("test/acc mean")] if "test/acc mean" in columns else columns[:1]
        for row in rows:
            entry = dict(zip(columns, row, strict=False))
            label = ",".join(f"{k}={entry.get(k)}" for k in key_columns) or "row"
            for suffix, column in SUMMARY_COLUMNS.items():
                if entry.get(column) is not None:
                    run.summary[f"{label}/{suffix}"] = entry[column]
        return Path(run.dir).parent
    finally:
        finish_wandb()
