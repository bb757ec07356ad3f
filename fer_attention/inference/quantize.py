"""int8 models for the CPU: ONNX Runtime static quantisation (QDQ), calibrated on real faces.

``fer-export format=onnx quantize=int8 calib=<folder of faces | data>`` runs :func:`quantize_checkpoint`:

1. calibration faces: every face of a folder of images (prepared as `fer-predict` prepares them, with
   ``detect=auto``), shuffled, ``calib_holdout`` of them held out for the agreement check; or, with
   ``calib=data``, a data config (``data=<name> data.root=...``, else the checkpoint's own): its train split
   calibrates, its val split is held out, its test split gives the accuracy of both models;
2. the fp32 ONNX export of the checkpoint, ``quant_pre_process`` (shape inference, graph optimisation),
   then ``quantize_static`` in QDQ format: int8 weights per output channel, activations per tensor
   (``activations=auto``: uint8 and int8 both quantised and timed here, the faster kept; or either by name),
   ranges from the calibration faces (``calib_method``: MinMax by default) fed by a
   ``CalibrationDataReader``. Convolutions, fully connected layers, ReLU and max pooling are quantised;
   the LBP layer (thresholds on pixel differences of 1/255) and the attention arithmetic stay fp32;
3. the metadata of :mod:`fer_attention.inference.onnx_io` (class names, preprocessing) with the quantisation settings;
4. the top-1 agreement of int8 with the fp32 (eager PyTorch) model on the held-out faces, and with a data
   config the accuracy of both on its test split.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from fer_attention.config import config_dir
from fer_attention.data.preprocess import resize
from fer_attention.data.sources.base import walk_files
from fer_attention.errors import ConfigError
from fer_attention.inference.onnx_io import export_onnx, onnx_metadata, write_onnx_metadata
from fer_attention.inference.predictor import load_onnx
from fer_attention.task_options import Activations, CalibMethod

log = logging.getLogger("fer_attention.inference.quantize")

CALIB_DATA = "data"
CALIB_METHODS = CalibMethod.values()
# activation types: uint8 (U8S8 with the int8 weights) lets ONNX Runtime fuse every convolution into
# QLinearConv on x86 (int8 activations left five of them fp32 here; make bench measures both)
ACTIVATIONS = tuple(a for a in Activations.values() if a != Activations.auto)
# activations=auto: both are quantised and timed on this CPU (batches of this many calibration faces,
# median of this many runs), and the faster is kept: uint8 won on an Intel CPU with VNNI/AMX, int8 on an
# AMD Zen 4 (docs/benchmarks.md), so no fixed choice is right on every x86 CPU
AUTO = Activations.auto.value
AUTO_BATCH = 64
AUTO_REPEATS = 5
OP_TYPES = ["Conv", "Gemm", "MatMul", "Relu", "MaxPool"]
# nodes under this name scope (the LBP layer) stay fp32
EXCLUDE_SCOPES = ("/lbp/",)
READER_BATCH = 16
CALIB_HINT = (
    "pass calib=<folder of face images>, or calib=data for a data config "
    "(data=<name> data.root=<path>; without data=, the checkpoint's own data)"
)


def check_calibration_arg(cfg: DictConfig) -> None:
    """One ConfigError line when ``calib`` is missing or names nothing usable (before any work)."""
    calib = cfg.get("calib")
    if calib in (None, ""):
        raise ConfigError(f"quantize=int8 needs calibration faces: {CALIB_HINT}")
    calib = str(calib)
    if calib == CALIB_DATA:
        return
    path = Path(calib).expanduser()
    if path.is_dir():
        return
    if (Path(config_dir()) / "data" / f"{calib}.yaml").is_file():
        raise ConfigError(
            f"calib={calib} is not a folder; for the data config '{calib}' pass "
            f"calib=data data={calib} data.root=<path>"
        )
    raise ConfigError(f"calib={calib}: no such folder; {CALIB_HINT}")


# --- calibration faces ---------------------------------------------------------------------------------


def faces_from_folder(model, folder: Path) -> tuple[np.ndarray, int]:
    """Every face of every image under ``folder`` (uint8 ``[N, S, S]``, ``detect=auto``) and the number of
    files that gave none."""
    faces: list[np.ndarray] = []
    failed = 0
    for path in walk_files(folder):
        try:
            crops, _ = model.faces(path, detect="auto")
        except ValueError:
            crops = []
        failed += not crops
        faces.extend(crops)
    size = model.image_size
    return (np.stack(faces) if faces else np.zeros((0, size, size), np.uint8)), failed


def _fit(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1:] == (size, size):
        return images
    return np.stack([resize(im, size) for im in images]) if len(images) else images.reshape(0, size, size)


def calibration_sets(cfg: DictConfig, model) -> dict[str, Any]:
    """``{"source", "calib", "heldout", "test"}``: uint8 faces to calibrate on, faces held out for the
    agreement check, and ``(faces, labels, name)`` of a test split (data configs only; None otherwise)."""
    rng = np.random.default_rng(int(cfg.get("seed", 0) or 0))
    limit = max(1, int(cfg.get("calib_size", 128)))
    calib = str(cfg.calib)
    if calib != CALIB_DATA:
        folder = Path(calib).expanduser()
        faces, failed = faces_from_folder(model, folder)
        if failed:
            log.warning("calib=%s: %d file(s) gave no face and were left out", folder, failed)
        if len(faces) < 2:
            raise ConfigError(
                f"calib={folder}: {len(faces)} face(s) found; calibration needs at least 2 face images"
            )
        order = rng.permutation(len(faces))
        frac = min(0.9, max(0.0, float(cfg.get("calib_holdout", 0.2))))
        n_held = min(len(faces) - 1, max(1, round(frac * len(faces))))
        held, rest = order[:n_held], order[n_held:]
        return {
            "source": f"{folder} ({len(faces)} faces)",
            "calib": faces[rest[:limit]],
            "heldout": faces[held],
            "test": None,
        }
    return _data_sets(cfg, model, rng, limit)


def _data_sets(cfg: DictConfig, model, rng: np.random.Generator, limit: int) -> dict[str, Any]:
    # function-local: Lightning only for calib=data
    from fer_attention.training.builders import build_datamodule, to_dict

    data_cfg = to_dict(cfg.get("data")) or dict(model.data_config or {})
    if not data_cfg or "_target_" not in data_cfg:
        raise ConfigError(f"calib=data: the checkpoint records no data config; {CALIB_HINT}")
    dm = build_datamodule(data_cfg)
    dm.setup("test")
    images, labels, split = dm.faces.images, dm.faces.labels, dm.split_indices
    name = data_cfg.get("name", "data")
    train = split["train"]
    if len(train) == 0:
        raise ConfigError(f"calib=data: data '{name}' has no training faces to calibrate on")
    pick = rng.permutation(len(train))[:limit]
    held = split.get("val")
    if held is None or len(held) == 0:  # no validation split: hold out training faces not calibrated on
        held = train[rng.permutation(len(train))[limit : limit + max(limit, 1)]]
    size = model.image_size
    test = None
    test_idx = split.get("test")
    if test_idx is not None and len(test_idx):
        if list(dm.class_names) == list(model.class_names):
            test = (_fit(images[test_idx], size), labels[test_idx], f"{name} test")
        else:
            log.warning(
                "data %s has classes %s, the model %s: no test accuracy",
                name,
                list(dm.class_names),
                model.class_names,
            )
    return {
        "source": f"data {name} (train split, {len(train)} faces)",
        "calib": _fit(images[train[pick]], size),
        "heldout": _fit(images[held], size),
        "test": test,
    }


# --- quantisation ---------------------------------------------------------------------------------------


def calibration_reader(faces: np.ndarray, batch_size: int = READER_BATCH):
    """A ``CalibrationDataReader`` over uint8 faces ``[N, S, S]``: batches ``{"faces": [B, 1, S, S]}`` in
    [0, 1], as the exported model takes them."""
    from onnxruntime.quantization import CalibrationDataReader

    class FaceReader(CalibrationDataReader):
        def __init__(self) -> None:
            self.start = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.start >= len(faces):
                return None
            batch = faces[self.start : self.start + batch_size]
            self.start += batch_size
            return {"faces": (batch.astype(np.float32) / 255.0)[:, None]}

        def rewind(self) -> None:
            self.start = 0

    return FaceReader()


def quantize_onnx(
    fp32_path: str | Path,
    out: str | Path,
    faces: np.ndarray,
    method: str = "minmax",
    per_channel: bool = True,
    activations: str = ACTIVATIONS[0],
) -> dict[str, Any]:
    """Static QDQ quantisation of the fp32 model ``fp32_path`` calibrated on ``faces``: int8 weights,
    ``activations`` (uint8 or int8) per tensor; writes ``out`` and returns the settings (for the metadata)."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
        except Exception as err:  # noqa: BLE001 - pre-processing is an optimisation, not a requirement
            log.warning("quant_pre_process failed (%s); quantising the plain export", err)
            pre = Path(fp32_path)
        graph = onnx.load(str(pre)).graph
        exclude = [n.name for n in graph.node if n.name.startswith(EXCLUDE_SCOPES)]
        calibrate = {
            "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy,
        }[method]
        quantize_static(
            str(pre),
            str(out),
            calibration_reader(faces),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=OP_TYPES,
            nodes_to_exclude=exclude,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=calibrate,
        )
    return {
        "type": "int8",
        "tool": f"onnxruntime {onnxruntime.__version__} quantize_static",
        "format": "QDQ",
        "weights": "int8, per output channel" if per_channel else "int8, per tensor",
        "activations": f"{activations}, per tensor",
        "op_types": OP_TYPES,
        "fp32": "LBP layer and attention arithmetic",
        "calibration_method": method,
        "calibration_faces": int(len(faces)),
    }


