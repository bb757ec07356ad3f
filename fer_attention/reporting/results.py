"""A result folder that stands on its own: a sweep's jobs (configs, overrides, metrics, per-face
predictions, status, per-epoch CSV; never checkpoints or images), the exact command, the machine, the date and the wall time, so that
``fer-report <folder>/jobs`` re-aggregates it anywhere, with the report's own arguments that ``run.json``
records under ``report_args``."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from fer_attention.errors import ReportError
from fer_attention.runs import METRICS_FILE, PREDICTIONS_FILE, STATUS_FILE
from fer_attention.runtime import cpu_description

# what a published job keeps, relative to its job dir
JOB_FILES = (
    METRICS_FILE,
    PREDICTIONS_FILE,
    STATUS_FILE,
    ".hydra/config.yaml",
    ".hydra/overrides.yaml",
    "csv/metrics.csv",
)

# fer-report's options that shape a published table (and its along.csv): run.json's ``report_args``
REPORT_ARGS = ("reference", "seeds", "name", "along", "rows", "rope", "decide")
# the sweep dirs along.csv pools, relative to the result folder (``jobs`` is the folder's own)
ALONG_DIRS = "along_dirs"


def machine() -> dict[str, Any]:
    """The CPU model and extensions, core count, memory, OS and library versions of this machine."""
    import torch

    memory = None
    try:
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_description(),
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "gpu": gpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def _job_overrides(job_dir: Path) -> Path:
    """Where Hydra recorded a job's overrides (written when the job starts)."""
    return job_dir / ".hydra" / "overrides.yaml"


def sweep_command(sweep_dir: Path, job_dirs: Sequence[Path] = ()) -> str | None:
    """The ``fer-train -m ...`` command line of a sweep, from its ``multirun.yaml``; for a folder of one
    single run (``fer-train`` without ``-m``, no ``multirun.yaml``), ``fer-train ...`` from that job's
    ``.hydra/overrides.yaml``."""
    file = sweep_dir / "multirun.yaml"
    if not file.is_file():
        single = [_job_overrides(j) for j in job_dirs]
        if len(single) != 1 or not single[0].is_file():
            return None
        return "fer-train " + " ".join(_quote(str(o)) for o in yaml.safe_load(single[0].read_text()) or [])
    overrides = (yaml.safe_load(file.read_text()) or {}).get("hydra", {}).get("overrides", {})
    # the launcher and its settings say how the jobs ran (side by side or one after another)
    launcher = [
        o for o in overrides.get("hydra", []) if str(o).startswith(("hydra/launcher", "hydra.launcher"))
    ]
    return "fer-train -m " + " ".join(_quote(o) for o in [*overrides.get("task", []), *launcher])


def _quote(override: str) -> str:
    return f"'{override}'" if any(c in override for c in "()[]{}$ ,*") else override


def wall_time(sweep_dir: Path, job_dirs: list[Path]) -> dict[str, Any]:
    """Start (the sweep's ``multirun.yaml``; without one, the earliest job's ``.hydra/overrides.yaml``),
    end (the last ``metrics.json``) and the seconds between, plus the sum of the jobs' own ``seconds``."""
    records = [sweep_dir / "multirun.yaml"]
    if not records[0].is_file():
        records = [_job_overrides(j) for j in job_dirs]
    start = min((f.stat().st_mtime for f in records if f.is_file()), default=None)
    ends, job_seconds = [], 0.0
    for job in job_dirs:
        metrics = job / METRICS_FILE
        if metrics.is_file():
            ends.append(metrics.stat().st_mtime)
            job_seconds += float(json.loads(metrics.read_text()).get("seconds") or 0.0)
    end = max(ends) if ends else None

    def iso(t: float | None) -> str | None:
        return dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds") if t else None

    return {
        "started": iso(start),
        "ended": iso(end),
        "wall_seconds": round(end - start, 1) if start and end else None,
        "job_seconds": round(job_seconds, 1),
    }


