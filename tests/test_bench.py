"""experiments/bench.py: the quick mode runs every section and writes the keys the targets are read from."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_quick_writes_every_key(tmp_path: Path):
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "bench.py"), "--quick", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,  # a safety net: the quick mode takes about a minute on 2 free cores
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "bench.json").read_text())
    assert results["meta"]["quick"] is True
    # the keys the speed targets are read from
    for method in ("default", "ror", "uniform", "nri_uniform", "var"):
        assert results["lbp"][method]["speedup"] > 0
    assert results["train_step"]["ratio_full_vs_vgg16"]["48"] > 0
    assert results["data"]["ratio_loader_vs_train"] > 0
    assert results["inference"]["ratio_export_vs_eager"] > 0
    # fast paths: every variant at 48x48 with its speedup and full/vgg16 ratio, compile skipped in quick mode
    row = results["fast_paths"]["train_step"]["48"]
    for name in ("fp32", "channels_last", "bf16", "channels_last_bf16"):
        assert row[name]["speedup"] > 0 and row[name]["ratio_full_vs_vgg16"] > 0, name
    assert "skipped" in row["compile"]
    for name in ("channels_last", "bf16", "channels_last_bf16", "compile"):
        assert isinstance(results["fast_paths"]["defaults"][name]["default"], bool)
    assert results["fast_paths"]["defaults"]["bf16"]["default"] is False  # never by speed alone
    alloc = results["fast_paths"]["allocator"]
    assert alloc["tuned"]["applied"] is True and alloc["glibc_default"]["applied"] is False
    assert alloc["48"]["speedup_full"] > 0 and results["meta"]["malloc"]["applied"] is True
    workers = results["fast_paths"]["loader_workers"]
    assert workers["workers"] == 2 and workers["epochs"] == 3
    assert workers["persistent"]["faces_per_s"] > 0 and workers["not_persistent"]["faces_per_s"] > 0
    assert results["train_step"]["48"]["full"]["page_faults_per_step"] >= 0
    assert results["train_step"]["48"]["full"]["kernel_ms_per_step"] >= 0
    # exported inference: TorchScript always, ONNX Runtime with the export extra; the best one is named and
    # compared with eager as conf/ configures it
    inference = results["inference"]
    channels_last = results["fast_paths"]["config"]["channels_last"]
    assert inference["eager_baseline"] == ("eager_channels_last" if channels_last else "eager")
    assert inference["eager_channels_last"]["max_abs_diff_vs_eager"] <= 1e-4
    assert inference["torchscript"]["max_abs_diff_vs_eager"] <= 1e-4
    has_ort = importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx")
    assert ("faces_per_s_batch64" in inference["onnxruntime"]) == bool(has_ort)
    assert inference["best_export"] in ("torchscript", "onnxruntime")
    assert inference["ratio_export_vs_eager"] == inference[inference["best_export"]]["ratio_vs_eager"]
    # int8 ONNX Runtime vs fp32 eager (with the export extra) and video frames/s end to end
    int8 = results["int8"]
    if has_ort:
        assert int8["ratio_vs_eager"] > 0 and int8["ratio_vs_eager_batch1"] > 0
        assert int8["faces_per_s_batch64"] > 0 and 0 <= int8["agreement_vs_fp32"] <= 1
    else:
        assert "skipped" in int8
    video = results["video"]
    assert video["frames_per_s"] > 0 and video["size"] == "640x480" and video["frames"] == 10
    assert video["frames_with_face"] >= 8 and video["tracks"] >= 1  # the generated clip shows one face
    table = (out / "bench.md").read_text()
    for heading in (
        "Fast paths: training step at 48x48",
        "kept as default?",
        "Inference",
        "Quick mode",
        "int8 ONNX Runtime vs fp32 eager",
        "Video end to end (640x480",
    ):
        assert heading in table
