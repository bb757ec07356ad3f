"""`fer-export ckpt=<file.ckpt> format=torchscript|onnx [output=...]`: the whole network as one model.

The exported model includes the LBP layer and the input normalisation: it takes faces ``[N, 1, S, S]``
in [0, 1] (S = the checkpoint's image size, any N) and returns logits ``[N, classes]``. Prepare faces as
:class:`fer_attention.inference.FERPredictor` does (gray, square crop, resize to S, divide by 255).
TorchScript: ``torch.jit.trace`` then ``torch.jit.freeze``. ONNX: ``torch.onnx.export`` with a dynamic
batch axis, input ``faces``, output ``logits``; needs ``pip install 'fer-attention[export]'``.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from fer_attention.cli.common import run_task
from fer_attention.config import ConfigError, config_dir

log = logging.getLogger("fer_attention.export")

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}
ONNX_HINT = "pip install 'fer-attention[export]'"


def example_faces(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random faces ``[n, 1, size, size]`` in [0, 1] on the 1/255 grid of real 8-bit faces."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, size, size), generator=g).float().div_(255.0)


def export_torchscript(net: torch.nn.Module, image_size: int, path: str | Path) -> Path:
    net = net.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # tracer notes on Python-level shape arithmetic (constant for one image size) and deprecations
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, example_faces(2, image_size), check_trace=False)
        frozen = torch.jit.freeze(traced)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(frozen, str(path))
    return path


def check_onnx_available() -> None:
    missing = [m for m in ("onnx",) if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"format=onnx needs the {', '.join(missing)} package: {ONNX_HINT}")


def export_onnx(net: torch.nn.Module, image_size: int, path: str | Path, opset: int = 17) -> Path:
    check_onnx_available()
    net = net.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (example_faces(2, image_size),),
            str(path),
            input_names=["faces"],
            output_names=["logits"],
            dynamic_axes={"faces": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=int(opset),
            dynamo=False,
        )
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
            import onnxruntime as ort

            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = torch.from_numpy(sess.run(["logits"], {"faces": x.numpy()})[0])
    return float((got - ref).abs().max())


def export_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """The `fer-export` task: returns ``{"output", "format", "image_size", "class_names", "max_abs_diff"}``."""
    from fer_attention.inference import load_model

    fmt = str(cfg.get("format", "torchscript")).lower()
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt} is not one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        check_onnx_available()
    ckpt = Path(str(cfg.ckpt))
    out = Path(str(cfg.output)) if cfg.get("output") else ckpt.with_suffix(FORMATS[fmt])
    model = load_model(ckpt)
    net, size = model.net, model.image_size
    if fmt == "torchscript":
        export_torchscript(net, size, out)
    else:
        export_onnx(net, size, out, int(cfg.get("opset", 17)))
    diff = max_difference(net, fmt, out, size) if cfg.get("check", True) else None
    if diff is not None:
        log.info("exported %s: max abs logit difference to PyTorch %.2e", fmt, diff)
        if diff > 1e-3:
            log.warning("the exported model differs from the PyTorch one by %.2e", diff)
    return {
        "output": str(out),
        "format": fmt,
        "image_size": size,
        "class_names": model.class_names,
        "max_abs_diff": diff,
    }


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="export")
def main(cfg: DictConfig) -> None:
    result = run_task(export_checkpoint, cfg)
    if result is not None:
        diff = result["max_abs_diff"]
        check = "" if diff is None else f"; max abs logit difference to PyTorch {diff:.1e}"
        print(
            f"{result['format']} model -> {result['output']} (input faces [N, 1, {result['image_size']}, "
            f"{result['image_size']}] in [0, 1], output logits of {', '.join(result['class_names'])}){check}"
        )


if __name__ == "__main__":
    main()
