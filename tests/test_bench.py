"""experiments/bench: what it times follows conf/, the rules (decide.py) and the Markdown (render.py) on
made-up numbers, and one quick run end to end whose numbers must agree with each other."""

from __future__ import annotations

import json
import mmap
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from experiments.bench import cli, config, decide, measure, render
from fer_attention.runtime import cpu_has_bf16

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
FAST_PATH_LABELS = [
    "eager fp32 (baseline)",
    "channels_last",
    "bf16 autocast",
    "channels_last + bf16",
    "torch.compile",
]


def table(md: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """Header cells and body rows (cells) of the first Markdown table after the line starting ``heading``."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    assert rows and set("".join(rows[1])) <= set("-"), f"no table after {heading!r}"
    return rows[0], rows[2:]


# --- what is timed comes from conf/ --------------------------------------------------------------------


def test_ablations_are_the_conf_ablation_options_in_the_sweep_order():
    found = config.ablations()
    stems = {p.stem for p in (CONF / "ablation").glob("*.yaml")}
    assert set(found) == stems and {"full", "vgg16"} <= stems
    for name, modules in found.items():
        assert modules == OmegaConf.to_container(OmegaConf.load(CONF / "ablation" / f"{name}.yaml"))
    swept = OmegaConf.load(CONF / "sweep" / "ablation_modules.yaml").hydra.sweeper.params.ablation
    assert list(found)[: len(swept.split(","))] == [n for n in swept.split(",") if n in stems]


def test_adding_an_ablation_yaml_adds_a_timed_row(tmp_path, monkeypatch):
    shutil.copytree(CONF / "ablation", tmp_path / "ablation")
    shutil.copytree(CONF / "sweep", tmp_path / "sweep")
    (tmp_path / "ablation" / "attention_only.yaml").write_text(
        "name: attention_only\nlbp: false\nattention: true\nreconstruction: false\n"
    )
    found = config.ablations(tmp_path)
    assert list(found)[-1] == "attention_only" and len(found) == len(config.ablations()) + 1
    assert found["attention_only"] == {
        "name": "attention_only",
        "lbp": False,
        "attention": True,
        "reconstruction": False,
    }
    (tmp_path / "sweep" / "ablation_modules.yaml").unlink()  # no sweep: by name
    assert list(config.ablations(tmp_path)) == sorted(found)

    # every option becomes one row of the training-step table, with its ratio to vgg16 (fake timings)
    ms_per_net = {name: 100.0 + 10 * i for i, name in enumerate(found)}
    built: list[str] = []

    class Step:
        def __init__(self, seconds: float) -> None:
            self.seconds = seconds

        def __call__(self) -> None:
            pass

    def fake_build(name, size, width):
        built.append(name)
        return measure.torch.nn.Linear(2, 1)

    def fake_step(net, batch, size, **_):
        return Step(ms_per_net[built[-1]] / 1000)

    def fake_timeit(fn, max_run_time):
        s = getattr(fn, "seconds", 0.002)  # the LBP layer alone: 2 ms
        return {
            "median": s,
            "iqr": 0.0,
            "min": s,
            "max": s,
            "repeats": 1,
            "kernel_s": 0.0,
            "page_faults": 0.0,
        }

    monkeypatch.setattr(measure, "build", fake_build)
    monkeypatch.setattr(measure, "train_step_fn", fake_step)
    monkeypatch.setattr(measure, "timeit", fake_timeit)
    out = measure.bench_train_steps([48], 4, 0.125, 1, found)
    row = out["48"]
    assert built == list(found)
    assert list(row) == [*found, "lbp_share_of_full_step"]
    for name, ms in ms_per_net.items():
        assert row[name]["ms_per_step"] == pytest.approx(ms)
        assert row[name]["ratio_vs_vgg16"] == pytest.approx(ms / ms_per_net["vgg16"])
        assert row[name]["params"] == 3
    assert row["lbp_share_of_full_step"] == pytest.approx(2.0 / ms_per_net["full"])
    assert out["ratio_full_vs_vgg16"] == {"48": row["full"]["ratio_vs_vgg16"]}


def test_augmentation_is_conf_augment_default():
    expected = OmegaConf.to_container(OmegaConf.load(CONF / "augment" / "default.yaml"))["train"]
    assert config.train_augmentation() == expected and expected
    model = OmegaConf.load(CONF / "model" / "fer_attention.yaml")
    assert config.configured_defaults() == {
        "channels_last": model.channels_last,
        "compile": model.compile,
    }
    assert config.configured_malloc() == OmegaConf.to_container(
        OmegaConf.load(CONF / "runtime" / "default.yaml").malloc
    )


def test_the_timed_network_is_fer_trains_model_net():
    net = config.net_config("no_lbp", 96, 0.125)
    assert net["modules"] == config.ablations()["no_lbp"]
    assert (net["image_size"], net["backbone"]["width"], net["num_classes"]) == (96, 0.125, 7)
    model = OmegaConf.load(CONF / "model" / "fer_attention.yaml").net
    for group in ("attention", "classifier"):
        assert net[group] == OmegaConf.to_container(model[group]), group
    chosen = {
        k: v
        for d in OmegaConf.load(CONF / "train.yaml").defaults
        if not isinstance(d, str)
        for k, v in d.items()
    }
    assert net["lbp"] == OmegaConf.to_container(OmegaConf.load(CONF / "lbp" / f"{chosen['lbp']}.yaml"))
    rates = OmegaConf.load(CONF / "dilation" / f"{chosen['dilation']}.yaml").rates
    assert net["reconstruction"]["rates"] == list(rates)
    net["modules"]["lbp"] = True  # a copy: the next call composes the same again
    assert config.net_config("no_lbp", 96, 0.125)["modules"]["lbp"] is False
    full = measure.build("full", 48, 0.125)
    assert full.uses_lbp and full.attention is not None and full.reconstruction is not None
    vgg = measure.build("vgg16", 48, 0.125)
    assert not vgg.uses_lbp and vgg.attention is None and vgg.reconstruction is None


def test_bench_reaches_the_package_never_the_cli():
    for path in (REPO / "experiments" / "bench").glob("*.py"):
        text = path.read_text()
        assert "fer_attention.cli" not in text and "ABLATIONS = {" not in text, path.name
        assert "albumentations." not in text, f"{path.name} copies the augmentation from conf/"


# --- the timer: torch.utils.benchmark ---------------------------------------------------------------------


def test_timeit_is_timers_adaptive_autorange_with_the_bench_threads_and_usage_per_timed_call():
    """A call that touches 256 fresh pages (the first call, a warm-up, 2,560): 256 page faults per timed
    call, so the warm-up and Timer's block-size search are left out and the usage is divided by calls, not
    runs; the call sees the bench's torch threads (Timer's default is 1); at least 4 runs within 2 s."""
    seen: list[int] = []

    def touch() -> None:
        pages = 256 if seen else 2560
        seen.append(torch.get_num_threads())
        with mmap.mmap(-1, 4096 * pages) as memory:
            memory[::4096] = b"\x01" * pages

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        t = measure.timeit(touch, max_run_time=2.0)
    finally:
        torch.set_num_threads(before)
    assert set(seen) == {2}
    assert t["repeats"] >= 4 and len(seen) > t["repeats"] * t["calls_per_repeat"]  # warm-up not timed
    assert t["min"] <= t["median"] <= t["max"] and 0 <= t["iqr"] <= t["max"] - t["min"]
    assert 256 <= t["page_faults"] < 270 and t["kernel_s"] >= 0
    assert measure.ms(t)["page_faults_per_step"] == t["page_faults"]
    assert measure.ms(t)["ms_per_step"] == 1000 * t["median"]
    assert measure.timeit(touch, max_run_time=1e-6)["repeats"] == 1  # --quick: one timed run


def test_options_take_the_defaults_or_quicks_and_explicit_ones_win():
    full, quick = cli.parse_args([]), cli.parse_args(["--quick"])
    assert (full.max_run_time, full.width, full.sizes, full.lbp_faces) == (10.0, 0.25, "48,96", 1024)
    assert (quick.max_run_time, quick.width, quick.sizes, quick.lbp_faces) == (1e-3, 0.125, "48", 64)
    assert (quick.threads, quick.compile_sizes, quick.rate_batch) == (1, "none", 8)
    assert cli.parse_args(["--quick", "--max-run-time", "2", "--width", "0.5"]).max_run_time == 2.0
    assert cli.parse_args(["--quick", "--width", "0.5"]).width == 0.5


# --- the rules, on made-up numbers ------------------------------------------------------------------------


def timing(ms: float) -> dict:
    return {
        "ms_per_step": ms,
        "ms_min": 0.9 * ms,
        "ms_max": 1.1 * ms,
        "kernel_ms_per_step": 5.0,
        "page_faults_per_step": 100.0,
    }


def fast_row(fp32: float, channels_last: float, bf16: float, both: float, compile_ms=None, compile_s=60.0):
    row = {
        "fp32": {"full": timing(fp32), "vgg16": timing(fp32 / 2)},
        "channels_last": {"full": timing(channels_last), "vgg16": timing(channels_last / 2)},
        "bf16": {"full": timing(bf16), "vgg16": timing(bf16 / 2)},
        "channels_last_bf16": {"full": timing(both), "vgg16": timing(both / 2)},
        "compile": {"skipped": "not timed"}
        if compile_ms is None
        else {"full": timing(compile_ms), "compile_s": compile_s},
    }
    return decide.add_fast_path_speedups(row)


def test_fast_path_speedups_are_quotients_of_the_timings():
    row = fast_row(300, 250, 200, 150, compile_ms=260, compile_s=60.0)
    for name, ms in (("fp32", 300), ("channels_last", 250), ("bf16", 200), ("channels_last_bf16", 150)):
        assert row[name]["speedup"] == pytest.approx(300 / ms)
        assert row[name]["ratio_full_vs_vgg16"] == pytest.approx(2.0)
    assert row["compile"]["speedup"] == pytest.approx(300 / 260)
    assert row["compile"]["break_even_steps"] == pytest.approx(60.0 / ((300 - 260) / 1000))
    assert "ratio_full_vs_vgg16" not in row["compile"]
    assert fast_row(300, 250, 200, 150, compile_ms=310)["compile"]["break_even_steps"] is None


def test_the_faster_path_becomes_the_default_only_at_every_size():
    both = {"48": fast_row(300, 250, 150, 120), "96": fast_row(1000, 800, 500, 400)}
    d = decide.fast_path_defaults(both)
    assert d["channels_last"]["default"] is True  # 1.20x and 1.25x
    assert d["channels_last"]["min_speedup"] == pytest.approx(1.2)
    assert d["bf16"]["default"] is False and d["bf16"]["why"].startswith("opt-in")  # 2x, but not by speed
    assert d["channels_last_bf16"]["default"] is False
    assert d["compile"] == {"default": False, "why": "not measured"}
    slow_at_96 = {"48": fast_row(300, 250, 150, 120), "96": fast_row(1000, 950, 500, 400)}  # 1.05x at 96
    d = decide.fast_path_defaults(slow_at_96)
    assert d["channels_last"]["default"] is False and d["channels_last"]["why"].startswith("no: 1.05x")
    assert d["bf16"]["default"] is False
    # exactly at the threshold is enough
    at_limit = decide.fast_path_defaults({"48": fast_row(110, 100, 110, 110)})
    assert at_limit["channels_last"]["default"] is True and at_limit["bf16"]["why"].startswith("no:")


def test_compile_is_the_default_only_when_repaid_within_one_training_run():
    limit = decide.COMPILE_BREAK_EVEN_STEPS
    # saves 40 ms a step: repaid after compile_s / 0.04 steps
    quick = decide.fast_path_defaults({"48": fast_row(300, 300, 300, 300, 260, compile_s=0.04 * (limit - 1))})
    slow = decide.fast_path_defaults(
        {"48": fast_row(300, 300, 300, 300, 260, compile_s=0.04 * (limit + 100))}
    )
    assert quick["compile"]["default"] is True and quick["compile"]["why"].startswith("yes")
    assert slow["compile"]["default"] is False and f"limit {limit}" in slow["compile"]["why"]
    assert decide.fast_path_defaults({"48": fast_row(300, 300, 300, 300, 290)})["compile"]["default"] is False


def test_compile_over_a_fast_path_is_held_against_that_path_cold_and_warm():
    """Compiled channels_last (200 ms) against channels_last uncompiled (250 ms): 1.25x, not the 1.5x over
    eager fp32; a first job's compile (60 s) is repaid after 1,200 steps, a later one's (6 s) after 120."""
    row = fast_row(300, 250, 200, 150)
    row["compile"] = {"over": "channels_last", "full": timing(200), "compile_s": 60.0, "compile_warm_s": 6.0}
    row = decide.add_fast_path_speedups(row)
    c = row["compile"]
    assert c["speedup"] == pytest.approx(1.5) and c["speedup_over_path"] == pytest.approx(1.25)
    assert c["break_even_steps"] == pytest.approx(1200) and c["break_even_steps_warm"] == pytest.approx(120)
    d = decide.fast_path_defaults({"48": row})["compile"]
    assert d["min_speedup"] == pytest.approx(1.25) and d["default"] is False  # 1,200 steps > the limit of 800
    assert "repaid after 1,200 steps" in d["why"]
    c.update(recompiles={"short_batch": 0, "validation": 1}, speedup_over_path=1.25)
    fast = {"train_step": {"48": row}, "defaults": decide.fast_path_defaults({"48": row})}
    fast["config"] = {"channels_last": True, "compile": False}
    (line,) = [x for x in render.markdown_fast_paths(fast, 64) if x.startswith("| torch.compile")]
    assert line.startswith("| torch.compile over channels_last (1.25x it) | 200 (180-220) |")
    assert "first step 60 s (compilation), 6 s in a later job (the cached graphs)" in line
    assert "graphs compiled again for a short batch: 0, for validation: 1" in line


def test_export_ratios_pick_the_faster_export():
    def rows(ts_fps: float, ort: dict | None) -> dict:
        out = {
            "eager": {"ms_per_face_batch1": 4.0, "faces_per_s_batch64": 800.0},
            "eager_channels_last": {"ms_per_face_batch1": 3.0, "faces_per_s_batch64": 1000.0},
            "torchscript": {"ms_per_face_batch1": 2.0, "faces_per_s_batch64": ts_fps},
            "onnxruntime": ort or {"skipped": "not installed"},
        }
        return decide.add_export_ratios(out, "eager_channels_last")

    ort = {"ms_per_face_batch1": 1.5, "faces_per_s_batch64": 1500.0}
    out = rows(1100.0, dict(ort))
    assert out["best_export"] == "onnxruntime" and out["eager_baseline"] == "eager_channels_last"
    assert out["ratio_export_vs_eager"] == pytest.approx(1500 / 1000)
    assert out["ratio_export_vs_eager_batch1"] == pytest.approx(3.0 / 1.5)
    assert out["torchscript"]["ratio_vs_eager"] == pytest.approx(1100 / 1000)
    assert "ratio_vs_eager" not in out["eager"]
    assert rows(2000.0, dict(ort))["best_export"] == "torchscript"
    assert rows(900.0, None)["best_export"] == "torchscript"  # the only one measured, slower or not


def test_loader_allocator_and_persistent_worker_ratios():
    d = decide.loader_vs_train(6400.0, 64, 320.0)
    assert d["train_faces_per_s"] == pytest.approx(200.0) and d["ratio_loader_vs_train"] == pytest.approx(
        32.0
    )
    assert decide.persistent_workers(1000.0, 1840.0) == {
        "speedup_persistent": pytest.approx(1.84),
        "default": True,
    }
    assert decide.persistent_workers(1000.0, 1050.0)["default"] is False
    default = {"applied": False, "48": {"full": timing(450), "vgg16": timing(150)}}
    tuned = {"applied": True, "48": {"full": timing(300), "vgg16": timing(120)}}
    assert decide.allocator_ratios(default, tuned) == {
        "48": {
            "speedup_full": pytest.approx(1.5),
            "speedup_vgg16": pytest.approx(1.25),
            "ratio_full_vs_vgg16_default": pytest.approx(3.0),
            "ratio_full_vs_vgg16_tuned": pytest.approx(2.5),
        }
    }


def matmul_row(n: int, gflop_per_s: float) -> dict:
    gflop = decide.matmul_gflop(n)
    s = gflop / gflop_per_s
    return {
        "gflop": gflop,
        "s": {"median": s, "min": s, "max": s, "repeats": 3, "kernel_s": 0.0, "page_faults": 0.0},
        "gflop_per_s": gflop_per_s,
    }


# attainable: fp32 100 GFLOP/s at n=2048, bf16 400 GFLOP/s at n=1024
MADE_UP_MATMUL = {
    "fp32": {"1024": matmul_row(1024, 80.0), "2048": matmul_row(2048, 100.0)},
    "bf16": {"1024": matmul_row(1024, 400.0), "2048": matmul_row(2048, 350.0)},
}


def step_row(model: str, width: float, path: str, gflop: float, ms: float) -> dict:
    dtype = "bf16" if measure.FAST_PATHS[path]["bf16"] else "fp32"
    return {"model": model, "width": width, "path": path, "dtype": dtype, "gflop": gflop, **timing(ms)}


def made_up_rate(full_bf16_ms: float = 100.0, batch: int = 32) -> dict:
    """The attainable-rate section: the full model's bf16 step at width 0.25 does 20 GFLOP in
    ``full_bf16_ms`` (100 ms: 200 GFLOP/s, 50% of the bf16 rate)."""
    matmul = {dtype: {n: dict(r) for n, r in by_size.items()} for dtype, by_size in MADE_UP_MATMUL.items()}
    attainable = decide.attainable_rate(matmul)
    steps = [
        step_row("full", 0.25, "fp32", 20.0, 250.0),  # 80 GFLOP/s: 80% of fp32
        step_row("full", 0.25, "channels_last_bf16", 20.0, full_bf16_ms),
        step_row("vgg16", 0.25, "channels_last_bf16", 10.0, 40.0),  # 250 GFLOP/s: 62.5% of bf16
        step_row("full", 1.0, "bf16", 320.0, 1000.0),  # 320 GFLOP/s: 80% of bf16
    ]
    steps = decide.add_step_rates(steps, attainable)
    return {
        "matmul": matmul,
        "attainable": attainable,
        "size": 48,
        "batch": batch,
        "steps": steps,
        "target": decide.rate_target(steps, batch),
    }


def test_attainable_rate_and_the_steps_shares_of_it():
    assert decide.matmul_gflop(1024) == 2 * 1024**3 / 1e9
    assert decide.gflop_per_s(20.0, 0.25) == 80.0
    rates = decide.attainable_rate(MADE_UP_MATMUL)
    assert rates == {"fp32": {"n": 2048, "gflop_per_s": 100.0}, "bf16": {"n": 1024, "gflop_per_s": 400.0}}
    # each dtype against its own rate: bf16 against bf16, fp32 against fp32
    assert decide.share_of_matmul({"dtype": "bf16", "gflop_per_s": 200.0}, rates) == 0.5
    assert decide.share_of_matmul({"dtype": "fp32", "gflop_per_s": 200.0}, rates) == 2.0
    steps = made_up_rate()["steps"]
    assert [(s["gflop_per_s"], s["share_of_matmul"]) for s in steps] == [
        (80.0, 0.8),
        (200.0, 0.5),
        (250.0, 0.625),
        (320.0, 0.8),
    ]
    assert decide.rate_target(steps, 32) == {
        "path": "channels_last_bf16",
        "reference": "bf16",
        "share": 0.5,
        "met": False,
        "batch": 32,
        "at_target_batch": True,
    }
    assert decide.rate_target(made_up_rate(62.5)["steps"], 32)["met"] is True  # 320 GFLOP/s: 80%
    at_limit = [dict(steps[1], share_of_matmul=decide.RATE_TARGET_SHARE)]
    assert decide.rate_target(at_limit, 8) == {
        "path": "channels_last_bf16",
        "reference": "bf16",
        "share": decide.RATE_TARGET_SHARE,
        "met": True,  # exactly at the target is enough
        "batch": 8,
        "at_target_batch": False,
    }
    assert decide.rate_target([s for s in steps if s["width"] != 0.25], 32) is None


def test_a_cpu_that_emulates_bf16_holds_bf16_steps_against_the_fp32_rate():
    """Without AVX-512 BF16 or AMX, bf16 matmul is an emulation (1 GFLOP/s on a 2-core EPYC with AVX2):
    a bf16 step is held against the fp32 rate, and the target row is the fp32 path fer-train runs there."""
    rates = decide.attainable_rate(MADE_UP_MATMUL)  # fp32 100, bf16 400 GFLOP/s
    assert decide.reference_dtype("bf16", rates, ["fp32"]) == "fp32"
    assert decide.reference_dtype("bf16", rates, ["fp32", "bf16"]) == "bf16"
    assert decide.share_of_matmul({"dtype": "bf16", "gflop_per_s": 50.0}, rates, ["fp32"]) == 0.5
    steps = [
        step_row("full", 0.25, "channels_last", 20.0, 250.0),  # 80 GFLOP/s: 80% of fp32
        step_row("full", 0.25, "channels_last_bf16", 20.0, 2000.0),  # 10 GFLOP/s: 10% of fp32
    ]
    steps = decide.add_step_rates(steps, rates, ["fp32"])
    assert [(s["reference"], s["share_of_matmul"]) for s in steps] == [("fp32", 0.8), ("fp32", 0.1)]
    assert decide.rate_target_path(["fp32"]) == "channels_last"
    assert decide.rate_target(steps, 32, "channels_last") == {
        "path": "channels_last",
        "reference": "fp32",
        "share": 0.8,
        "met": True,
        "batch": 32,
        "at_target_batch": True,
    }
    results = made_up_results()
    results["rate"] = dict(
        made_up_rate(), native=["fp32"], steps=steps, target=decide.rate_target(steps, 32, "channels_last")
    )
    md = render.markdown(results)
    _, rows = table(md, RATE_HEADING)
    assert rows[-2:] == [
        ["full, width 0.25, channels_last fp32", "20.00", "250.0", "80", "80.0%"],
        ["full, width 0.25, channels_last + bf16", "20.00", "2,000.0", "10", "10.0% (of fp32)"],
    ]
    assert "This CPU computes bf16 only by emulation: those rows are held against the fp32 rate." in md
    assert (
        "Full model, width 0.25, channels_last fp32 (the path fer-train runs here), batch 32: 80.0% of the fp32 "
        "matmul rate (target >= 70%: met)." in md.splitlines()
    )


def test_count_flops_matches_the_hand_count():
    linear = measure.torch.nn.Linear(64, 32)
    x = measure.torch.rand(8, 64, requires_grad=True)
    forward = 2 * 8 * 64 * 32
    assert measure.count_flops(lambda: linear(x)) == forward
    # backward: the gradients of the input and of the weight, one matmul each (the bias's is a sum)
    assert measure.count_flops(lambda: linear(x).sum().backward()) == 3 * forward
    # one training step as the bench times it: the batch needs no gradient, AdamW counts nothing
    net = measure.torch.nn.Sequential(measure.torch.nn.Flatten(), measure.torch.nn.Linear(64, 7))
    for opts in measure.FAST_PATHS.values():
        step = measure.train_step_fn(net, 8, 8, **opts)
        assert measure.count_flops(step) == 2 * (2 * 8 * 64 * 7)


# --- the Markdown, for given numbers --------------------------------------------------------------------


def made_up_results(quick: bool = False, ort: bool = True, channels_last: bool = True) -> dict:
    """A complete results dict as bench.json holds it, with round numbers and the derived figures from
    decide.py."""
    ablation_ms = {"full": 300.0, "no_lbp": 180.0, "no_attention": 250.0, "no_reconstruction": 260.0}
    ablation_ms["vgg16"] = 150.0
    step = {name: {**timing(ms), "params": 1000 + i} for i, (name, ms) in enumerate(ablation_ms.items())}
    step = {**decide.add_ratios_vs_vgg16(step), "lbp_share_of_full_step": 0.005}
    fast = {"train_step": {"48": fast_row(300, 250, 200, 150)}}
    fast["defaults"] = decide.fast_path_defaults(fast["train_step"])
    fast["config"] = {"channels_last": channels_last, "compile": False}
    default = {"applied": False, "48": {"full": timing(450), "vgg16": timing(150)}}
    tuned = {"applied": True, "48": {"full": timing(300), "vgg16": timing(120)}}
    thresholds = {"mmap_threshold_mb": 256, "trim_threshold_mb": 1024}
    fast["allocator"] = {
        "thresholds": thresholds,
        "glibc_default": default,
        "tuned": tuned,
        **decide.allocator_ratios(default, tuned),
    }
    fast["loader_workers"] = {
        "workers": 2,
        "epochs": 3,
        "not_persistent": {"faces_per_s": 1000.0},
        "persistent": {"faces_per_s": 1840.0},
        **decide.persistent_workers(1000.0, 1840.0),
    }
    inference = {
        "eager": {"ms_per_face_batch1": 4.5, "faces_per_s_batch64": 750.0},
        "eager_channels_last": {"ms_per_face_batch1": 3.75, "faces_per_s_batch64": 980.0},
        "torchscript": {"ms_per_face_batch1": 2.5, "faces_per_s_batch64": 1010.0},
        "onnxruntime": {"ms_per_face_batch1": 1.25, "faces_per_s_batch64": 1200.0}
        if ort
        else {"skipped": "onnx/onnxruntime not installed"},
    }
    baseline = "eager_channels_last" if channels_last else "eager"
    inference = decide.add_export_ratios(inference, baseline)
    eager = inference[baseline]
    int8 = {"skipped": "onnx/onnxruntime not installed"}
    if ort:
        int8 = {
            "ms_per_face_batch1": 1.0,
            "faces_per_s_batch64": 2500.0,
            "eager_ms_per_face_batch1": eager["ms_per_face_batch1"],
            "eager_faces_per_s_batch64": eager["faces_per_s_batch64"],
            "calib_faces": 128,
            "heldout_faces": 896,
            "agreement_vs_fp32": 0.95,
            "quantize_s": 3.0,
            "activations": "uint8",
            "alternative": {
                "activations": "int8",
                "ms_per_face_batch1": 1.25,
                "faces_per_s_batch64": 1960.0,
                "agreement_vs_fp32": 0.94,
                "quantize_s": 3.0,
            },
        }
        int8.update(decide.vs_eager(int8, eager))
        int8["alternative"].update(decide.vs_eager(int8["alternative"], eager))
    return {
        "meta": {
            "date": "2026-12-01 12:00",
            "machine": "Test CPU, Linux",
            "torch": "2.14.1",
            "onnxruntime": "1.32.0" if ort else None,
            "threads": 2,
            "width": 0.25,
            "batch": 64,
            "max_run_time": 10.0,
            "iqr_threshold": 0.1,
            "lbp_faces": 1024,
            "quick": quick,
            "malloc": {**thresholds, "applied": True},
        },
        "lbp": {
            method: {"torch_faces_per_s": 10000.0, "skimage_faces_per_s": 10000.0 / s, "speedup": s}
            for method, s in zip(measure.LBP_METHODS, (12.0, 11.0, 10.0, 14.0, 4.0), strict=True)
        },
        "train_step": {"48": step, "ratio_full_vs_vgg16": {"48": step["full"]["ratio_vs_vgg16"]}},
        "fast_paths": fast,
        "rate": made_up_rate(),
        "data": {**decide.loader_vs_train(6400.0, 64, 320.0), "workers": 0},
        "inference": inference,
        "int8": int8,
        "video": {
            "frames": 150,
            "size": "640x480",
            "frames_per_s": 30.0,
            "frames_with_face": 150,
            "tracks": 1,
        },
        "peak_memory_mb": 2200.0,
    }


def test_markdown_lbp_and_training_step_tables():
    md = render.markdown(made_up_results())
    header, rows = table(md, "## LBP layer vs scikit-image loop (1,024 faces")
    assert header == ["method", "torch faces/s", "skimage faces/s", "speedup", "target >= 5x"]
    assert [r[0] for r in rows] == list(measure.LBP_METHODS)
    assert [(r[3], r[4]) for r in rows] == [
        ("12.0x", "met"),
        ("11.0x", "met"),
        ("10.0x", "met"),
        ("14.0x", "met"),
        ("4.0x", "MISSED"),
    ]
    header, rows = table(md, "## Training step at 48x48, batch 64")
    assert header == [
        "network",
        "ms/step (min-max)",
        "ratio to vgg16",
        "kernel ms/step (page faults)",
        "parameters",
    ]
    assert [r[0] for r in rows] == ["full", "no_lbp", "no_attention", "no_reconstruction", "vgg16"]
    assert rows[0][1:] == ["300 (270-330)", "2.00", "5 (100)", "1,000"]
    assert [r[2] for r in rows] == ["2.00", "1.20", "1.67", "1.73", "1.00"]
    assert "Full vs vgg16: 2.00x (target <= 2.5x: met" in md
    assert "LBP layer = 0.50% of a full step (target < 1%: met)" in md
    assert "Quick mode" not in md and "Quick mode" in render.markdown(made_up_results(quick=True))
    assert (
        "width 0.25, batch 64. Medians of torch.utils.benchmark's timed runs after its warm-up: runs until their "
        "IQR is under 10% of the median (from 4 runs on) or 10 s are spent." in md
    )

    slow = made_up_results()
    slow["train_step"]["48"]["full"]["ratio_vs_vgg16"] = 2.6
    assert "Full vs vgg16: 2.60x (target <= 2.5x: MISSED" in render.markdown(slow)


def test_markdown_fast_path_table_shows_the_decision():
    results = made_up_results()
    md = render.markdown(results)
    header, rows = table(md, "## Fast paths: training step at 48x48, batch 64")
    assert header[-1] == "kept as default?" and len(header) == 7
    assert [r[0] for r in rows] == FAST_PATH_LABELS
    assert all(len(r) == 7 for r in rows)
    by_label = dict(zip(FAST_PATH_LABELS, rows, strict=True))
    assert by_label["eager fp32 (baseline)"][3:] == ["1.00x", "150", "2.00", "(baseline)"]
    assert by_label["channels_last"][3] == "1.20x"
    assert by_label["channels_last"][6] == results["fast_paths"]["defaults"]["channels_last"]["why"]
    assert by_label["channels_last"][6].startswith("yes")
    assert by_label["torch.compile"][6] == "skipped: not timed"
    # configured channels_last: the as-configured ratio is the channels_last row's
    assert "(`model.channels_last=true`, `trainer.precision=32-true`): 2.00x (target <= 2.5x: met)" in md
    assert "Note:" not in md
    off = render.markdown(made_up_results(channels_last=False))
    assert "Note: these numbers say channels_last should be the default" in off

    header, rows = table(md, "## Allocator")
    assert len(header) == 5 and rows == [["48x48", "450 -> 300", "150 -> 120", "1.50x", "3.00 -> 2.50"]]


RATE_HEADING = "## Attainable rate (matmul) and the train step's share of it"


def test_markdown_rate_table_and_target():
    results = made_up_results()
    md = render.markdown(results)
    header, rows = table(md, RATE_HEADING)
    assert header == ["what", "GFLOP", "ms/step", "GFLOP/s", "share of the matmul rate"]
    g1, g2 = decide.matmul_gflop(1024), decide.matmul_gflop(2048)
    assert rows == [
        ["matmul fp32, 1024x1024", f"{g1:.2f}", f"{1000 * g1 / 80:.1f}", "80", "80.0%"],
        ["matmul fp32, 2048x2048 (attainable)", f"{g2:.2f}", f"{1000 * g2 / 100:.1f}", "100", "100.0%"],
        ["matmul bf16, 1024x1024 (attainable)", f"{g1:.2f}", f"{1000 * g1 / 400:.1f}", "400", "100.0%"],
        ["matmul bf16, 2048x2048", f"{g2:.2f}", f"{1000 * g2 / 350:.1f}", "350", "87.5%"],
        ["full, width 0.25, fp32", "20.00", "250.0", "80", "80.0%"],
        ["full, width 0.25, channels_last + bf16", "20.00", "100.0", "200", "50.0%"],
        ["vgg16, width 0.25, channels_last + bf16", "10.00", "40.0", "250", "62.5%"],
        ["full, width 1, bf16 autocast", "320.00", "1,000.0", "320", "80.0%"],
    ]
    assert "fp32 100 GFLOP/s at n=2048, bf16 400 GFLOP/s at n=1024" in md
    missed = (
        "Full model, width 0.25, channels_last + bf16 (the path fer-train runs here), batch 32: 50.0% of the bf16 "
        "matmul rate (target >= 70%: MISSED)."
    )
    assert missed in md.splitlines()
    # the section sits between the allocator table and the data pipeline
    assert md.index("## Allocator") < md.index(RATE_HEADING) < md.index("## Data pipeline")

    results["rate"] = made_up_rate(full_bf16_ms=62.5)
    met = (
        "Full model, width 0.25, channels_last + bf16 (the path fer-train runs here), batch 32: 80.0% of the bf16 "
        "matmul rate (target >= 70%: met)."
    )
    assert met in render.markdown(results).splitlines()
    results["rate"] = made_up_rate(full_bf16_ms=62.5, batch=8)
    assert (
        "Full model, width 0.25, channels_last + bf16 (the path fer-train runs here), batch 8 (the target is at "
        "batch 32): 80.0% of the bf16 matmul rate (target >= 70%: met)." in render.markdown(results)
    )
    results["rate"]["target"] = None
    assert (
        "Full model, width 0.25, channels_last + bf16, batch 32: not measured (target >= 70% of the matmul rate)."
        in render.markdown(results)
    )
    del results["rate"]  # a bench.json from before the section
    assert RATE_HEADING not in render.markdown(results)


def test_int8_order_puts_the_configured_type_or_the_faster_first():
    measured = {"uint8": {"faces_per_s_batch64": 900.0}, "int8": {"faces_per_s_batch64": 1200.0}}
    assert decide.int8_order("auto", measured) == ["int8", "uint8"]
    assert decide.int8_order("uint8", measured) == ["uint8", "int8"]
    measured["uint8"]["faces_per_s_batch64"] = 1500.0
    assert decide.int8_order("auto", measured) == ["uint8", "int8"]


def test_markdown_data_inference_int8_and_video():
    md = render.markdown(made_up_results())
    assert "6,400 faces/s; full-model training: 200 faces/s; ratio 32.0x (target >= 10x: met)" in md
    assert "(1.84x; worth the default whenever `data.num_workers > 0`: yes, needs >= 1.10x)" in md
    header, rows = table(md, "## Inference (full model, 48x48)")
    assert header == [
        "",
        "ms/face, batch 1",
        "faces/s, batch 64",
        "vs eager (channels_last), batch 1",
        "batch 64",
    ]
    assert rows == [
        ["eager (NCHW)", "4.50", "750", "-", "-"],
        ["eager (channels_last)", "3.75", "980", "(baseline)", "(baseline)"],
        ["TorchScript", "2.50", "1,010", f"{3.75 / 2.5:.2f}x", f"{1010 / 980:.2f}x"],
        ["ONNX Runtime", "1.25", "1,200", f"{3.75 / 1.25:.2f}x", f"{1200 / 980:.2f}x"],
    ]
    assert (
        f"Best exported path, ONNX Runtime, vs eager (channels_last) (eager as conf/ configures it): {1200 / 980:.2f}x"
        in md
    )
    assert "(target >= 1.3x: MISSED)" in md
    header, rows = table(md, "## int8 ONNX Runtime vs fp32 eager")
    assert [r[0] for r in rows] == [
        "fp32 eager (channels_last)",
        "int8 ONNX Runtime (static QDQ, uint8 activations)",
        "int8 / fp32",
        "fp32 ONNX Runtime",
        "int8 / fp32 ONNX Runtime",
        "alternative: int8 activations",
        "alternative / fp32",
    ]
    assert rows[2][1:] == [f"{3.75 / 1.0:.2f}x", f"{2500 / 980:.2f}x"]
    # against the same runtime in fp32, the baseline an ONNX user already has
    assert rows[4][1:] == [f"{1.25 / 1.0:.2f}x", f"{2500 / 1200:.2f}x"]
    assert rows[6][1:] == [f"{3.75 / 1.25:.2f}x", f"{1960 / 980:.2f}x"]
    assert (
        f"int8 (uint8 activations, conf/export.yaml) vs fp32 eager at batch 64: {2500 / 980:.2f}x (target >= 2x: met)"
        in md
    )
    assert (
        "30.0 frames/s over 150 frames (target >= 25: met); a face found in 150 of 150 frames, 1 track(s)"
        in md
    )
    assert "training step at 48x48: 2200 MB." in md

    no_ort = render.markdown(made_up_results(ort=False))
    _, rows = table(no_ort, "## Inference (full model, 48x48)")
    assert rows[-1] == ["ONNX Runtime", "-", "-", "-", "skipped: onnx/onnxruntime not installed"]
    assert "Best exported path, TorchScript" in no_ort
    assert "Skipped: onnx/onnxruntime not installed." in no_ort


def test_write_puts_the_json_and_its_markdown(tmp_path):
    results = made_up_results()
    md = render.write(results, tmp_path / "bench")
    assert json.loads((tmp_path / "bench" / "bench.json").read_text()) == results
    assert (tmp_path / "bench" / "bench.md").read_text() == md == render.markdown(results)


def test_every_committed_bench_json_renders_to_its_bench_md():
    """The committed bench folders stay readable: each bench.json, written before or after
    torch.utils.benchmark timed the figures, renders to its bench.md byte for byte."""
    found = sorted((REPO / "experiments" / "results").glob("*/bench.json"))
    assert found
    for path in found:
        markdown = render.markdown(json.loads(path.read_text()))
        assert markdown == (path.parent / "bench.md").read_text(), path.parent.name


def missing_keys(old, new, at: str = "") -> list[str]:
    """Key paths of ``old`` (a committed bench.json) that ``new`` lacks, descending where both hold dicts
    (lists: their first item); sizes, fast paths and compile figures a quick run does not time are not
    missing."""
    if isinstance(old, list) and isinstance(new, list) and old and new:
        return missing_keys(old[0], new[0], f"{at}[0]")
    if not isinstance(old, dict) or not isinstance(new, dict) or "skipped" in new:
        return []
    if new.get("why") == "not measured":
        return []
    out = []
    for key, value in old.items():
        if key in new:
            out += missing_keys(value, new[key], f"{at}.{key}")
        elif not key.isdigit() and key not in measure.FAST_PATHS:
            out.append(f"{at}.{key}")
    return out


# --- one quick run end to end ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[dict, str]:
    """`python -m experiments.bench --quick` once for the tests below (toy sizes: width 0.125, batch 8,
    48x48, 1 repeat); its JSON and Markdown."""
    tmp = tmp_path_factory.mktemp("bench")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-m", "experiments.bench", "--quick", "--out", str(tmp / "out")],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a safety net: the quick mode takes about a minute on 2 free cores
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp / "out" / "bench.json").read_text()), (tmp / "out" / "bench.md").read_text()


def test_quick_run_times_every_conf_option_and_renders_its_own_numbers(quick):
    results, md = quick
    assert results["meta"]["quick"] is True and results["meta"]["malloc"]["applied"] is True
    assert list(results["lbp"]) == list(measure.LBP_METHODS)
    assert list(results["train_step"]) == ["48", "ratio_full_vs_vgg16"]
    assert list(results["train_step"]["48"]) == [*config.ablations(), "lbp_share_of_full_step"]
    _, rows = table(md, "## Training step at 48x48, batch 8")
    assert [r[0] for r in rows] == list(config.ablations())
    _, rows = table(md, "## Fast paths: training step at 48x48, batch 8")
    assert [r[0] for r in rows] == FAST_PATH_LABELS
    assert "skipped" in results["fast_paths"]["train_step"]["48"]["compile"]  # no torch.compile in quick mode
    assert md == render.markdown(results)  # bench.md is the rendering of bench.json
    # the decisions in the file are the rules applied to the file's numbers
    fast = results["fast_paths"]
    assert fast["defaults"] == decide.fast_path_defaults(fast["train_step"])
    assert fast["defaults"]["bf16"]["default"] is False  # never by speed alone
    assert fast["config"] == config.configured_defaults()
    assert (
        fast["allocator"]["tuned"]["applied"] is True
        and fast["allocator"]["glibc_default"]["applied"] is False
    )
    assert fast["allocator"]["thresholds"] == config.configured_malloc()
    assert (fast["loader_workers"]["workers"], fast["loader_workers"]["epochs"]) == (2, 3)
    video = results["video"]
    assert (video["size"], video["frames"]) == ("640x480", 10)
    # bench.json keeps its keys: every one of a committed file's, but meta.repeats (now max_run_time and
    # iqr_threshold); the timings add iqr (ms_iqr) and calls_per_repeat
    for path in sorted((REPO / "experiments" / "results").glob("*/bench.json")):
        assert missing_keys(json.loads(path.read_text()), results) == [".meta.repeats"], path.parent.name
    assert results["meta"]["max_run_time"] == 1e-3 and results["meta"]["iqr_threshold"] == 0.1
    assert set(results["lbp"]["default"]["torch_s"]) == {
        *("median", "iqr", "min", "max", "repeats", "calls_per_repeat", "kernel_s", "page_faults")
    }
    assert set(results["train_step"]["48"]["full"]) == {*measure.MS_KEYS, "params", "ratio_vs_vgg16"}
    assert video["frames_with_face"] >= 8 and video["tracks"] >= 1  # the generated clip shows one face


def test_quick_run_ratios_are_quotients_of_its_timings(quick):
    results, _ = quick
    row = results["train_step"]["48"]
    for name, r in row.items():
        if name != "lbp_share_of_full_step":
            assert r["ratio_vs_vgg16"] == pytest.approx(r["ms_per_step"] / row["vgg16"]["ms_per_step"])
            assert r["ms_min"] <= r["ms_per_step"] <= r["ms_max"]
    assert results["train_step"]["ratio_full_vs_vgg16"]["48"] == row["full"]["ratio_vs_vgg16"]
    fast = results["fast_paths"]["train_step"]["48"]
    fp32 = fast["fp32"]["full"]["ms_per_step"]
    assert fp32 == row["full"]["ms_per_step"]  # the baseline is the training-step section's full step
    for name in ("fp32", "channels_last", "bf16", "channels_last_bf16"):
        full, vgg = fast[name]["full"]["ms_per_step"], fast[name]["vgg16"]["ms_per_step"]
        assert fast[name]["speedup"] == pytest.approx(fp32 / full)
        assert fast[name]["ratio_full_vs_vgg16"] == pytest.approx(full / vgg)
    alloc = results["fast_paths"]["allocator"]
    assert alloc["48"] == pytest.approx(decide.allocator_ratios(alloc["glibc_default"], alloc["tuned"])["48"])
    w = results["fast_paths"]["loader_workers"]
    assert w["speedup_persistent"] == pytest.approx(
        w["persistent"]["faces_per_s"] / w["not_persistent"]["faces_per_s"]
    )
    d = results["data"]
    assert d["train_faces_per_s"] == pytest.approx(
        results["meta"]["batch"] / (row["full"]["ms_per_step"] / 1000)
    )
    assert d["ratio_loader_vs_train"] == pytest.approx(d["loader_faces_per_s"] / d["train_faces_per_s"])
    i = results["inference"]
    eager = i[i["eager_baseline"]]
    for name in (n for n in decide.EXPORTS if "faces_per_s_batch64" in i[n]):
        assert i[name]["ratio_vs_eager"] == pytest.approx(
            i[name]["faces_per_s_batch64"] / eager["faces_per_s_batch64"]
        )
        assert i[name]["ratio_vs_eager_batch1"] == pytest.approx(
            eager["ms_per_face_batch1"] / i[name]["ms_per_face_batch1"]
        )
    assert i["ratio_export_vs_eager"] == max(i[n].get("ratio_vs_eager", 0) for n in decide.EXPORTS)
    assert i["ratio_export_vs_eager"] == i[i["best_export"]]["ratio_vs_eager"]


def test_quick_run_rate_rows_are_shares_of_its_matmul_rate(quick):
    results, md = quick
    rate = results["rate"]
    assert {dtype: list(by_size) for dtype, by_size in rate["matmul"].items()} == {
        "fp32": ["512", "1024"],
        "bf16": ["512", "1024"],
    }
    assert rate["attainable"] == decide.attainable_rate(rate["matmul"])
    assert (rate["size"], rate["batch"]) == (48, 8)
    steps = rate["steps"]
    assert [(s["model"], s["width"], s["path"]) for s in steps] == [
        (model, 0.25, path) for model in ("full", "vgg16") for path in measure.FAST_PATHS
    ]
    for s in steps:
        assert s["gflop"] > 0
        assert s["gflop_per_s"] == pytest.approx(s["gflop"] / (s["ms_per_step"] / 1000))
        # bf16 against the bf16 rate only where this CPU computes bf16 natively, else against fp32
        assert s["reference"] == ("bf16" if s["dtype"] == "bf16" and cpu_has_bf16() else "fp32")
        assert s["share_of_matmul"] == pytest.approx(
            s["gflop_per_s"] / rate["attainable"][s["reference"]]["gflop_per_s"]
        )
        # the FLOP count depends on the shapes, not on the memory format or the autocast dtype
        assert s["gflop"] == pytest.approx(next(r["gflop"] for r in steps if r["model"] == s["model"]))
    assert rate["target"] == decide.rate_target(steps, 8, decide.rate_target_path(rate["native"]))
    assert rate["target"]["at_target_batch"] is False
    assert rate["target"]["path"] == ("channels_last_bf16" if cpu_has_bf16() else "channels_last")
    _, rows = table(md, RATE_HEADING)
    assert len(rows) == 4 + len(steps)


def test_quick_run_inference_is_eager_as_configured_and_matches_it(quick):
    results, _ = quick
    i = results["inference"]
    channels_last = results["fast_paths"]["config"]["channels_last"]
    assert i["eager_baseline"] == ("eager_channels_last" if channels_last else "eager")
    for name in ("eager_channels_last", "torchscript", "onnxruntime"):
        if "max_abs_diff_vs_eager" in i[name]:
            assert i[name]["max_abs_diff_vs_eager"] <= 1e-4, name


def test_quick_run_has_batch64_rows_for_eager_onnx_and_int8(quick):
    results, md = quick
    i, q = results["inference"], results["int8"]
    for name in ("eager", "eager_channels_last", "torchscript", "onnxruntime"):
        assert "faces_per_s_batch64" in i[name], name
    assert "faces_per_s_batch64" in q and 0 <= q["agreement_vs_fp32"] <= 1
    assert q["eager_faces_per_s_batch64"] == i[i["eager_baseline"]]["faces_per_s_batch64"]
    assert q["ratio_vs_eager"] == pytest.approx(q["faces_per_s_batch64"] / q["eager_faces_per_s_batch64"])
    _, rows = table(md, "## Inference (full model, 48x48)")
    assert [r[0] for r in rows] == ["eager (NCHW)", "eager (channels_last)", "TorchScript", "ONNX Runtime"]
    assert all(r[2] != "-" for r in rows)  # a batch-64 figure on every row
    _, rows = table(md, "## int8 ONNX Runtime vs fp32 eager")
    # fp32 eager, int8, int8 / fp32, fp32 ONNX Runtime, int8 / fp32 ONNX Runtime, alternative, its ratio
    assert len(rows) == 7 and all(r[2] != "-" for r in rows)
    # the headline row is quantised as conf/export.yaml says (auto: the faster), the other type beside it
    assert q["configured"] == config.configured_int8()["activations"] == "auto"
    assert {q["activations"], q["alternative"]["activations"]} == {"uint8", "int8"}
    assert q["faces_per_s_batch64"] >= q["alternative"]["faces_per_s_batch64"]
    assert "activations=auto: the faster here" in md


def test_profile_sorts_operators_into_kinds_and_writes_its_tables(tmp_path):
    from experiments.bench import profile

    assert profile.kind_of("aten::convolution_backward") == "convolution"
    assert profile.kind_of("aten::native_batch_norm") == "batch norm"
    assert profile.kind_of("aten::_to_copy") == "layout and dtype copies"
    assert profile.kind_of("aten::_fused_adamw_") == "optimiser"
    assert profile.kind_of("aten::empty_strided") == "allocation and views"
    result = profile.main(
        ["--out", str(tmp_path), "--ablations", "full,vgg16", "--width", "0.0625", "--batch", "4"]
        + ["--steps", "1", "--precision", "fp32", "--top", "5"]
    )
    full, vgg16 = result["networks"]
    for net in (full, vgg16):
        assert sum(op["share"] for op in net["ops"]) == pytest.approx(1.0)
        assert sum(net["kinds"].values()) == pytest.approx(net["profiled_ms_per_step"])
        assert "convolution" in net["kinds"] and net["wall_ms_per_step"] > 0
    # the LBP layer is timed through its own scope, and only the full model has one
    assert full["lbp_layer_ms_per_step"] > 0 and vgg16["lbp_layer_ms_per_step"] == 0
    md = (tmp_path / "profile.md").read_text()
    assert json.loads((tmp_path / "profile.json").read_text())["networks"][0]["ablation"] == "full"
    assert "## full:" in md and "## vgg16:" in md and "| kind of work | ms per step | share |" in md
    assert md.count("\n| `") == 10


def test_optimizer_probe_times_each_adamw_variant_against_the_loop_and_checks_they_train_alike(tmp_path):
    from experiments.bench import optimizer_probe

    argv = [
        "--out",
        str(tmp_path),
        "--width",
        "0.125",
        "--batch",
        "4",
        "--rounds",
        "2",
        "--max-run-time",
        "1e-3",
    ]
    optimizer_probe.main([*argv, "--check-steps", "3", "--threads", "1"])
    result = json.loads((tmp_path / "results.json").read_text())
    rows = result["variants"]
    assert list(rows) == ["loop (default)", "foreach", "fused"]
    base = rows["loop (default)"]["ms_per_step"]
    for row in rows.values():
        assert len(row["ms_per_round"]) == 2 and len(row["losses"]) == 3
        assert row["ms_per_step"] == pytest.approx(statistics.median(row["ms_per_round"]))
        assert row["speedup_vs_loop"] == pytest.approx(base / row["ms_per_step"])
        # the same weights and batch: the first loss is identical, the rest agree to bf16 rounding
        assert row["losses"][0] == rows["loop (default)"]["losses"][0]
        assert row["max_loss_diff_vs_loop"] < 0.05
    head, body = table((tmp_path / "README.md").read_text(), "### AdamW variants")
    assert [r[0] for r in body] == list(rows)
    assert body[2][1] == "`+model.optimizer.fused=true`"
    assert body[2][3] == f"{rows['fused']['speedup_vs_loop']:.3f}x"


def test_a_cpu_that_emulates_bf16_skips_its_bf16_paths_unless_asked(monkeypatch):
    """`make bench` on an AVX2-only CPU: the bf16 fast paths and the bf16 matmul are not timed (they would
    measure a 1 GFLOP/s emulation for over an hour), and bench.md says so; --emulated times them."""
    monkeypatch.setattr(measure, "native_dtypes", lambda: ["fp32"])
    assert list(measure.timed_paths()) == ["fp32", "channels_last"]
    assert list(measure.timed_paths(emulated=True)) == list(measure.FAST_PATHS)
    assert measure.skipped_emulated() == ["bf16", "channels_last_bf16", "bf16 matmul"]
    assert measure.skipped_emulated(emulated=True) == []
    assert list(measure.bench_matmul([64], 1e-3)) == ["fp32"]
    assert list(measure.bench_matmul([64], 1e-3, emulated=True)) == ["fp32", "bf16"]
    results = made_up_results()
    results["meta"]["skipped_emulated"] = measure.skipped_emulated()
    assert "Not timed: bf16, channels_last_bf16, bf16 matmul. This CPU only emulates bf16" in render.markdown(
        results
    )
    monkeypatch.setattr(measure, "native_dtypes", lambda: ["fp32", "bf16"])
    assert list(measure.timed_paths()) == list(measure.FAST_PATHS) and measure.skipped_emulated() == []
