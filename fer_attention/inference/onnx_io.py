"""ONNX files of the whole network: writing them with their metadata, reading the metadata back, and
running them with ONNX Runtime behind the network's interface.

The model includes the LBP layer and the input normalisation: it takes faces ``[N, 1, S, S]`` in [0, 1]
(S = the checkpoint's image size, any N) and returns logits ``[N, classes]``. ``torch.onnx.export`` with a
dynamic batch axis, input ``faces``, output ``logits``; needs ``pip install 'fer-attention[export]'``.

ONNX files carry what a user needs to run them (``metadata_props``, all strings, see :data:`META_KEYS`):
the class names in output order, the image size, how faces are prepared, the training data config and how
the model was quantised. :func:`fer_attention.inference.load_model` turns such a file back into a
predictor; a file without this metadata is refused with one line.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from fer_attention.errors import CheckpointError, ConfigError

ONNX_HINT = "pip install 'fer-attention[export]'"

# metadata_props keys of an exported ONNX model (values are strings; JSON where structured)
META_PREFIX = "fer_attention."
META_KEYS = (
    "format_version",  # "1"
    "class_names",  # JSON list, in the order of the logits
    "image_size",  # S of the input [N, 1, S, S]
    "preprocessing",  # JSON: how a face becomes the input
    "data_config",  # JSON: the checkpoint's data config (dataset, image size, face crop, ...)
    "quantization",  # JSON: {"type": "none"} or int8 details
    "source",  # the checkpoint file name
)
META_VERSION = "1"
# what every tool of the suite does to a face before the network (docs/using-a-model.md)
PREPROCESSING = {
    "input": "faces float32 [N, 1, S, S] in [0, 1], N any, S = image_size",
    "output": "logits float32 [N, classes]; softmax gives the probabilities, in class_names order",
    "grayscale": "8-bit, ITU-R 601-2 luma for colour (PIL 'L')",
    "crop": "the square around the detected face (or the centred square of a face crop), black outside",
    "resize": "to S x S; area interpolation when shrinking, bilinear when enlarging",
    "scale": "uint8 / 255",
    "normalisation": "inside the model (input_mean, input_std), as is the LBP layer",
}


def example_faces(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random faces ``[n, 1, size, size]`` in [0, 1] on the 1/255 grid of real 8-bit faces."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, size, size), generator=g).float().div_(255.0)


def check_onnx_available(runtime: bool = False, what: str = "format=onnx") -> None:
    """ConfigError naming the missing package(s): ``onnx`` always, ``onnxruntime`` with ``runtime``."""
    needed = ("onnx", "onnxruntime") if runtime else ("onnx",)
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        noun = "package" if len(missing) == 1 else "packages"
        raise ConfigError(f"{what} needs the {' and '.join(missing)} {noun}: {ONNX_HINT}")


def export_onnx(
    net: torch.nn.Module,
    image_size: int,
    path: str | Path,
    opset: int = 17,
    metadata: dict[str, str] | None = None,
) -> Path:
    """``torch.onnx.export`` of ``net`` (input ``faces``, output ``logits``, dynamic batch); ``metadata``
    (see :func:`onnx_metadata`) goes into the file's ``metadata_props``."""
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
    if metadata:
        write_onnx_metadata(path, metadata)
    return path


def onnx_metadata(
    class_names: list[str],
    image_size: int,
    data_config: dict[str, Any] | None = None,
    quantization: dict[str, Any] | None = None,
    source: str | None = None,
) -> dict[str, str]:
    """The ``metadata_props`` of an exported model (keys :data:`META_KEYS` with :data:`META_PREFIX`)."""
    values = {
        "format_version": META_VERSION,
        "class_names": json.dumps(list(class_names)),
        "image_size": str(int(image_size)),
        "preprocessing": json.dumps(PREPROCESSING),
        "data_config": json.dumps(data_config or {}, default=str),
        "quantization": json.dumps(quantization or {"type": "none"}, default=str),
        "source": source or "",
    }
    return {META_PREFIX + k: v for k, v in values.items()}


def write_onnx_metadata(path: str | Path, metadata: dict[str, str]) -> None:
    """Set (replace) ``metadata`` in the ONNX file ``path``, keeping other tools' entries."""
    import onnx

    model = onnx.load(str(path))
    kept = {p.key: p.value for p in model.metadata_props if p.key not in metadata}
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {**kept, **metadata})
    model.producer_name = model.producer_name or "fer-attention"
    model.doc_string = "fer-attention facial expression model: faces [N, 1, S, S] in [0, 1] -> logits"
    onnx.save(model, str(path))


def read_onnx_metadata(custom: dict[str, str], path: str | Path) -> dict[str, Any]:
    """Parsed fer-attention metadata (``class_names``, ``image_size``, ``data_config``, ``preprocessing``,
    ``quantization``, ``source``) from an ONNX model's custom metadata map; CheckpointError with one line
    when it is not there."""
    need = [META_PREFIX + "class_names", META_PREFIX + "image_size"]
    if not all(k in custom for k in need):
        raise CheckpointError(
            f"model {path}: an ONNX file without fer-attention metadata ({', '.join(need)}); "
            "export it from a checkpoint with fer-export format=onnx"
        )
    try:
        out: dict[str, Any] = {
            "class_names": list(json.loads(custom[need[0]])),
            "image_size": int(custom[need[1]]),
        }
        for key in ("data_config", "preprocessing", "quantization"):
            out[key] = json.loads(custom.get(META_PREFIX + key) or "{}")
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"model {path}: unreadable fer-attention metadata ({err})") from None
    out["source"] = custom.get(META_PREFIX + "source", "")
    out["format_version"] = custom.get(META_PREFIX + "format_version", "")
    return out


def ort_session(path: str | Path, threads: int | None = None, device: str = "cpu"):
    """An ONNX Runtime session for ``path`` (``threads``: intra-op threads, default torch's setting)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), options, providers=providers)


class OnnxRuntimeNet(torch.nn.Module):
    """An ONNX Runtime session behind the network's interface: ``net(x)`` -> logits (a tensor on ``x``'s
    device); ``net(x, return_mask=True)`` -> ``(logits, None)`` (an exported model has no mask output)."""

    lbp = None  # no LBP maps for pictures either

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session

    def forward(self, x: torch.Tensor, return_mask: bool = False):
        faces = x.detach().float().cpu().numpy()
        logits = torch.from_numpy(self.session.run(["logits"], {"faces": faces})[0]).to(x.device)
        return (logits, None) if return_mask else logits
