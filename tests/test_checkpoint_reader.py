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


def test_a_pickle_gets_one_safe_line_from_every_command(tmp_path, monkeypatch, capfd):
    """Each command's own entry point (its Hydra main, in this process; fer-eval also as a process)."""
    from fer_attention.cli import evaluate, export, predict, train

    pickled = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}, "payload": NotACheckpoint()}, pickled)
    face = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48), 128, np.uint8)).save(face)
    commands = {
        "fer-train ckpt_path": (train, [f"ckpt_path={pickled}", "~callbacks.progress_bar"]),
        "fer-train model.init_from": (train, [f"model.init_from={pickled}", "~callbacks.progress_bar"]),
        "fer-eval": (evaluate, [f"ckpt_path={pickled}"]),
        "fer-predict": (predict, [f"ckpt_path={pickled}", f"input={face}"]),
        "fer-export": (export, [f"ckpt_path={pickled}"]),
    }
    monkeypatch.setenv("FER_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.chdir(tmp_path)
    outputs = {}
    for name, (module, args) in commands.items():
        monkeypatch.setattr(sys, "argv", [name.split()[0], *args])
        try:
            module.main()
            code = 0
        except SystemExit as exc:
            code = exc.code
        out, err = capfd.readouterr()
        outputs[name] = (code, out, err)
    env = {**os.environ, "FER_LOG_DIR": str(tmp_path / "logs"), "WANDB_MODE": "offline"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "fer-eval"), f"ckpt_path={pickled}"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outputs["fer-eval (process)"] = (proc.returncode, proc.stdout, proc.stderr)
    for name, (code, out, err) in outputs.items():
        assert code == 1, f"{name}: exit {code}\n{err[-2000:]}"
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, f"{name}: {err[-2000:]}"
        assert str(pickled) in errors[0] and REFUSED in errors[0], f"{name}: {errors[0]}"
        assert "weights_only" not in out + err, name


REPO = Path(__file__).resolve().parents[1]


def committed_checkpoints() -> list[Path]:
    """The checkpoint files kept with the code: the shipped model, and any under tests/ or results."""
    folders = [REPO / "fer_attention", REPO / "tests", REPO / "experiments" / "results"]
    return sorted(p for folder in folders for ext in ("*.pt", "*.ckpt") for p in folder.rglob(ext))


def test_every_committed_checkpoint_is_in_the_layout_the_reader_serves():
    """fer_attention/training/checkpoint.py notes which versions ``read_checkpoint`` serves: the layout of
    the committed checkpoints, so that no earlier layout needs rewriting. A checkpoint committed in an
    earlier layout (the torch.compile wrapper's keys, an image size only in ``net``, ``lbp.method: null``,
    ``data_config.num_classes``) fails here, and the note and its reader function must take it in."""
    from fer_attention.training.checkpoint import read_checkpoint

    committed = committed_checkpoints()
    assert any(p.parent.name == "shipped" for p in committed), committed
    for path in committed:
        ckpt = read_checkpoint(path)
        hparams = ckpt["hyper_parameters"]
        net, data = hparams["net"], hparams["data_config"]
        assert not any("_orig_mod." in key for key in ckpt["state_dict"]), path
        assert data["image_size"] == net["image_size"] and "num_classes" not in data, path
        assert "lbp" in net["modules"] and (net["lbp"] is None or net["lbp"]["method"] is not None), path


def test_a_checkpoint_in_a_layout_no_longer_read_is_one_line_naming_it(tmp_path):
    """The layouts of before 2026-12-02 that no committed checkpoint has are refused by the one reader, in
    one line that names what marks them, rather than failing somewhere inside a state dict load."""
    import pytest

    from fer_attention.errors import CheckpointError
    from fer_attention.inference import load_model
    from fer_attention.training.checkpoint import read_checkpoint

    (fp16,) = (REPO / "fer_attention" / "inference" / "shipped").glob("*.fp16.pt")
    shipped = read_checkpoint(fp16)
    hparams = shipped["hyper_parameters"]
    layouts = {
        "net._orig_mod.* keys, from net = torch.compile(net)": {
            **shipped,
            "state_dict": {
                k.replace("net.", "net._orig_mod.", 1): v for k, v in shipped["state_dict"].items()
            },
        },
        "lbp=none recorded as lbp.method: null": {
            **shipped,
            "hyper_parameters": {
                **hparams,
                "net": {**hparams["net"], "lbp": {"method": None, "P": 8, "R": 1.0}},
            },
        },
        "data_config.num_classes": {
            **shipped,
            "hyper_parameters": {**hparams, "data_config": {**hparams["data_config"], "num_classes": 7}},
        },
    }
    for mark, ckpt in layouts.items():
        path = tmp_path / f"{len(mark)}.ckpt"
        torch.save(ckpt, path)
        with pytest.raises(CheckpointError) as err:
            load_model(path)
        line = str(err.value)
        assert line.startswith(f"checkpoint {path}: written in a layout of before 2026-12-02 ({mark}"), line
        assert "\n" not in line
