"""int8 ONNX Runtime variants against fp32 eager at batch 64, with the benchmark's network (full model,
48x48, width 0.25, 2 threads, random weights) and the calibration of `fer-export quantize=int8`.

Run from the repository root on a quiet machine:
    python experiments/results/int8_variants_cpu/explore.py
It prints faces/s per variant, the op profile of the int8-activation model, and writes results.json here.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from experiments.bench.measure import build, timeit  # noqa: E402
from fer_attention.inference import quantize  # noqa: E402
from fer_attention.inference.onnx_io import example_faces, export_onnx  # noqa: E402

SIZE, WIDTH, THREADS = 48, 0.25, 2
EXTRA_OPS = ["Add", "Mul", "Concat", "GlobalAveragePool", "Sigmoid", "Resize", "Flatten"]
VARIANTS = {
    "A qdq s8s8 per-channel (the old default)": (QuantFormat.QDQ, QuantType.QInt8, True, quantize.OP_TYPES),
    "B qdq u8s8 per-channel (the new default)": (QuantFormat.QDQ, QuantType.QUInt8, True, quantize.OP_TYPES),
    "C qdq s8s8 per-tensor": (QuantFormat.QDQ, QuantType.QInt8, False, quantize.OP_TYPES),
    "D qdq u8s8 per-tensor": (QuantFormat.QDQ, QuantType.QUInt8, False, quantize.OP_TYPES),
    "E qoperator u8s8 per-channel": (QuantFormat.QOperator, QuantType.QUInt8, True, quantize.OP_TYPES),
    "F qdq s8s8 per-channel, more op types": (
        QuantFormat.QDQ,
        QuantType.QInt8,
        True,
        quantize.OP_TYPES + EXTRA_OPS,
    ),
    "G qdq u8s8 per-channel, more op types": (
        QuantFormat.QDQ,
        QuantType.QUInt8,
        True,
        quantize.OP_TYPES + EXTRA_OPS,
    ),
}


def session(path: Path, profile: Path | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    if profile is not None:
        options.enable_profiling, options.profile_file_prefix = True, str(profile)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def faces_per_s(sess: ort.InferenceSession, faces: np.ndarray) -> float:
    return len(faces) / timeit(lambda: sess.run(["logits"], {"faces": faces}), 7, warmup=2)["median"]


def main() -> None:
    torch.set_num_threads(THREADS)
    many = example_faces(64, SIZE, seed=1)
    calib = np.random.default_rng(0).integers(0, 256, (128, SIZE, SIZE)).astype(np.uint8)
    net = build("full", SIZE, WIDTH).eval()
    with torch.no_grad():
        fast = build("full", SIZE, WIDTH).eval().to(memory_format=torch.channels_last)
        x = many.contiguous(memory_format=torch.channels_last)
        results = {"fp32 eager (channels_last)": 64 / timeit(lambda: fast(x), 7, warmup=2)["median"]}
    tmp = Path(tempfile.mkdtemp())
    fp32 = export_onnx(net, SIZE, tmp / "fp32.onnx")
    results["fp32 ONNX Runtime"] = faces_per_s(session(fp32), many.numpy())
    pre = tmp / "pre.onnx"
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=False)
    lbp_nodes = [n.name for n in onnx.load(str(pre)).graph.node if n.name.startswith(quantize.EXCLUDE_SCOPES)]
    paths = {}
    for name, (fmt, activations, per_channel, ops) in VARIANTS.items():
        paths[name] = tmp / f"{name[0]}.onnx"
        quantize_static(
            str(pre),
            str(paths[name]),
            quantize.calibration_reader(calib),
            quant_format=fmt,
            op_types_to_quantize=ops,
            nodes_to_exclude=lbp_nodes,
            per_channel=per_channel,
            activation_type=activations,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        results[name] = faces_per_s(session(paths[name]), many.numpy())
    eager = results["fp32 eager (channels_last)"]
    for name, rate in results.items():
        print(f"{name}: {rate:,.0f} faces/s = {rate / eager:.2f}x fp32 eager")
    first = next(iter(VARIANTS))
    profiled = session(paths[first], profile=tmp / "prof")
    for _ in range(5):
        profiled.run(["logits"], {"faces": many.numpy()})
    times: Counter = Counter()
    for event in json.loads(Path(profiled.end_profiling()).read_text()):
        if event.get("cat") == "Node":
            times[event["args"].get("op_name", "?")] += event["dur"]
    total = sum(times.values())
    print(
        f"time by op, {first}:", ", ".join(f"{op} {100 * t / total:.1f}%" for op, t in times.most_common(8))
    )
    Path(__file__).with_name("results.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
