"""The pretrained regime of a paper table: every row is first trained on FER2013 as that same row
(`experiment=pretrain_fer2013 <group>=<row>`), then fine-tuned on a lab dataset from its own checkpoint
(`model.init_from`), over every fold and seed, and reported like the scratch table.

    python -m experiments.pretrained pretrain --table ablation_modules [--rows full,vgg16]
    python -m experiments.pretrained finetune --table ablation_modules [--rows ...] [--seeds 0,1] \
        [--data ckplus --data-root ../shared/data/ckplus48] [--sweep-dir DIR] [-- more overrides]

(`make ablation-modules-pretrained`, `make ablation-lbp-pretrained ROWS=circle,uniform,ror`, ...). `pretrain`
skips rows whose checkpoint exists, and copies the checkpoint of a row already trained whose config is the
same network (the paper's own choice is one network in every table: `ablation=full` = `lbp=circle` =
`dilation=d123`); `finetune` stops with one line naming the make target when one is missing, so no row is
fine-tuned from scratch by accident. `--dry-run` prints the commands instead. `publish --to DIR` copies
the FER2013 runs (configs, metrics, per-epoch CSV; no checkpoints) into a result folder with their table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def table_rows(table: str) -> tuple[str, list[str]]:
    """The config group a table sweeps (ablation, lbp, dilation) and its rows, from conf/sweep/<table>.yaml."""
    path = ROOT / "conf" / "sweep" / f"{table}.yaml"
    if not path.is_file():
        tables = sorted(p.stem for p in path.parent.glob("ablation_*.yaml"))
        raise SystemExit(f"error: --table {table} is not a table; tables: {', '.join(tables)}")
    params = yaml.safe_load(path.read_text())["hydra"]["sweeper"]["params"]
    ((group, rows),) = ((k, v) for k, v in params.items() if not k.startswith("data."))
    return group, [r.strip() for r in str(rows).split(",")]


def checkpoint_path(out: Path, group: str, row: str) -> Path:
    """Where the FER2013 network of one row is kept."""
    return out / f"{group}-{row}.ckpt"


def pick_rows(table: str, rows: str | None) -> tuple[str, list[str]]:
    group, every = table_rows(table)
    if not rows:
        return group, every
    chosen = [r.strip() for r in rows.split(",") if r.strip()]
    unknown = [r for r in chosen if r not in every]
    if unknown:
        raise SystemExit(f"error: --rows {','.join(unknown)} not in {table}; its rows: {','.join(every)}")
    return group, chosen


def job_config(cmd: list[str]) -> dict:
    """The job config a fer-train command composes (``--cfg job``), as a dict."""
    out = subprocess.run([*cmd, "--cfg", "job"], check=True, capture_output=True, text=True).stdout
    return yaml.safe_load(out)


def same_network(out: Path, config: dict) -> Path | None:
    """A kept checkpoint in ``out`` whose FER2013 run composed exactly ``config``, if there is one."""
    for ckpt in sorted(out.glob("*.ckpt")):
        kept = out / "runs" / ckpt.stem / ".hydra" / "config.yaml"
        if kept.is_file() and yaml.safe_load(kept.read_text()) == config:
            return ckpt
    return None


def pretrain_commands(args) -> list[tuple[list[str], Path, Path]]:
    """(fer-train command, run dir, checkpoint to keep) for each row whose checkpoint is missing."""
    group, rows = pick_rows(args.table, args.rows)
    out = Path(args.out)
    todo = []
    for row in rows:
        ckpt = checkpoint_path(out, group, row)
        if ckpt.is_file():
            continue
        run_dir = out / "runs" / f"{group}-{row}"
        cmd = [
            str(BIN / "fer-train"),
            "experiment=pretrain_fer2013",
            f"{group}={row}",
            f"data.root={args.fer_root}",
            f"seed={args.pretrain_seed}",
            "~callbacks.progress_bar",
            f"hydra.run.dir={run_dir}",
            *args.overrides,
        ]
        todo.append((cmd, run_dir, ckpt))
    return todo


def finetune_command(args) -> list[str]:
    """The fine-tuning sweep; one line naming the make target when a row's checkpoint is missing."""
    group, rows = pick_rows(args.table, args.rows)
    out = Path(args.out)
    missing = [r for r in rows if not checkpoint_path(out, group, r).is_file()]
    if missing:
        target = args.table.replace("_", "-")
        raise SystemExit(
            f"error: no FER2013 checkpoint for {group}={','.join(missing)} in {out}: build it with "
            f"`make {target}-pretrained` (or `python -m experiments.pretrained pretrain --table {args.table}"
            f" --rows {','.join(missing)}`); nothing was fine-tuned"
        )
    init = f"{out.resolve()}/{group}-${{hydra:runtime.choices.{group}}}.ckpt"
    cmd = [
        str(BIN / "fer-train"),
        "-m",
        f"sweep={args.table}",
        f"task_name={args.table}_pretrained",
        f"data={args.data}",
        *([f"data.root={args.data_root}"] if args.data_root else []),
        "budget=cpu",
        f"{group}={','.join(rows)}",
        f"seed={args.seeds}",
        f"data.fold={args.folds}",
        f"model.init_from={init}",
        "~callbacks.progress_bar",
        *([f"hydra.sweep.dir={args.sweep_dir}"] if args.sweep_dir else []),
        *args.overrides,
    ]
    return cmd


