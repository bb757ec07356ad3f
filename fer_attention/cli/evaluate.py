"""`fer-eval ckpt_path=<file.ckpt>`: test a checkpoint and write metrics.json in a new run dir."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fer_attention.cli.common import one_line_errors, run_task
from fer_attention.config import config_dir
from fer_attention.training.task import evaluate


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def _main(cfg: DictConfig) -> None:
    metrics = run_task(evaluate, cfg)
    if metrics is not None:
        split = cfg.get("split", "test")
        mapping = metrics.get("class_mapping")
        shared = ""
        if mapping:
            shared = (
                f" over {len(mapping['shared'])} shared classes ({metrics['faces']['evaluated']} faces;"
                f" model lacks: {', '.join(mapping['target_only']) or 'none'};"
                f" data lacks: {', '.join(mapping['model_only']) or 'none'})"
            )
        print(f"{split} accuracy {metrics[f'{split}/acc']:.2%}{shared}; run dir {metrics['run_dir']}")


# the command: composition errors in one line too
main = one_line_errors(_main)

if __name__ == "__main__":
    main()
