"""`fer-predict input=<file, folder or glob> [ckpt_path=<file.ckpt | file.onnx>]`: the expression of every face
in images and videos, by the model that ships with the package unless ``ckpt_path`` names another. The task is :func:`fer_attention.inference.predict.predict_files`; videos are
:mod:`fer_attention.inference.video`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fer_attention.cli.common import one_line_errors, run_task
from fer_attention.config import config_dir
from fer_attention.inference.predict import predict_files


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
def _main(cfg: DictConfig) -> None:
    stats = run_task(predict_files, cfg)
    if stats is not None:
        print(
            f"{stats['faces']} faces in {stats['files_ok']} of {stats['files']} files "
            f"({stats['files_failed']} failed) -> {stats['output']}; answered by {stats['model']}"
        )


# the command: composition errors in one line too
main = one_line_errors(_main)

if __name__ == "__main__":
    main()
