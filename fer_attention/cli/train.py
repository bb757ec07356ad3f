"""`fer-train`: train and test a model (`fer-train --help` lists the config groups)."""

from __future__ import annotations

import hydra
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from fer_attention.cli.common import one_line_errors, run_task
from fer_attention.config import config_dir
from fer_attention.training.task import train


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _main(cfg: DictConfig) -> float | None:
    metrics = run_task(train, cfg)
    if metrics is None:
        return None
    acc, secs = metrics.get("test/acc"), metrics.get("seconds")
    if acc is not None and rank_zero_only.rank == 0:
        print(
            f"test accuracy {acc:.2%} ({len(metrics['class_names'])} classes) in {secs:.0f} s; run dir {metrics['run_dir']}"
        )
    # the value an hparams sweeper maximises
    return metrics.get(cfg.get("optimized_metric") or "val/acc_best")


# the command: composition errors in one line too
main = one_line_errors(_main)

if __name__ == "__main__":
    main()
