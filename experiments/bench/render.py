"""bench.md from the results (a dict of numbers, as bench.json holds them): one table per section, each
figure marked met or MISSED against its target in decide.py. No timing here."""

from __future__ import annotations

import json
from pathlib import Path

from .decide import (
    DEFAULT_MIN_SPEEDUP,
    EXPORT_VS_EAGER_MIN,
    EXPORTS,
    FULL_VS_VGG16_MAX,
    INT8_TARGET,
    LBP_MAX_SHARE,
    LBP_MIN_SPEEDUP,
    LOADER_VS_TRAIN_MIN,
    RATE_TARGET,
    RATE_TARGET_SHARE,
    VIDEO_TARGET_FPS,
    configured_fast_path,
    rate_target_path,
    reference_dtype,
    verdict,
)

# the fast paths of the attainable-rate table (the memory format and the dtype of each)
RATE_PATH_LABELS = {
    "fp32": "fp32",
    "channels_last": "channels_last fp32",
    "bf16": "bf16 autocast",
    "channels_last_bf16": "channels_last + bf16",
}


def write(results: dict, out: str | Path) -> str:
    """Write ``out``/bench.json and ``out``/bench.md; returns the Markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "bench.md").write_text(table)
    return table


def timing_line(meta: dict) -> str:
    """How each figure was timed: ``meta`` of a bench.json (``repeats`` in one written before
    torch.utils.benchmark timed them)."""
    if "repeats" in meta:
        return f"Medians of {meta['repeats']} repeats after warm-up."
    return (
        f"Medians of torch.utils.benchmark's timed runs after its warm-up: runs until their IQR is under "
        f"{100 * meta['iqr_threshold']:g}% of the median (from 4 runs on) or {meta['max_run_time']:g} s are spent."
    )


def markdown(results: dict) -> str:
    """bench.md: every section's table, each figure met or MISSED against its target."""
    m = results["meta"]
    lines = [
        f"# Benchmark ({m['date']})",
        "",
        f"Machine: {m['machine']}; torch {m['torch']}, {m['threads']} threads; "
        f"width {m['width']}, batch {m['batch']}. {timing_line(m)} "
        f"glibc malloc thresholds as fer-train sets them (conf/runtime/default.yaml `malloc`): "
        f"{'applied' if m.get('malloc', {}).get('applied') else 'not applied'} to every section but the allocator "
        "comparison.",
        "",
    ]
    if m.get("quick"):
        lines += [
            "**Quick mode (`--quick`): toy sizes to check the script; these figures mean nothing.**",
            "",
        ]
    if m.get("skipped_emulated"):
        lines += [
            f"Not timed: {', '.join(m['skipped_emulated'])}. This CPU only emulates bf16 (no AVX-512 BF16 or AMX), "
            "at about 1 GFLOP/s, so those figures would measure the emulation (`--emulated` times them: 85 min "
            "on an AVX2 EPYC); fer-train falls back to fp32 here.",
            "",
        ]
    lines += [
        f"## LBP layer vs scikit-image loop ({m.get('lbp_faces', 1024):,} faces, 48x48, P=8, R=1)",
        "",
        f"| method | torch faces/s | skimage faces/s | speedup | target >= {LBP_MIN_SPEEDUP:g}x |",
        "|---|---|---|---|---|",
    ]
    for method, r in results["lbp"].items():
        ok = verdict(r["speedup"] >= LBP_MIN_SPEEDUP)
        lines.append(
            f"| {method} | {r['torch_faces_per_s']:,.0f} | {r['skimage_faces_per_s']:,.0f} | {r['speedup']:.1f}x | {ok} |"
        )
    for size, row in results["train_step"].items():
        if size == "ratio_full_vs_vgg16":
            continue
        lines += [
            "",
            f"## Training step at {size}x{size}, batch {m['batch']}",
            "",
            "| network | ms/step (min-max) | ratio to vgg16 | kernel ms/step (page faults) | parameters |",
            "|---|---|---|---|---|",
        ]
        for name, r in row.items():
            if name == "lbp_share_of_full_step":
                continue
            if "error" in r:
                lines.append(f"| {name} | - | - | - | {r['error']} |")
                continue
            lines.append(
                f"| {name} | {r['ms_per_step']:.0f} ({r['ms_min']:.0f}-{r['ms_max']:.0f}) | "
                f"{r['ratio_vs_vgg16']:.2f} | {r['kernel_ms_per_step']:.0f} ({r['page_faults_per_step']:,.0f}) | "
                f"{r['params']:,} |"
            )
        ratio = row["full"]["ratio_vs_vgg16"]
        lines.append("")
        lines.append(
            f"Full vs vgg16: {ratio:.2f}x (target <= {FULL_VS_VGG16_MAX:g}x: {verdict(ratio <= FULL_VS_VGG16_MAX)}; kernel time "
            f"(page faults, system calls) {row['full']['kernel_ms_per_step']:.0f} vs "
            f"{row['vgg16']['kernel_ms_per_step']:.0f} ms/step); "
            f"LBP layer = {100 * row['lbp_share_of_full_step']:.2f}% of a full step (target < 1%: "
            f"{verdict(row['lbp_share_of_full_step'] < LBP_MAX_SHARE)})."
        )
    lines += markdown_fast_paths(results["fast_paths"], m["batch"])
    lines += markdown_allocator(results["fast_paths"]["allocator"], m["batch"])
    if "rate" in results:  # a bench.json from before the section renders without it
        lines += markdown_rate(results["rate"], m["threads"])
    d = results["data"]
    lines += [
        "",
        "## Data pipeline",
        "",
        f"Loader (decoded arrays, training augmentation, {d['workers']} workers): {d['loader_faces_per_s']:,.0f} faces/s; "
        f"full-model training: {d['train_faces_per_s']:,.0f} faces/s; ratio {d['ratio_loader_vs_train']:.1f}x "
        f"(target >= {LOADER_VS_TRAIN_MIN:g}x: {verdict(d['ratio_loader_vs_train'] >= LOADER_VS_TRAIN_MIN)}).",
    ]
    w = results["fast_paths"]["loader_workers"]
    lines += [
        "",
        f"Loader with {w['workers']} workers, {w['epochs']} epochs through a fresh DataLoader, worker start-up "
        f"included: {w['not_persistent']['faces_per_s']:,.0f} faces/s with `persistent_workers=false`, "
        f"{w['persistent']['faces_per_s']:,.0f} faces/s with `true` ({w['speedup_persistent']:.2f}x; "
        f"worth the default whenever `data.num_workers > 0`: {'yes' if w['default'] else 'no'}, "
        f"needs >= {DEFAULT_MIN_SPEEDUP:.2f}x).",
    ]
    i = results["inference"]
    base_label = {"eager": "eager (NCHW)", "eager_channels_last": "eager (channels_last)"}
    lines += [
        "",
        "## Inference (full model, 48x48)",
        "",
        f"| | ms/face, batch 1 | faces/s, batch 64 | vs {base_label[i['eager_baseline']]}, batch 1 | batch 64 |",
        "|---|---|---|---|---|",
    ]
    rows = (*base_label.items(), ("torchscript", "TorchScript"), ("onnxruntime", "ONNX Runtime"))
    for name, label in rows:
        r = i[name]
        if "skipped" in r:
            lines.append(f"| {label} | - | - | - | skipped: {r['skipped']} |")
            continue
        if name in EXPORTS:
            ratios = f"{r['ratio_vs_eager_batch1']:.2f}x | {r['ratio_vs_eager']:.2f}x"
        else:
            ratios = "(baseline) | (baseline)" if name == i["eager_baseline"] else "- | -"
        lines.append(
            f"| {label} | {r['ms_per_face_batch1']:.2f} | {r['faces_per_s_batch64']:,.0f} | {ratios} |"
        )
    best = {"torchscript": "TorchScript", "onnxruntime": "ONNX Runtime"}[i["best_export"]]
    lines.append("")
    lines.append(
        f"Best exported path, {best}, vs {base_label[i['eager_baseline']]} (eager as conf/ configures it): "
        f"{i['ratio_export_vs_eager']:.2f}x at batch 64, {i['ratio_export_vs_eager_batch1']:.2f}x at batch 1 "
        f"(target >= {EXPORT_VS_EAGER_MIN:g}x: {verdict(i['ratio_export_vs_eager'] >= EXPORT_VS_EAGER_MIN)})."
    )
    lines += markdown_int8_video(results, base_label[i["eager_baseline"]])
    lines += [
        "",
        f"Peak memory (RSS of a fresh process) after one full-model training step at 48x48: "
        f"{results['peak_memory_mb']:.0f} MB.",
    ]
    return "\n".join(lines) + "\n"


