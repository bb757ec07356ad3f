"""`fer-export`: TorchScript and ONNX models of the whole network (LBP layer included) match PyTorch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_attention.cli.common import run_task
from fer_attention.data.synthetic import render_synthetic_faces
from fer_attention.errors import ConfigError
from fer_attention.inference import load_model
from fer_attention.inference.export import export_checkpoint, export_torchscript
from fer_attention.inference.onnx_io import ONNX_HINT, export_onnx

from .conftest import compose_cfg, composition_line
from .test_predict import tiny_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def model(ckpt):
    return load_model(ckpt)


def inputs() -> torch.Tensor:
    """Synthetic faces plus random ones, a batch size other than the traced one."""
    faces = torch.from_numpy(render_synthetic_faces(num_subjects=1, frames_per_sequence=1).images[:4])
    noise = torch.rand(3, 48, 48, generator=torch.Generator().manual_seed(0))
    return torch.cat([faces.float() / 255, noise]).unsqueeze(1)


def test_torchscript_matches_pytorch(model, tmp_path):
    path = export_torchscript(model.net, 48, tmp_path / "m.pt")
    assert model.net.lbp is not None  # the LBP layer is inside the exported graph
    scripted = torch.jit.load(str(path))
    x = inputs()
    with torch.no_grad():
        ref = model.net(x)
        assert (ref - ref.mean(0)).abs().max() > 0.05  # logits that depend on the face
        torch.testing.assert_close(scripted(x), ref, atol=1e-4, rtol=0)
        torch.testing.assert_close(scripted(x[:1]), model.net(x[:1]), atol=1e-4, rtol=0)


def test_onnx_matches_pytorch(model, tmp_path):
    import onnxruntime as ort

    path = export_onnx(model.net, 48, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = inputs()
    got = sess.run(["logits"], {"faces": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, model.net(x).numpy(), atol=1e-4, rtol=0)


def test_onnx_without_the_package_says_what_to_install(ckpt, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a)
    )
    cfg = compose_cfg(tmp_path / "run", [f"ckpt_path={ckpt}", "format=onnx"], config_name="export")
    with pytest.raises(ConfigError, match=r"pip install 'fer-attention\[export\]'"):
        export_checkpoint(cfg)
    assert "[export]" in ONNX_HINT


def test_export_task_defaults_next_to_the_checkpoint(ckpt, tmp_path, capsys):
    cfg = compose_cfg(tmp_path / "run", [f"ckpt_path={ckpt}"], config_name="export")
    result = run_task(export_checkpoint, cfg)
    assert result["output"] == str(Path(ckpt).with_suffix(".pt")) and Path(result["output"]).is_file()
    assert result["max_abs_diff"] < 1e-4
    assert composition_line("export", [f"ckpt_path={ckpt}", "format=tflite"]) == (
        "Error merging override format=tflite: Invalid value 'tflite', expected one of [torchscript, onnx]"
    )


def test_fer_export_foreign_checkpoint_is_one_line(tmp_path, capsys):
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    cfg = compose_cfg(tmp_path / "run", [f"ckpt_path={foreign}"], config_name="export")
    with pytest.raises(SystemExit) as exc:
        run_task(export_checkpoint, cfg)
    assert exc.value.code == 1
    assert (
        capsys.readouterr().err
        == f"error: checkpoint {foreign}: not a Lightning checkpoint (no state_dict)\n"
    )
