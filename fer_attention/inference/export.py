"""`fer-export`: a checkpoint as one TorchScript or ONNX file (fp32, or int8 through :mod:`fer_attention.inference.quantize`).

The exported model includes the LBP layer and the input normalisation: it takes faces ``[N, 1, S, S]``
in [0, 1] (S = the checkpoint's image size, any N) and returns logits ``[N, classes]``. Prepare faces as
:class:`fer_attention.inference.FERPredictor` does (gray, square crop, resize to S, divide by 255).
TorchScript: ``torch.jit.trace`` then ``torch.jit.freeze``. ONNX: ``torch.onnx.export`` with a dynamic
batch axis, input ``faces``, output ``logits``; needs ``pip install 'fer-attention[export]'``.

The ONNX files, their metadata and running them: :mod:`fer_attention.inference.onnx_io`.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from fer_attention.errors import ConfigError
from fer_attention.inference.onnx_io import (
    OnnxRuntimeNet,
    check_onnx_available,
    example_faces,
    export_onnx,
    onnx_metadata,
    ort_session,
)
from fer_attention.inference.predictor import load_model
from fer_attention.inference.quantize import check_calibration_arg, quantize_checkpoint, report_lines
from fer_attention.runs import write_json_atomic
from fer_attention.task_options import Quantize

log = logging.getLogger("fer_attention.inference.export")

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}


def export_torchscript(net: torch.nn.Module, image_size: int, path: str | Path) -> Path:
    net = net.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # tracer notes on Python-level shape arithmetic (constant for one image size) and torch.jit's
        # end-of-life notices
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, example_faces(2, image_size), check_trace=False)
        frozen = torch.jit.freeze(traced)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(frozen, str(path))
    return path


def max_difference(net: torch.nn.Module, fmt: str, path: Path, image_size: int, n: int = 5) -> float | None:
    """Max abs difference of the logits of the exported model and ``net`` on ``n`` random faces (a batch
    size other than the one traced); None when onnxruntime is not installed."""
    x = example_faces(n, image_size, seed=1)
    with torch.no_grad(), warnings.catch_warnings():
        ref = net.eval()(x)
        if fmt == "torchscript":
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*is deprecated")
            got = torch.jit.load(str(path), map_location="cpu")(x)
        else:
            if importlib.util.find_spec("onnxruntime") is None:
                return None
            got = OnnxRuntimeNet(ort_session(path))(x)
    return float((got - ref).abs().max())


def default_output(ckpt: Path, fmt: str, quantize: str) -> Path:
    """Next to the checkpoint: ``<name>.pt``, ``<name>.onnx`` or ``<name>.int8.onnx``."""
    suffix = (".int8" if quantize == "int8" else "") + FORMATS[fmt]
    return ckpt.with_name(ckpt.stem + suffix)


def export_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """The `fer-export` task: returns ``{"output", "format", "quantize", "image_size", "class_names",
    "max_abs_diff"}`` and, with ``quantize=int8``, the calibration report (``agreement``, ``heldout``,
    ``calib_faces``, ``test`` accuracies; see :func:`fer_attention.inference.quantize.quantize_checkpoint`)."""
    # the schema's choices (conf/export.yaml): ExportFormat and Quantize
    fmt, quantize = str(cfg.format), str(cfg.quantize or Quantize.none)
    if quantize == "int8":
        if fmt != "onnx":
            raise ConfigError("quantize=int8 needs format=onnx (ONNX Runtime static quantisation)")
        check_onnx_available(runtime=True, what="quantize=int8")
        check_calibration_arg(cfg)
    elif fmt == "onnx":
        check_onnx_available()
    ckpt = Path(str(cfg.ckpt_path))
    out = Path(str(cfg.output)) if cfg.get("output") else default_output(ckpt, fmt, quantize)
    model = load_model(ckpt)
    net, size = model.net, model.image_size
    result: dict[str, Any] = {
        "output": str(out),
        "format": fmt,
        "quantize": quantize,
        "image_size": size,
        "class_names": model.class_names,
        "max_abs_diff": None,
    }
    if quantize == "int8":
        result.update(quantize_checkpoint(cfg, model, out, ckpt))
        # the evaluation travels with the model: <name>.int8.json beside <name>.int8.onnx
        write_json_atomic(out.with_suffix(".json"), {"checkpoint": str(ckpt), **result})
        return result
    if fmt == "torchscript":
        export_torchscript(net, size, out)
    else:
        meta = onnx_metadata(model.class_names, size, model.data_config, source=ckpt.name)
        export_onnx(net, size, out, int(cfg.get("opset", 17)), metadata=meta)
    diff = max_difference(net, fmt, out, size) if cfg.get("check", True) else None
    if diff is not None:
        log.info("exported %s: max abs logit difference to PyTorch %.2e", fmt, diff)
        if diff > 1e-3:
            log.warning("the exported model differs from the PyTorch one by %.2e", diff)
    result["max_abs_diff"] = diff
    return result


def summary_line(result: dict[str, Any]) -> str:
    """What `fer-export` prints."""
    size = result["image_size"]
    kind = "int8 ONNX" if result.get("quantize") == "int8" else result["format"]
    line = (
        f"{kind} model -> {result['output']} (input faces [N, 1, {size}, {size}] in [0, 1], output logits "
        f"of {', '.join(result['class_names'])})"
    )
    diff = result.get("max_abs_diff")
    if diff is not None:
        line += f"; max abs logit difference to PyTorch {diff:.1e}"
    if result.get("quantize") == "int8":
        line = "\n".join([line, *report_lines(result)])
    return line