def int8_choice(q: dict) -> str:
    """How the headline int8 row's activation type was chosen (conf/export.yaml `activations`)."""
    configured = q.get("configured", q.get("activations"))
    if configured == "auto":
        return "conf/export.yaml activations=auto: the faster here, as fer-export picks it"
    return "conf/export.yaml"


def markdown_int8_video(results: dict, eager_label: str) -> list[str]:
    q, v = results["int8"], results["video"]
    lines = ["", "## int8 ONNX Runtime vs fp32 eager (full model, 48x48)", ""]
    if "skipped" in q:
        lines.append(f"Skipped: {q['skipped']}.")
    else:
        agree = "-" if q["agreement_vs_fp32"] is None else f"{100 * q['agreement_vs_fp32']:.1f}%"
        act, alt = q.get("activations", "int8"), q.get("alternative")
        lines += [
            "| | ms/face, batch 1 | faces/s, batch 64 |",
            "|---|---|---|",
            f"| fp32 {eager_label} | {q['eager_ms_per_face_batch1']:.2f} | {q['eager_faces_per_s_batch64']:,.0f} |",
            f"| int8 ONNX Runtime (static QDQ, {act} activations) | {q['ms_per_face_batch1']:.2f} | "
            f"{q['faces_per_s_batch64']:,.0f} |",
            f"| int8 / fp32 | {q['ratio_vs_eager_batch1']:.2f}x | {q['ratio_vs_eager']:.2f}x |",
        ]
        ort = results.get("inference", {}).get("onnxruntime", {})
        if "faces_per_s_batch64" in ort:
            # the honest baseline for someone already on ONNX Runtime: the same runtime in fp32
            lines += [
                f"| fp32 ONNX Runtime | {ort['ms_per_face_batch1']:.2f} | {ort['faces_per_s_batch64']:,.0f} |",
                f"| int8 / fp32 ONNX Runtime | {ort['ms_per_face_batch1'] / q['ms_per_face_batch1']:.2f}x | "
                f"{q['faces_per_s_batch64'] / ort['faces_per_s_batch64']:.2f}x |",
            ]
        if alt:
            lines += [
                f"| alternative: {alt['activations']} activations | {alt['ms_per_face_batch1']:.2f} | "
                f"{alt['faces_per_s_batch64']:,.0f} |",
                f"| alternative / fp32 | {alt['ratio_vs_eager_batch1']:.2f}x | {alt['ratio_vs_eager']:.2f}x |",
            ]
        lines += [
            "",
            f"int8 ({act} activations, {int8_choice(q)}) vs fp32 eager at batch 64: {q['ratio_vs_eager']:.2f}x "
            f"(target >= {INT8_TARGET:.0f}x: "
            f"{verdict(q['ratio_vs_eager'] >= INT8_TARGET)}). Calibrated on {q['calib_faces']} "
            f"synthetic faces in {q['quantize_s']:.1f} s; top-1 agreement with fp32 on {q['heldout_faces']} "
            f"others: {agree} (random weights here; `fer-export quantize=int8` prints the accuracy drop of a "
            "trained model on its test split).",
        ]
    lines += [
        "",
        f"## Video end to end ({v['size']}, one face, every frame labelled)",
        "",
        f"`model.predict_video` (decode, Haar detection, tracking, network): {v['frames_per_s']:.1f} frames/s "
        f"over {v['frames']} frames (target >= {VIDEO_TARGET_FPS:.0f}: "
        f"{verdict(v['frames_per_s'] >= VIDEO_TARGET_FPS)}); a face found in "
        f"{v['frames_with_face']} of {v['frames']} frames, {v['tracks']} track(s).",
    ]
    return lines


