"""`fer-export ckpt_path=<file.ckpt> format=torchscript|onnx [quantize=int8 calib=...] [output=...]`: the whole
network as one model. The task is :func:`fer_attention.inference.export.export_checkpoint`; int8 is
:mod:`fer_attention.inference.quantize`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fer_attention.cli.common import one_line_errors, run_task
from fer_attention.config import config_dir
from fer_attention.inference.export import export_checkpoint, summary_line


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="export")
def _main(cfg: DictConfig) -> None:
    result = run_task(export_checkpoint, cfg)
    if result is not None:
        print(summary_line(result))


# the command: composition errors in one line too
main = one_line_errors(_main)

if __name__ == "__main__":
    main()