def faces_per_second(path: str | Path, faces: np.ndarray, repeats: int = AUTO_REPEATS) -> float:
    """ONNX Runtime throughput of the model at ``path`` on one batch of ``faces`` (uint8, N x H x W): the
    median of ``repeats`` runs after one warm-up, with torch's thread count."""
    import statistics
    import time

    from fer_attention.inference.onnx_io import ort_session

    session = ort_session(path)
    batch = {"faces": (faces.astype(np.float32) / 255.0)[:, None]}
    session.run(["logits"], batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(["logits"], batch)
        times.append(time.perf_counter() - start)
    return len(faces) / statistics.median(times)


def quantize_fastest(fp32_path: str | Path, out: str | Path, faces: np.ndarray, **options) -> dict[str, Any]:
    """``quantize_onnx`` with each activation type of ACTIVATIONS, timed on this CPU on a batch of
    calibration faces; the faster model is written to ``out``. The settings say which, and why."""
    import shutil

    from fer_attention.runtime import cpu_description

    batch = faces[:AUTO_BATCH]
    rates, settings = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for activations in ACTIVATIONS:
            path = Path(tmp) / f"{activations}.onnx"
            settings[activations] = quantize_onnx(fp32_path, path, faces, activations=activations, **options)
            rates[activations] = faces_per_second(path, batch)
        chosen = max(ACTIVATIONS, key=lambda a: rates[a])
        shutil.copyfile(Path(tmp) / f"{chosen}.onnx", out)
    measured = ", ".join(f"{a} {rates[a]:,.0f} faces/s" for a in ACTIVATIONS)
    log.info("activations=auto: %s on this CPU; keeping %s", measured, chosen)
    return {
        **settings[chosen],
        "activations_chosen_by": f"activations=auto: faster on {cpu_description()} at batch {len(batch)} "
        f"({measured})",
        "faces_per_s": {a: round(rates[a], 1) for a in ACTIVATIONS},
    }


def top1(probs: np.ndarray) -> np.ndarray:
    return probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)


