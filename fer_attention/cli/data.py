"""`fer-data`: decode and cache a dataset (``prepare``) or print its counts, splits and folds (``summary``).

    fer-data prepare data=fer2013 data.root=/data/fer2013
    fer-data summary data=ckplus data.root=/data/CK+48

The first argument may name the action (``prepare`` / ``summary``); it is rewritten to ``action=...``
before Hydra reads the command line, so ``fer-data action=summary ...`` is the same. The config is
``conf/data_cli.yaml``: the same ``data`` group as ``fer-train``. The task is
:func:`run_data_command`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from fer_attention.cli.common import one_line_errors, run_task
from fer_attention.config import config_dir, validate_config
from fer_attention.data.summary import discovered_classes, prepare, summary
from fer_attention.training.builders import build_datamodule


def run_data_command(cfg: DictConfig) -> dict[str, Any]:
    """The ``fer-data`` task: the summary (``action=summary``) or what was cached (``action=prepare``)."""
    action = cfg.action  # a DataAction: the schema's choice (fer_attention/task_options.py)
    validate_config(cfg)
    discovered = discovered_classes(cfg)
    if discovered is not None:
        return discovered
    dm = build_datamodule(cfg.data)
    if action == "prepare":
        return prepare(dm, rebuild=bool(cfg.get("rebuild", False)))
    return summary(dm, int(cfg.get("max_skipped", 200)))


def _rewrite_argv(argv: list[str]) -> list[str]:
    """``fer-data summary a=b`` -> ``fer-data action=summary a=b``: a first argument that is neither an
    override nor a flag is the action (an unknown one is then refused by the schema, naming the actions)."""
    if len(argv) > 1 and "=" not in argv[1] and not argv[1].startswith(("-", "~")):
        return [argv[0], f"action={argv[1]}", *argv[2:]]
    return argv


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="data_cli")
def _main(cfg: DictConfig) -> None:
    out = run_task(run_data_command, cfg)
    if out is None:
        return
    if cfg.get("action") == "prepare" and "discovered_classes" not in out:
        hit = "already cached" if out.get("cache_hit") else "decoded and cached"
        print(f"{out['dataset']}: {out['images']} faces {hit} in {out['cache_file']} ({out['seconds']} s)")
        if out["skipped_count"]:
            print(f"skipped {out['skipped_count']} bad input(s); `fer-data summary ...` lists them")
        return
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if cfg.get("output"):
        Path(cfg.output).write_text(text + "\n")


def main() -> None:
    """fer-data: the action as the first argument, composition errors in one line."""
    sys.argv = _rewrite_argv(sys.argv)
    one_line_errors(_main)()


if __name__ == "__main__":
    main()
