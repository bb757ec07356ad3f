"""Ten-crop test-time augmentation for one trained model, chosen on validation and reported on test.

    python -m experiments.tta_choice --sweep logs/<sweep dir> --where ablation=full --out DIR
    python -m experiments.tta_choice --run <run dir> --out DIR

With ``--sweep`` the model is the finished job (among those whose overrides match every ``--where``) with
the best ``val/acc_best``. It is evaluated with ``fer-eval`` on the validation split (FER2013: PublicTest)
plain and with ten crops, and the mode is chosen there: ten-crop only when its validation accuracy is
higher. The choice is written down before the test split (FER2013: PrivateTest) is read; both test
figures are then measured and printed, the chosen one marked as the reported figure. ``DIR`` gets
``evals/<split>_<mode>/metrics.json``, ``tta.json`` and ``tta.md``; an evaluation whose metrics.json is
already there is not run again. Arguments after ``--`` are passed to every ``fer-eval``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fer_attention.reporting.aggregate import find_jobs
from fer_attention.runs import write_json_atomic

MODES = ("null", "tencrop")
FER_EVAL = [sys.executable, "-m", "fer_attention.cli.evaluate"]


def best_run(sweep: str | Path, where: Sequence[str] = ()) -> Path:
    """The finished job of ``sweep`` with the highest ``val/acc_best`` among those whose overrides contain
    every ``key=value`` of ``where`` (a tie goes to the first job in path order)."""
    wanted = dict(item.split("=", 1) for item in where)
    jobs = [
        j
        for j in find_jobs(sweep)
        if j.metrics is not None and all(j.overrides.get(k) == v for k, v in wanted.items())
    ]
    if not jobs:
        raise SystemExit(f"no finished job in {sweep} has {' '.join(where) or 'metrics.json'}")
    return max(jobs, key=lambda j: j.metrics["val/acc_best"]).path


def eval_command(ckpt: str, split: str, mode: str, run_dir: Path, extra: Sequence[str] = ()) -> list[str]:
    """The ``fer-eval`` command line of one (split, mode) evaluation."""
    return [
        *FER_EVAL,
        f"ckpt_path={ckpt}",
        f"split={split}",
        f"test_time_augmentation={mode}",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def run_fer_eval(command: list[str]) -> dict[str, Any]:
    """Run one ``fer-eval`` and return its metrics.json."""
    run_dir = Path(next(a for a in command if a.startswith("hydra.run.dir=")).split("=", 1)[1])
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"fer-eval failed ({shlex.join(command)}):\n{done.stderr[-2000:]}")
    return json.loads((run_dir / "metrics.json").read_text())


def choose_tta(
    run: Path,
    out: Path,
    extra: Sequence[str] = (),
    work: Path | None = None,
    evaluate: Callable[[list[str]], dict[str, Any]] = run_fer_eval,
) -> dict[str, Any]:
    """Evaluate ``run``'s best checkpoint plain and ten-crop on val, choose, then on test; write the files."""
    metrics = json.loads((run / "metrics.json").read_text())
    ckpt = metrics["best_ckpt"]
    work = work or out / "work"
    result: dict[str, Any] = {"run": str(run), "best_ckpt": ckpt, "acc": {}, "commands": {}}

    def measure(split: str) -> None:
        for mode in MODES:
            name = f"{split}_{mode}"
            kept = out / "evals" / name / "metrics.json"
            command = eval_command(ckpt, split, mode, work / name, extra)
            if not kept.is_file():
                found = evaluate(command)
                kept.parent.mkdir(parents=True, exist_ok=True)
                write_json_atomic(kept, found)
            result["acc"][name] = json.loads(kept.read_text())[f"{split}/acc"]
            result["commands"][name] = shlex.join(["fer-eval", *command[len(FER_EVAL) :]])

    measure("val")
    result["chosen"] = "tencrop" if result["acc"]["val_tencrop"] > result["acc"]["val_null"] else "null"
    write_json_atomic(out / "tta.json", result)  # the choice is on disk before the test split is read
    measure("test")
    result["reported_test_acc"] = result["acc"][f"test_{result['chosen']}"]
    write_json_atomic(out / "tta.json", result)
    (out / "tta.md").write_text(tta_markdown(result))
    if work.is_dir() and work.parent == out:
        shutil.rmtree(work)  # fer-eval's run dirs: logs and pictures; the metrics are kept in evals/
    return result


def tta_markdown(result: dict[str, Any]) -> str:
    """The table of the four evaluations, the choice and the reported figure."""
    acc = result["acc"]
    pct = lambda name: f"{100 * acc[name]:.2f}%"  # noqa: E731
    chosen = "ten-crop" if result["chosen"] == "tencrop" else "plain"
    lines = [
        "| | validation (selects) | test (reported) |",
        "|---|---|---|",
        f"| plain | {pct('val_null')} | {pct('test_null')} |",
        f"| ten-crop | {pct('val_tencrop')} | {pct('test_tencrop')} |",
        "",
        f"Chosen on validation: **{chosen}**; the reported test figure is **{100 * result['reported_test_acc']:.2f}%**."
        " The other mode's test figure is printed beside it and chooses nothing.",
        "",
        f"Model: `{result['best_ckpt']}`. Commands:",
        "",
        *[
            f"    {result['commands'][name]}"
            for name in ("val_null", "val_tencrop", "test_null", "test_tencrop")
        ],
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        prog="python -m experiments.tta_choice", description=__doc__.split("\n")[0]
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="one run directory (holds metrics.json with best_ckpt)")
    source.add_argument("--sweep", help="a sweep directory: its best job on validation is used")
    parser.add_argument(
        "--where", nargs="*", default=[], help="with --sweep: key=value the job's overrides hold"
    )
    parser.add_argument("--out", required=True, help="where evals/, tta.json and tta.md go")
    args = parser.parse_args(argv)
    try:
        run = Path(args.run) if args.run else best_run(args.sweep, args.where)
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from None
    if not (run / "metrics.json").is_file():
        raise SystemExit(f"{run} has no metrics.json: is it a finished run directory?")
    out = Path(args.out)
    choose_tta(run, out, extra)
    print((out / "tta.md").read_text().split("\n\nModel:")[0])
    print(f"run {run}; files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