def step_label(step: dict) -> str:
    return f"{step['model']}, width {step['width']:g}, {RATE_PATH_LABELS[step['path']]}"


def rate_target_line(rate: dict) -> str:
    """The RATE_TARGET row's share of its reference matmul rate, met or MISSED."""
    t, got = RATE_TARGET, rate.get("target")
    target = f"target >= {100 * RATE_TARGET_SHARE:.0f}%"
    path = got["path"] if got else rate_target_path(rate.get("native", ["fp32", "bf16"]))
    what = f"{t['model'].capitalize()} model, width {t['width']:g}, {RATE_PATH_LABELS[path]}"
    if got is None:
        return f"{what}, batch {t['batch']}: not measured ({target} of the matmul rate)."
    batch = f"batch {got['batch']}"
    if not got["at_target_batch"]:
        batch += f" (the target is at batch {t['batch']})"
    return (
        f"{what} (the path fer-train runs here), {batch}: {100 * got['share']:.1f}% of the "
        f"{got['reference']} matmul rate ({target}: {verdict(got['met'])})."
    )


def markdown_rate(rate: dict, threads: int) -> list[str]:
    best = rate["attainable"]
    native = rate.get("native", list(best))
    emulated = [d for d in best if d not in native]
    held = (
        f" This CPU computes {', '.join(emulated)} only by emulation: those rows are held against the "
        f"{reference_dtype(emulated[0], best, native)} rate."
        if emulated
        else ""
    )
    attainable = ", ".join(f"{d} {b['gflop_per_s']:,.0f} GFLOP/s at n={b['n']}" for d, b in best.items())
    lines = [
        "",
        "## Attainable rate (matmul) and the train step's share of it",
        "",
        f"`torch.matmul` of two square matrices with {threads} threads, per dtype; the best size is the "
        f"attainable rate ({attainable}). Training steps as in the fast-path "
        f"tables (AdamW) at {rate['size']}x{rate['size']}, batch {rate['batch']}; GFLOP of one step counted by "
        "`torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions, forward + backward; elementwise "
        "ops and the optimizer count nothing). Share: the step's GFLOP/s over the matmul rate of its dtype "
        f"(bf16 autocast against bf16, fp32 against fp32).{held}",
        "",
        "| what | GFLOP | ms/step | GFLOP/s | share of the matmul rate |",
        "|---|---|---|---|---|",
    ]
    for dtype, by_size in rate["matmul"].items():
        for n, r in by_size.items():
            what = f"matmul {dtype}, {n}x{n}" + (" (attainable)" if int(n) == best[dtype]["n"] else "")
            share = r["gflop_per_s"] / best[dtype]["gflop_per_s"]
            lines.append(
                f"| {what} | {r['gflop']:,.2f} | {1000 * r['s']['median']:,.1f} | {r['gflop_per_s']:,.0f} | "
                f"{100 * share:.1f}% |"
            )
    for step in rate["steps"]:
        against = step.get("reference", step["dtype"])
        note = f" (of {against})" if against != step["dtype"] else ""
        lines.append(
            f"| {step_label(step)} | {step['gflop']:,.2f} | {step['ms_per_step']:,.1f} | "
            f"{step['gflop_per_s']:,.0f} | {100 * step['share_of_matmul']:.1f}%{note} |"
        )
    return [*lines, "", rate_target_line(rate)]