def quantize_checkpoint(cfg: DictConfig, model, out: Path, ckpt: Path) -> dict[str, Any]:
    """The int8 part of `fer-export`: calibrate, quantise, write the metadata, compare with fp32."""
    sets = calibration_sets(cfg, model)
    method = str(cfg.calib_method)
    log.info("calibrating on %d faces from %s", len(sets["calib"]), sets["source"])
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model.net, model.image_size, Path(tmp) / "fp32.onnx", int(cfg.get("opset", 17)))
        options = dict(method=method, per_channel=bool(cfg.get("per_channel", True)))
        activations = str(cfg.activations)
        if activations == AUTO:
            settings = quantize_fastest(fp32, out, sets["calib"], **options)
        else:
            settings = quantize_onnx(fp32, out, sets["calib"], activations=activations, **options)
    settings["calibration"] = sets["source"]
    meta = onnx_metadata(
        model.class_names, model.image_size, model.data_config, quantization=settings, source=ckpt.name
    )
    write_onnx_metadata(out, meta)
    int8 = load_onnx(out)
    batch = max(1, int(cfg.get("batch_size", 64)))
    held = sets["heldout"]
    agree = float(
        np.mean(
            top1(model.predict_faces(held, batch_size=batch)["probs"])
            == top1(int8.predict_faces(held, batch_size=batch)["probs"])
        )
    )
    report: dict[str, Any] = {
        "calib_source": sets["source"],
        "calib_faces": int(len(sets["calib"])),
        "heldout_faces": int(len(held)),
        "agreement": agree,
        "test": None,
        "quantization": settings,
    }
    if sets["test"] is not None:
        faces, labels, name = sets["test"]
        p32 = top1(model.predict_faces(faces, batch_size=batch)["probs"])
        p8 = top1(int8.predict_faces(faces, batch_size=batch)["probs"])
        right32, right8 = p32 == labels, p8 == labels
        report["test"] = {
            "name": name,
            "faces": int(len(faces)),
            "acc_fp32": float(np.mean(right32)),
            "acc_int8": float(np.mean(right8)),
            "agreement": float(np.mean(p32 == p8)),
            # per face: which of the two models is right; the accuracy drop is int8_only - fp32_only
            "counts": {
                "same_answer": int(np.sum(p32 == p8)),
                "both_right": int(np.sum(right32 & right8)),
                "fp32_only_right": int(np.sum(right32 & ~right8)),
                "int8_only_right": int(np.sum(~right32 & right8)),
                "both_wrong": int(np.sum(~right32 & ~right8)),
            },
        }
    log.info("int8: top-1 agreement with fp32 %.2f%% on %d held-out faces", 100 * agree, len(held))
    return report


def report_lines(result: dict[str, Any]) -> list[str]:
    """The calibration report lines `fer-export quantize=int8` prints."""
    lines = [
        f"calibrated on {result['calib_faces']} faces from {result['calib_source']}; top-1 agreement with "
        f"fp32 on {result['heldout_faces']} held-out faces: {100 * result['agreement']:.1f}%"
    ]
    chosen_by = result["quantization"].get("activations_chosen_by")
    if chosen_by:
        kind = result["quantization"]["activations"].split(",")[0]
        lines.append(f"{kind} activations ({chosen_by})")
    t = result.get("test")
    if t:
        diff = 100 * (t["acc_int8"] - t["acc_fp32"])
        lines.append(
            f"accuracy on {t['name']} ({t['faces']} faces): fp32 {100 * t['acc_fp32']:.2f}%, int8 "
            f"{100 * t['acc_int8']:.2f}% (int8 - fp32: {diff:+.2f} points; top-1 agreement "
            f"{100 * t['agreement']:.1f}%)"
        )
    return lines