def publish_pretraining(out: Path, to: Path) -> str:
    """Copy the FER2013 runs under ``out/runs`` into ``to/jobs`` (fer-report's job files) and write
    ``to/README.md`` with one row per run; returns the table."""
    from fer_attention.reporting.results import kept_notes, publish

    runs = out / "runs"
    if not any(runs.glob("*/metrics.json")):
        raise SystemExit(
            f"error: no finished FER2013 run under {runs}: run `python -m experiments.pretrained pretrain` first"
        )
    info = publish(runs, to)
    lines = [
        "### FER2013 pretraining, one network per row",
        "",
        "| network | command | val acc best, PublicTest (%) | test acc, PrivateTest (%) | epochs | minutes |",
        "|---|---|---|---|---|---|",
    ]
    for job in sorted((to / "jobs").glob("*/metrics.json")):
        m = json.loads(job.read_text())
        overrides = yaml.safe_load((job.parent / ".hydra" / "overrides.yaml").read_text())
        command = "fer-train " + " ".join(o for o in overrides if not o.startswith("hydra."))
        lines.append(
            f"| {job.parent.name} | `{command}` | {100 * m['val/acc_best']:.2f} | {100 * m['test/acc']:.2f} "
            f"| {m['epochs']} | {m['seconds'] / 60:.1f} |"
        )
    table = "\n".join(lines) + "\n"
    m = info["machine"]
    readme = [
        table,
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; torch {m['torch']}. Last run ended "
        f"{info['ended']}; the runs' own time {info['job_seconds'] / 60:.1f} min.",
        "",
        f"`jobs/` holds each run's config, overrides, `metrics.json`, status and per-epoch CSV (no checkpoints); "
        f"`python -m experiments.pretrained publish --to {to}` rebuilds this folder from the runs.",
        "",
    ]
    notes = kept_notes(to / "README.md")
    (to / "README.md").write_text("\n".join(readme) + ("\n" + notes if notes else ""))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.pretrained", description=__doc__)
    parser.add_argument("step", choices=("pretrain", "finetune", "publish"))
    parser.add_argument("--table", default="ablation_modules")
    parser.add_argument("--rows", default=None, help="a subset of the table's rows, comma-separated")
    parser.add_argument("--out", default="logs/pretrained", help="where the FER2013 checkpoints are kept")
    parser.add_argument("--fer-root", default="../shared/data/fer2013")
    parser.add_argument("--pretrain-seed", default="0")
    parser.add_argument("--data", default="ckplus")
    parser.add_argument("--data-root", default="../shared/data/ckplus48")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--folds", default="range(0,10)")
    parser.add_argument("--sweep-dir", default=None)
    parser.add_argument("--to", default=None, help="publish: the result folder for the FER2013 runs")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    args.overrides = extra  # after `--`: more Hydra overrides for every fer-train call
    if args.step == "pretrain":
        todo = pretrain_commands(args)
        if not todo:
            print(f"every FER2013 checkpoint of {args.table} is in {args.out}")
        for cmd, run_dir, ckpt in todo:
            twin = same_network(Path(args.out), job_config(cmd))
            if twin is not None:
                print(f"{ckpt.stem} is the same network as {twin.stem} (identical config): {ckpt} = {twin}")
                if not args.dry_run:
                    shutil.copy2(twin, ckpt)
                continue
            print(shlex.join(cmd), flush=True)
            if args.dry_run:
                continue
            subprocess.run(cmd, check=True)
            best = json.loads((run_dir / "metrics.json").read_text())["best_ckpt"]
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(best, ckpt)
        return 0
    if args.step == "publish":
        if not args.to:
            raise SystemExit(
                "error: publish needs --to <result folder>, e.g. experiments/results/pretrained_fer2013_cpu"
            )
        table = publish_pretraining(Path(args.out), Path(args.to))
        print(table)
        return 0
    cmd = finetune_command(args)
    print(shlex.join(cmd), flush=True)
    if not args.dry_run:
        return subprocess.run(cmd).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