def markdown_allocator(a: dict, batch: int) -> list[str]:
    th = a["thresholds"]
    lines = [
        "",
        f"## Allocator: glibc default vs `malloc` thresholds (mmap {th.get('mmap_threshold_mb')} MB, trim "
        f"{th.get('trim_threshold_mb')} MB), batch {batch}, channels_last, each in a fresh process",
        "",
        "| size | full ms/step default -> tuned | vgg16 ms/step default -> tuned | speedup full | full / vgg16 default -> tuned |",
        "|---|---|---|---|---|",
    ]
    if not a["tuned"].get("applied"):
        lines.insert(2, "(not glibc: the thresholds could not be applied, both columns are the default)")
    for size, r in a.items():
        if not size.isdigit():
            continue
        d, t = a["glibc_default"][size], a["tuned"][size]
        lines.append(
            f"| {size}x{size} | {d['full']['ms_per_step']:.0f} -> {t['full']['ms_per_step']:.0f} | "
            f"{d['vgg16']['ms_per_step']:.0f} -> {t['vgg16']['ms_per_step']:.0f} | {r['speedup_full']:.2f}x | "
            f"{r['ratio_full_vs_vgg16_default']:.2f} -> {r['ratio_full_vs_vgg16_tuned']:.2f} |"
        )
    return lines


