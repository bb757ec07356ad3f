"""Every command that reads a checkpoint goes through one safe reader: a pickle that is not a checkpoint
gives the same one line from fer-train (ckpt_path and model.init_from), fer-eval, fer-predict and
fer-export, and never PyTorch's advice to load it with weights_only=False."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REFUSED = "it holds pickled Python objects beyond tensors and plain data, which are never loaded"


class NotACheckpoint:
    """An arbitrary Python object; unpickling it would run this module's code."""


def test_a_pickle_gets_one_safe_line_from_every_command(tmp_path):
    pickled = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}, "payload": NotACheckpoint()}, pickled)
    face = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48), 128, np.uint8)).save(face)
    bin_dir = Path(sys.executable).parent
    commands = {
        "fer-train ckpt_path": ["fer-train", f"ckpt_path={pickled}", "~callbacks.progress_bar"],
        "fer-train model.init_from": ["fer-train", f"model.init_from={pickled}", "~callbacks.progress_bar"],
        "fer-eval": ["fer-eval", f"ckpt_path={pickled}"],
        "fer-predict": ["fer-predict", f"ckpt_path={pickled}", f"input={face}"],
        "fer-export": ["fer-export", f"ckpt_path={pickled}"],
    }
    env = {**os.environ, "FER_LOG_DIR": str(tmp_path / "logs"), "WANDB_MODE": "offline"}
    running = {
        name: subprocess.Popen(
            [str(bin_dir / argv[0]), *argv[1:]],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, argv in commands.items()
    }
    for name, proc in running.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, f"{name}: exit {proc.returncode}\n{err[-2000:]}"
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, f"{name}: {err[-2000:]}"
        assert str(pickled) in errors[0] and REFUSED in errors[0], f"{name}: {errors[0]}"
        assert "weights_only" not in out + err, name
