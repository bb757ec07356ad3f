"""The rules of the benchmark, on numbers alone (no timing, no torch): the ratios derived from the timed
figures, the targets each figure is held to, and which fast path becomes the default."""

from __future__ import annotations

# Targets (docs/benchmarks.md): each figure met or MISSED in bench.md.
LBP_MIN_SPEEDUP = 5.0  # LBP layer vs the scikit-image loop, every method
LBP_MAX_SHARE = 0.01  # LBP layer's share of a full-model training step
FULL_VS_VGG16_MAX = 2.5  # full-model training step / vgg16 step
LOADER_VS_TRAIN_MIN = 10.0  # data loader faces/s / full-model training faces/s
EXPORT_VS_EAGER_MIN = 1.3  # best exported path vs eager as configured, batch 64
INT8_TARGET = 2.0  # int8 ONNX Runtime vs fp32 eager as configured, batch 64
VIDEO_TARGET_FPS = 25.0  # frames/s end to end, 640x480, one face, every frame labelled

# A fast path is worth making the default when it is at least this much faster at every measured size.
DEFAULT_MIN_SPEEDUP = 1.10
# ... and, for torch.compile, when it repays its compilation within about one `make train` run
# (quickstart: 25 epochs of 32 steps).
COMPILE_BREAK_EVEN_STEPS = 800

# the fast paths a default is decided for (fp32 is the baseline they are measured against)
CANDIDATES = ("channels_last", "bf16", "channels_last_bf16", "compile")
EXPORTS = ("torchscript", "onnxruntime")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def add_ratios_vs_vgg16(row: dict) -> dict:
    """Training-step row of one size (network -> timing): ``ratio_vs_vgg16`` on every timed network."""
    vgg = row["vgg16"]["ms_per_step"]
    for r in row.values():
        if isinstance(r, dict) and "ms_per_step" in r:
            r["ratio_vs_vgg16"] = r["ms_per_step"] / vgg
    return row


def add_fast_path_speedups(row: dict) -> dict:
    """Fast-path row of one size (path -> {"full": timing, "vgg16": timing, ...}): the full model's
    ``speedup`` against ``fp32``, ``ratio_full_vs_vgg16``, and for a timed compile the steps after which
    its compilation is repaid (``break_even_steps``, None if it is not faster)."""
    fp32_ms = row["fp32"]["full"]["ms_per_step"]
    for r in row.values():
        if "full" not in r:
            continue
        r["speedup"] = fp32_ms / r["full"]["ms_per_step"]
        if "vgg16" in r:
            r["ratio_full_vs_vgg16"] = r["full"]["ms_per_step"] / r["vgg16"]["ms_per_step"]
    compiled = row.get("compile", {})
    if "compile_s" in compiled:
        # compile is held against the same path uncompiled (``over``: fp32 when not given)
        base_ms = row[compiled.get("over", "fp32")]["full"]["ms_per_step"]
        compiled["speedup_over_path"] = base_ms / compiled["full"]["ms_per_step"]
        saved_s = (base_ms - compiled["full"]["ms_per_step"]) / 1000
        for first, key in (("compile_s", "break_even_steps"), ("compile_warm_s", "break_even_steps_warm")):
            if first in compiled:
                compiled[key] = compiled[first] / saved_s if saved_s > 0 else None
    return row


def fast_path_defaults(rows: dict) -> dict:
    """Which fast path to make the default, from the numbers (``rows``: size -> fast-path row with
    speedups): at least DEFAULT_MIN_SPEEDUP at every measured size; bf16 also changes the results (bf16
    rounding), so it is only ever marked opt-in; compile is held against the path it compiles
    (``speedup_over_path``) and must also repay a first job's compile time (an empty cache) within
    COMPILE_BREAK_EVEN_STEPS steps."""
    out = {}
    for name in CANDIDATES:
        measured = [row[name] for row in rows.values() if name in row and "speedup" in row[name]]
        if not measured:
            out[name] = {"default": False, "why": "not measured"}
            continue
        low = min(r.get("speedup_over_path", r["speedup"]) for r in measured)
        faster = low >= DEFAULT_MIN_SPEEDUP
        if not faster:
            why = f"no: {low:.2f}x at worst (needs >= {DEFAULT_MIN_SPEEDUP:.2f}x at every size)"
            default = False
        elif "bf16" in name:
            why = f"opt-in: >= {low:.2f}x, but bf16 rounding changes the results; check accuracy first"
            default = False
        elif name == "compile":
            steps = [r.get("break_even_steps") for r in measured]
            default = all(s is not None and s <= COMPILE_BREAK_EVEN_STEPS for s in steps)
            worst = max(s for s in steps if s is not None)
            why = (
                f"{'yes' if default else 'no'}: >= {low:.2f}x, compilation repaid after {worst:,.0f} steps "
                f"(limit {COMPILE_BREAK_EVEN_STEPS})"
            )
        else:
            why = f"yes: >= {low:.2f}x at every size, same results up to fp32 rounding"
            default = True
        out[name] = {"default": default, "min_speedup": low, "why": why}
    return out


