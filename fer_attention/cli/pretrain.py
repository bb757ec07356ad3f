"""`fer-pretrain`: self-supervised LBP pretext on unlabelled faces; writes a checkpoint for model.init_from."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fer_attention.cli.common import one_line_errors, run_task
from fer_attention.config import config_dir
from fer_attention.training.pretext.task import pretrain


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="pretrain")
def _main(cfg: DictConfig) -> None:
    metrics = run_task(pretrain, cfg)
    if metrics is not None and metrics.get("pretext_ckpt"):
        print(
            f"pretext {metrics['pretext']} on {metrics['faces']['train']} faces in {metrics['seconds']:.0f} s; "
            f"fine-tune with: fer-train model.init_from={metrics['pretext_ckpt']}"
        )


# the command: composition errors in one line too
main = one_line_errors(_main)

if __name__ == "__main__":
    main()