def markdown_fast_paths(fast: dict, batch: int) -> list[str]:
    labels = {
        "fp32": "eager fp32 (baseline)",
        "channels_last": "channels_last",
        "bf16": "bf16 autocast",
        "channels_last_bf16": "channels_last + bf16",
        "compile": "torch.compile",
    }
    defaults = fast["defaults"]
    lines: list[str] = []
    for size, row in fast["train_step"].items():
        lines += [
            "",
            f"## Fast paths: training step at {size}x{size}, batch {batch}",
            "",
            "| path | full ms/step (min-max) | full kernel ms/step | speedup | vgg16 ms/step | full / vgg16 "
            "| kept as default? |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in row.items():
            if "skipped" in r:
                lines.append(f"| {labels[name]} | - | - | - | - | - | skipped: {r['skipped']} |")
                continue
            label = labels[name]
            if name == "compile" and r.get("over", "fp32") != "fp32":
                label += f" over {labels[r['over']]} ({r['speedup_over_path']:.2f}x it)"
            full = r["full"]
            vgg = f"{r['vgg16']['ms_per_step']:.0f}" if "vgg16" in r else "-"
            ratio = f"{r['ratio_full_vs_vgg16']:.2f}" if "ratio_full_vs_vgg16" in r else "-"
            if name == "fp32":
                kept = "(baseline)"
            else:
                kept = defaults[name]["why"]
            if name == "compile":
                kept += f"; first step {r['compile_s']:.0f} s (compilation)"
                if "compile_warm_s" in r:
                    kept += f", {r['compile_warm_s']:.0f} s in a later job (the cached graphs)"
                if "recompiles" in r:
                    again = r["recompiles"]
                    kept += (
                        f"; graphs compiled again for a short batch: {again['short_batch']}, "
                        f"for validation: {again['validation']}"
                    )
            lines.append(
                f"| {label} | {full['ms_per_step']:.0f} ({full['ms_min']:.0f}-{full['ms_max']:.0f}) | "
                f"{full['kernel_ms_per_step']:.0f} | {r['speedup']:.2f}x | {vgg} | {ratio} | {kept} |"
            )
        best = min(
            (n for n in row if "ratio_full_vs_vgg16" in row[n]), key=lambda n: row[n]["ratio_full_vs_vgg16"]
        )
        default = configured_fast_path(fast["config"])
        ratio = row[default]["ratio_full_vs_vgg16"]
        lines += [
            "",
            f"Full vs vgg16 as configured (`model.channels_last={str(default != 'fp32').lower()}`, "
            f"`trainer.precision=32-true`): {ratio:.2f}x (target <= {FULL_VS_VGG16_MAX:g}x: {verdict(ratio <= FULL_VS_VGG16_MAX)}); "
            f"lowest, {labels[best]}: {row[best]['ratio_full_vs_vgg16']:.2f}x.",
        ]
    if defaults["channels_last"]["default"] != fast["config"]["channels_last"]:
        lines += [
            "",
            f"Note: these numbers say channels_last {'should' if defaults['channels_last']['default'] else 'should not'} "
            f"be the default, but conf/model/fer_attention.yaml has `channels_last: "
            f"{str(fast['config']['channels_last']).lower()}`.",
        ]
    return lines