def publish(
    sweep_dir: str | Path,
    out_dir: str | Path,
    append: bool = False,
    report_args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Copy the jobs of ``sweep_dir`` into ``out_dir/jobs/`` (only :data:`JOB_FILES`) and write
    ``out_dir/run.json`` with the command, machine, dates and wall time of each sweep, and the
    fer-report arguments the table is made with.

    Args:
        sweep_dir: the multirun directory.
        out_dir: the result folder.
        append: keep the jobs already in ``out_dir/jobs/`` and add this sweep's under
            ``jobs/<sweep dir name>/`` (more seeds of a committed table, possibly from another
            machine); run.json then lists every sweep.
        report_args: the table's fer-report options (:data:`REPORT_ARGS`, only those given), recorded
            as ``report_args`` so that ``fer-report out_dir/jobs`` makes the same table again; None
            writes no ``report_args``.

    Returns:
        run.json's content: ``sweeps`` (one entry per sweep) and the totals ``jobs`` and ``finished``;
        the last sweep's ``command`` and ``wall_seconds`` at the top level; ``report_args`` if given.

    Raises:
        FileNotFoundError: no jobs (directories with ``.hydra/``) under ``sweep_dir``, or, with
            ``append``, ``sweep_dir`` is inside ``out_dir/jobs/``.

    The new ``jobs/`` and ``run.json`` are built beside the old ones and swapped in by renames, so a
    kill leaves the old folder or the new one, never a half-written mix.
    """
    sweep_dir, out_dir = Path(sweep_dir), Path(out_dir)
    job_dirs = sorted(p.parent for p in sweep_dir.rglob(".hydra") if p.parent != sweep_dir)
    if not job_dirs:
        raise FileNotFoundError(f"no jobs (directories with .hydra/) under {sweep_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs_out = out_dir / "jobs"
    staging = out_dir / f".jobs.staging-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    if append and jobs_out.is_dir():
        target, old_sweeps = _stage_appended(sweep_dir, out_dir, jobs_out, staging)
    else:
        target, old_sweeps = staging, []
    _copy_jobs(sweep_dir, job_dirs, target)
    sweep = _sweep_record(sweep_dir, job_dirs)
    sweeps = [s for s in old_sweeps if s.get("sweep_dir") != str(sweep_dir)] + [sweep]
    info = {
        **sweep,
        "sweeps": sweeps,
        "jobs": sum(int(s.get("jobs") or 0) for s in sweeps),
        "finished": sum(int(s.get("finished") or 0) for s in sweeps),
    }
    if report_args is not None:
        info["report_args"] = dict(report_args)
    _swap_in(staging, jobs_out)
    _write_run_json(out_dir, info)
    return info


def _write_run_json(out_dir: Path, info: dict[str, Any]) -> None:
    """``out_dir/run.json``, written beside and renamed in (a kill leaves the old file or the new one)."""
    tmp = out_dir / f".run.json.{os.getpid()}"
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, out_dir / "run.json")


def read_report_args(folder: str | Path) -> dict[str, Any]:
    """The ``report_args`` of ``folder/run.json`` ({} without either): each of :data:`REPORT_ARGS` as
    fer-report's option takes it (text; a list of seeds or rows is joined with commas), and
    :data:`ALONG_DIRS` as a list of paths relative to ``folder``.

    Raises:
        ReportError: run.json is no JSON object, or ``report_args`` is no mapping of known keys.
    """
    file = Path(folder) / "run.json"
    if not file.is_file():
        return {}
    try:
        info = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ReportError(f"{file} is not JSON ({err})") from err
    recorded = info.get("report_args") if isinstance(info, dict) else None
    if recorded is None:
        return {}
    if not isinstance(recorded, dict):
        raise ReportError(f"{file}: report_args must be a mapping of fer-report options, got {recorded!r}")
    unknown = sorted(set(recorded) - {*REPORT_ARGS, ALONG_DIRS})
    if unknown:
        raise ReportError(
            f"{file}: report_args has unknown key {unknown[0]!r}; known: {', '.join([*REPORT_ARGS, ALONG_DIRS])}"
        )
    out: dict[str, Any] = {}
    for key, value in recorded.items():
        if value is None:
            continue
        if key == ALONG_DIRS:
            out[key] = [str(d) for d in (value if isinstance(value, list) else [value])]
        else:
            out[key] = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return out


def record_report_args(folder: str | Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into the ``report_args`` of ``folder/run.json`` (a None value removes its key);
    returns the new ``report_args``."""
    folder = Path(folder)
    info = json.loads((folder / "run.json").read_text())
    recorded = {**read_report_args(folder), **updates}
    info["report_args"] = {k: v for k, v in recorded.items() if v is not None}
    _write_run_json(folder, info)
    return info["report_args"]


def _stage_appended(
    sweep_dir: Path, out_dir: Path, jobs_out: Path, staging: Path
) -> tuple[Path, list[dict[str, Any]]]:
    """Copy the published ``jobs_out`` to ``staging``; returns where this sweep's jobs go in it and the
    sweeps run.json already lists."""
    if jobs_out.resolve() in (sweep_dir.resolve(), *sweep_dir.resolve().parents):
        raise FileNotFoundError(f"{sweep_dir} is inside {jobs_out}: nothing new to append")
    shutil.copytree(jobs_out, staging)
    old_info = json.loads((out_dir / "run.json").read_text()) if (out_dir / "run.json").is_file() else {}
    old_sweeps = old_info.get("sweeps") or ([old_info] if old_info else [])
    target = staging / sweep_dir.name
    if target.exists():
        shutil.rmtree(target)
    return target, old_sweeps


def _copy_jobs(sweep_dir: Path, job_dirs: list[Path], target: Path) -> None:
    """The :data:`JOB_FILES` of each job, and the sweep's ``multirun.yaml``, under ``target``."""
    for job in job_dirs:
        for rel in JOB_FILES:
            src = job / rel
            if src.is_file():
                dst = target / job.relative_to(sweep_dir) / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
    if (sweep_dir / "multirun.yaml").is_file():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(sweep_dir / "multirun.yaml", target / "multirun.yaml")


def _sweep_record(sweep_dir: Path, job_dirs: list[Path]) -> dict[str, Any]:
    """run.json's entry for one sweep: its command, this machine, its dates and wall time, its jobs."""
    return {
        "sweep_dir": str(sweep_dir),
        "command": sweep_command(sweep_dir, job_dirs),
        "machine": machine(),
        **wall_time(sweep_dir, job_dirs),
        "jobs": len(job_dirs),
        "finished": sum((j / METRICS_FILE).is_file() for j in job_dirs),
    }


def _swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` with two renames (the old tree is removed afterwards)."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    if old.exists():
        shutil.rmtree(old)


NOTES_HEADING = "## Notes"


def kept_notes(readme: str | Path) -> str:
    """The ``## Notes`` section of an existing README (to the end, one trailing newline), or ``""``: what a
    regenerated result README keeps of the hand-written text."""
    path = Path(readme)
    old = path.read_text() if path.is_file() else ""
    return old[old.index(NOTES_HEADING) :].rstrip() + "\n" if NOTES_HEADING in old else ""


def write_readme(out_dir: str | Path, info: dict[str, Any], table_md: str) -> Path:
    """``out_dir/README.md``: the table, the exact command, the machine, the dates and the wall time,
    and how to re-aggregate; a ``## Notes`` section already in the file is kept."""
    out_dir = Path(out_dir)
    path = out_dir / "README.md"
    notes = kept_notes(path)
    sweeps = info.get("sweeps") or [info]
    lines = [
        table_md.rstrip(),
        "",
        "![per-job accuracies and paired differences](plot.png)",
        "",
        *(
            ["![validation accuracy against training time](curves.png)", ""]
            if (out_dir / "curves.png").is_file()
            else []
        ),
    ]
    for number, sweep in enumerate(sweeps, 1):
        if len(sweeps) > 1:
            lines += [f"Sweep {number} of {len(sweeps)} (`{Path(str(sweep.get('sweep_dir'))).name}`):", ""]
        lines += _sweep_lines(sweep) + [""]
    lines += [
        f"`jobs/` holds every job's config, overrides, `metrics.json`, per-face `predictions.npz` (where the "
        "job wrote one), status and per-epoch CSV (no "
        f"checkpoints); `fer-report {out_dir}/jobs --out {out_dir}` re-aggregates this folder (with the "
        "report arguments `run.json` records under `report_args`; an option given on the command line wins), "
        "and `folds.csv` has every job's test accuracy.",
        "",
    ]
    path.write_text("\n".join(lines) + ("\n" + notes if notes else ""))
    return path


def _sweep_lines(sweep: dict[str, Any]) -> list[str]:
    m = sweep.get("machine") or {}
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    wall = sweep.get("wall_seconds")
    wall_text = f"{wall / 60:.1f} min ({wall:.0f} s)" if wall else "unknown"
    return [
        "| | |",
        "|---|---|",
        f"| command | `{sweep.get('command')}` |",
        f"| machine | {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB{gpu}; "
        f"{m.get('os')}, Python {m.get('python')}, torch {m.get('torch')} |",
        f"| started / ended | {sweep.get('started')} / {sweep.get('ended')} |",
        f"| wall time | {wall_text}; the jobs' own time {(sweep.get('job_seconds') or 0) / 60:.1f} min |",
        f"| jobs | {sweep.get('finished')} finished of {sweep.get('jobs')} |",
    ]
