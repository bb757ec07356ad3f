"""model.compile=true over the path fer-train runs on this CPU, as `make bench` times it
(experiments.bench.measure.bench_compile: two fresh processes on one empty Inductor cache), beside the
same path uncompiled in this process. Writes results.json here.

    python -m experiments.results.compile_cache_cpu.explore   (from the repository root)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from experiments.bench import decide, measure
from fer_attention.reporting.results import machine
from fer_attention.runtime import cpu_has_bf16, tune_malloc

SIZE, BATCH, WIDTH, REPEATS = 48, 64, 0.25, 5


def main() -> None:
    torch.set_num_threads(2)
    tune_malloc(256, 1024)
    start = time.time()
    path = decide.rate_target_path(["fp32", "bf16"] if cpu_has_bf16() else ["fp32"])
    opts = measure.FAST_PATHS[path]
    eager = measure.ms(
        measure.timeit(
            measure.train_step_fn(measure.build("full", SIZE, WIDTH), BATCH, SIZE, **opts), REPEATS, 2
        )
    )
    row = {"fp32": {"full": eager}, path: {"full": eager}}
    row["compile"] = measure.bench_compile(SIZE, BATCH, WIDTH, REPEATS, path)
    row = decide.add_fast_path_speedups(row)
    out = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime(start)),
        "size": SIZE,
        "batch": BATCH,
        "width": WIDTH,
        "path": path,
        "uncompiled": eager,
        "compiled": row["compile"],
        "wall_s": time.time() - start,
    }
    Path(__file__).with_name("results.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out["compiled"].items() if k != "probe"}, indent=1))


if __name__ == "__main__":
    main()