def persistent_workers(not_persistent_fps: float, persistent_fps: float) -> dict:
    """Persistent loader workers on against off: the speedup, and whether it earns the default."""
    speedup = persistent_fps / not_persistent_fps
    return {"speedup_persistent": speedup, "default": speedup >= DEFAULT_MIN_SPEEDUP}


def loader_vs_train(loader_fps: float, batch: int, train_ms_per_step: float) -> dict:
    """The data loader's faces/s against the full model's training faces/s (``batch`` faces a step)."""
    train_fps = batch / (train_ms_per_step / 1000)
    return {
        "loader_faces_per_s": loader_fps,
        "train_faces_per_s": train_fps,
        "ratio_loader_vs_train": loader_fps / train_fps,
    }


def vs_eager(row: dict, eager: dict) -> dict:
    """``ratio_vs_eager`` (faces/s at batch 64) and ``ratio_vs_eager_batch1`` (ms/face at batch 1) of one
    inference row against the eager row (higher is faster for both)."""
    return {
        "ratio_vs_eager": row["faces_per_s_batch64"] / eager["faces_per_s_batch64"],
        "ratio_vs_eager_batch1": eager["ms_per_face_batch1"] / row["ms_per_face_batch1"],
    }


def add_export_ratios(out: dict, baseline: str) -> dict:
    """Inference section (model -> row): the ratios of every measured exported path against eager as
    configured (``baseline``), and the best of them (``best_export``, by batch-64 throughput)."""
    eager = out[baseline]
    for name in EXPORTS:
        if "faces_per_s_batch64" in out.get(name, {}):
            out[name].update(vs_eager(out[name], eager))
    best = max(
        (n for n in EXPORTS if "ratio_vs_eager" in out.get(n, {})), key=lambda n: out[n]["ratio_vs_eager"]
    )
    out["eager_baseline"] = baseline
    out["best_export"] = best
    out["ratio_export_vs_eager"] = out[best]["ratio_vs_eager"]
    out["ratio_export_vs_eager_batch1"] = out[best]["ratio_vs_eager_batch1"]
    return out


def int8_order(configured: str, measured: dict) -> list[str]:
    """The activation types of ``measured`` (type -> its int8 row), the one `fer-export` would use first:
    the configured type, or with ``auto`` the one with the most faces/s at batch 64 (as export picks)."""
    names = list(measured)
    if configured not in measured:
        names.sort(key=lambda a: -measured[a]["faces_per_s_batch64"])
        return names
    return [configured, *(a for a in names if a != configured)]


def allocator_ratios(default: dict, tuned: dict) -> dict:
    """Per size, the malloc thresholds' speedup of each network and the full / vgg16 ratio under each
    setting (``default``, ``tuned``: size -> {"full": timing, "vgg16": timing})."""
    out = {}
    for size in (s for s in default if s.isdigit()):
        d, t = default[size], tuned[size]
        out[size] = {
            "speedup_full": d["full"]["ms_per_step"] / t["full"]["ms_per_step"],
            "speedup_vgg16": d["vgg16"]["ms_per_step"] / t["vgg16"]["ms_per_step"],
            "ratio_full_vs_vgg16_default": d["full"]["ms_per_step"] / d["vgg16"]["ms_per_step"],
            "ratio_full_vs_vgg16_tuned": t["full"]["ms_per_step"] / t["vgg16"]["ms_per_step"],
        }
    return out


