"""The schemas of the fer-* commands' own top-level keys (conf/predict.yaml, eval.yaml, export.yaml,
data_cli.yaml), and the choices they take. Each YAML takes its schema in its defaults list
(``/schema/<name>@_here_``), so a value of the wrong type or an unknown choice (``fer-predict batch_size=abc``,
``fer-export format=tflite``) fails while Hydra composes the config, naming the key, before anything is
read. The YAML files keep the defaults and their comments; the fields here have none.

Low in the layers (it imports only :mod:`fer_attention.schema`): the config layer registers these, and the
modules that read the keys (test-time augmentation, evaluation, export, the data command) take their allowed
values from the choices here.
"""

from __future__ import annotations

from dataclasses import dataclass

from fer_attention.schema import Choice


class TTAMode(Choice):
    """``test_time_augmentation`` (fer-eval, fer-predict, ``model.test_time_augmentation``); null is none."""

    tencrop = "tencrop"


class EvalSplit(Choice):
    """fer-eval's ``split``: the data's own test or val split, or every face of it."""

    test = "test"
    val = "val"
    all = "all"


class ExportFormat(Choice):
    """fer-export's ``format``."""

    torchscript = "torchscript"
    onnx = "onnx"


class Quantize(Choice):
    """fer-export's ``quantize``; null is ``none``."""

    none = "none"
    int8 = "int8"


class CalibMethod(Choice):
    """fer-export's ``calib_method``: ONNX Runtime's calibration methods."""

    minmax = "minmax"
    percentile = "percentile"
    entropy = "entropy"


class Activations(Choice):
    """fer-export's ``activations``: the int8 activation type, or ``auto`` (both timed, the faster kept)."""

    auto = "auto"
    uint8 = "uint8"
    int8 = "int8"


class DataAction(Choice):
    """fer-data's ``action``."""

    prepare = "prepare"
    summary = "summary"


@dataclass
class VideoOptions:
    """fer-predict's ``video``."""

    stride: int
    timeline: bool
    iou: float
    max_missed: int


@dataclass
class PredictConfig:
    """conf/predict.yaml's own keys."""

    task_name: str
    ckpt_path: str | None
    input: str
    output: str | None
    # auto, true or false
    detect: bool | str
    min_face: float
    save_annotated: bool
    save_attention: bool
    batch_size: int
    test_time_augmentation: TTAMode | None
    device: str
    progress: bool
    video: VideoOptions


@dataclass
class EvalConfig:
    """conf/eval.yaml's own keys."""

    task_name: str
    tags: list[str]
    seed: int
    ckpt_path: str
    split: EvalSplit
    test_time_augmentation: TTAMode | None


@dataclass
class ExportConfig:
    """conf/export.yaml's own keys."""

    task_name: str
    ckpt_path: str
    format: ExportFormat
    output: str | None
    opset: int
    check: bool
    quantize: Quantize | None
    calib: str | None
    calib_size: int
    calib_holdout: float
    calib_method: CalibMethod
    per_channel: bool
    activations: Activations
    batch_size: int
    seed: int


@dataclass
class DataCommandConfig:
    """conf/data_cli.yaml's own keys."""

    task_name: str
    action: DataAction
    rebuild: bool
    output: str | None
    max_skipped: int


# the ConfigStore name of each command's schema (schema/<name>) and the primary config that takes it
COMMAND_SCHEMAS = {
    "predict": PredictConfig,
    "eval": EvalConfig,
    "export": ExportConfig,
    "data_cli": DataCommandConfig,
}