def configured_fast_path(config: dict) -> str:
    """The fast-path row `fer-train` runs without overrides (conf/model: ``channels_last``, fp32)."""
    return "channels_last" if config["channels_last"] else "fp32"


# --- the attainable rate: torch.matmul of square matrices, and the training step's share of it ----------

# full model, width 0.25, batch 32 (conf/budget/cpu.yaml), on the path fer-train runs at budget=cpu:
# channels_last + bf16 autocast where the CPU computes bf16 natively, channels_last fp32 where it does not
# (runtime.resolve_precision): its training step's GFLOP/s at least this share of its reference rate
RATE_TARGET_SHARE = 0.70
RATE_TARGET = {"model": "full", "width": 0.25, "path": "channels_last_bf16", "batch": 32}
RATE_TARGET_PATH_WITHOUT_BF16 = "channels_last"


def rate_target_path(native: list[str]) -> str:
    """The RATE_TARGET path on a CPU whose native dtypes are ``native``."""
    return RATE_TARGET["path"] if "bf16" in native else RATE_TARGET_PATH_WITHOUT_BF16


def matmul_gflop(n: int) -> float:
    """GFLOP of one ``n`` x ``n`` by ``n`` x ``n`` matmul: 2 n^3 (a multiply and an add per term)."""
    return 2 * n**3 / 1e9


def gflop_per_s(gflop: float, seconds: float) -> float:
    return gflop / seconds


def attainable_rate(matmul: dict) -> dict:
    """The best matmul size per dtype (``matmul``: dtype -> size -> {"gflop_per_s": ...}): dtype ->
    {"n": size, "gflop_per_s": its rate}, the rate the training step's GFLOP/s are held against."""
    out = {}
    for dtype, by_size in matmul.items():
        n = max(by_size, key=lambda s: by_size[s]["gflop_per_s"])
        out[dtype] = {"n": int(n), "gflop_per_s": by_size[n]["gflop_per_s"]}
    return out


def reference_dtype(dtype: str, rates: dict, native: list[str] | None = None) -> str:
    """The dtype whose matmul rate a ``dtype`` step is held against: its own where the CPU computes it
    natively (``native``; every dtype of ``rates`` when None), else the fastest native one: an emulated
    bf16 (no AVX-512 BF16 or AMX) measures the emulation, not what the machine can do."""
    native = list(rates) if native is None else native
    if dtype in native:
        return dtype
    return max(native, key=lambda d: rates[d]["gflop_per_s"])


def share_of_matmul(step: dict, rates: dict, native: list[str] | None = None) -> float:
    """A training step's GFLOP/s (``step``: {"dtype", "gflop_per_s"}) as a share of the attainable matmul
    rate of its reference dtype (``rates``: dtype -> {"gflop_per_s": ...}, as ``attainable_rate`` gives):
    the bf16 path against the bf16 rate, fp32 against fp32, an emulated dtype against the fastest native."""
    return step["gflop_per_s"] / rates[reference_dtype(step["dtype"], rates, native)]["gflop_per_s"]


def add_step_rates(steps: list[dict], rates: dict, native: list[str] | None = None) -> list[dict]:
    """Training-step rows ({"gflop", "ms_per_step", "dtype", ...}): ``gflop_per_s`` (median step time),
    ``reference`` (the dtype of the rate it is held against) and ``share_of_matmul`` on every row."""
    for step in steps:
        step["gflop_per_s"] = gflop_per_s(step["gflop"], step["ms_per_step"] / 1000)
        step["reference"] = reference_dtype(step["dtype"], rates, native)
        step["share_of_matmul"] = share_of_matmul(step, rates, native)
    return steps


def rate_target(steps: list[dict], batch: int, path: str = RATE_TARGET["path"]) -> dict | None:
    """The RATE_TARGET row (on ``path``) among ``steps`` (timed at ``batch``): its share and whether it is
    met (None if that row was not measured). ``at_target_batch`` is False when ``batch`` is not the
    target's."""
    t = RATE_TARGET
    for step in steps:
        if (step["model"], step["width"], step["path"]) == (t["model"], t["width"], path):
            share = step["share_of_matmul"]
            return {
                "path": path,
                "reference": step.get("reference", step["dtype"]),
                "share": share,
                "met": share >= RATE_TARGET_SHARE,
                "batch": batch,
                "at_target_batch": batch == t["batch"],
            }
    return None
