"""Fast paths: channels_last, bf16 autocast, torch.compile; each gives the default path's results."""

from __future__ import annotations

import functools
from pathlib import Path

import lightning
import pytest
import torch

from fer_attention.config import net_config
from fer_attention.data.synthetic import render_synthetic_faces
from fer_attention.lbp import METHODS, LBPLayer
from fer_attention.models import FERAttentionNet
from fer_attention.training.module import FERModule

OPTIMIZER = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3}
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@functools.cache
def _net_config() -> dict:
    return net_config(["model.net.backbone.width=0.125"])


def net_cfg(**changes) -> dict:
    """fer-train's model.net (7 classes, 48x48, circular LBP, every module) at 1/8 width, with changes."""
    return {**_net_config(), **changes}


def module(**kw) -> FERModule:
    torch.manual_seed(0)
    return FERModule(net=net_cfg(), optimizer=OPTIMIZER, class_names=CLASSES, **kw)


def faces(n: int = 4, size: int = 48) -> torch.Tensor:
    """Real (synthetic) faces on the 1/255 grid: many equal neighbours, where LBP ties are decided."""
    images = render_synthetic_faces(num_subjects=2, frames_per_sequence=2, image_size=size).images[:n]
    return torch.from_numpy(images).float().div(255).unsqueeze(1)


MALLINFO = """
import ctypes, sys
from fer_attention.runtime import tune_malloc
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
if sys.argv[1] == "tuned":
    assert tune_malloc(256, 1024) is True
before = libc.mallinfo2().hblks
block = libc.malloc(64 << 20)
print(libc.mallinfo2().hblks - before)
"""


def _mmapped_blocks_for_64mb(tuned: bool) -> int:
    """In a fresh process: how many mmapped chunks one 64 MB malloc adds (glibc's mallinfo2)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", MALLINFO, "tuned" if tuned else "default"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def test_channels_last_equals_contiguous():
    torch.manual_seed(0)
    net = FERAttentionNet.from_config(net_cfg()).eval()
    x = torch.cat([faces(4), torch.rand(4, 1, 48, 48)])
    with torch.no_grad():
        ref, ref_mask = net(x, return_mask=True)
        cl = net.to(memory_format=torch.channels_last)
        assert cl.image_stream.features[3].weight.is_contiguous(memory_format=torch.channels_last)
        got, mask = cl(x.contiguous(memory_format=torch.channels_last), return_mask=True)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(mask, ref_mask, atol=1e-5, rtol=0)


def test_module_channels_last_switch():
    plain, cl = module(), module(channels_last=True)
    weight = cl.net.image_stream.features[3].weight  # the second conv: 8 input channels, so NHWC != NCHW
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert list(cl.state_dict()) == list(plain.state_dict())
    cl.load_state_dict(plain.state_dict())  # copies values, keeps the NHWC layout
    assert cl.net.image_stream.features[3].weight.is_contiguous(memory_format=torch.channels_last)
    x, y = faces(4), torch.tensor([0, 1, 2, 3])
    plain.eval(), cl.eval()
    with torch.no_grad():
        torch.testing.assert_close(cl(x), plain(x), atol=1e-5, rtol=0)
        # the training step converts the batch as well (3-channel input would need it)
        assert cl._to_memory_format(torch.rand(2, 3, 8, 8)).is_contiguous(memory_format=torch.channels_last)
        assert torch.isfinite(cl._step((x, y), "val"))


@pytest.mark.parametrize("method", METHODS)
def test_lbp_codes_under_bf16_autocast_equal_fp32(method):
    x = torch.cat([faces(4), torch.rand(4, 1, 48, 48)])
    layer = LBPLayer(method, 8, 1.0)
    ref = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer(x)
    assert got.dtype == torch.float32
    assert torch.equal(got.nan_to_num(-1), ref.nan_to_num(-1))


def test_lbp_map_inside_network_under_bf16_autocast():
    """The LBP stream of the network sees exact fp32 codes under trainer.precision=bf16-mixed."""
    net = FERAttentionNet.from_config(net_cfg(lbp={"method": "uniform", "P": 8, "R": 1.0})).train()
    seen = []
    net.lbp.register_forward_hook(lambda mod, args, out: seen.append(out))
    x = faces(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(x)
    assert logits.dtype == torch.bfloat16  # the convolutions did run in bf16
    assert seen[0].dtype == torch.float32
    assert torch.equal(seen[0], LBPLayer("uniform", 8, 1.0)(x))


def test_lbp_layer_runs_outside_the_compiled_graphs():
    """Under torch.compile the LBP layer runs eagerly between two graphs (its float64 fractions stay numpy's):
    the graphs hold the convolutions around it and none of its ops, and the output is the eager one."""
    graphs: list[list[str]] = []

    def backend(gm, example_inputs):
        graphs.append(
            [getattr(n.target, "__name__", str(n.target)) for n in gm.graph.nodes if n.op == "call_function"]
        )
        return gm.forward

    class ConvLBPConv(torch.nn.Module):  # Dynamo skips a bare nn.Sequential of torch's own modules
        def __init__(self) -> None:
            super().__init__()
            self.a, self.lbp, self.b = (
                torch.nn.Conv2d(1, 1, 3, padding=1),
                LBPLayer(),
                torch.nn.Conv2d(1, 2, 3),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.lbp(self.a(x)))

    net = ConvLBPConv()
    x = torch.rand(4, 1, 24, 24)
    torch._dynamo.reset()
    out = torch.compile(net, backend=backend)(x)
    torch._dynamo.reset()
    assert graphs == [["conv2d"], ["conv2d"]]
    torch.testing.assert_close(out, net(x), atol=0, rtol=0)


def test_compiled_module_keeps_state_dict_keys(tmp_path: Path):
    """model.compile=true compiles in place: the checkpoint's keys are the uncompiled network's, so the
    checkpoint loads into a module without compile (and into load_model)."""
    compiled, plain = module(compile=True), module()
    assert type(compiled.net) is FERAttentionNet
    assert list(compiled.state_dict()) == list(plain.state_dict())
    with torch.no_grad():
        for p in compiled.net.parameters():
            p.add_(0.01)  # weights that differ from a fresh module's
    path = tmp_path / "compiled.ckpt"
    torch.save(
        {
            "state_dict": compiled.state_dict(),
            "hyper_parameters": dict(compiled.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    loaded = FERModule.load_from_checkpoint(path, map_location="cpu", weights_only=True, compile=False)
    assert getattr(loaded.net, "_compiled_call_impl", None) is None
    for key, value in compiled.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_compile_without_a_cpp_compiler_trains_eager_and_says_so(monkeypatch, caplog):
    """Inductor needs a C++ compiler for CPU kernels; without one model.compile=true is one warning line
    and the network stays eager (the run goes on)."""
    from fer_attention.training import module as module_mod

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(module_mod.shutil, "which", lambda name: None)
    assert module_mod.cpp_compiler() is None
    with caplog.at_level("WARNING", logger="fer_attention.training.module"):
        m = module(compile=True)
    assert getattr(m.net, "_compiled_call_impl", None) is None
    assert [r.getMessage() for r in caplog.records] == [
        "model.compile=true: no C++ compiler for Inductor (set CXX, or install g++ or clang++); training eager "
        "instead"
    ]
    monkeypatch.setenv("CXX", "my-c++")
    monkeypatch.setattr(
        module_mod.shutil, "which", lambda name: f"/opt/bin/{name}" if name == "my-c++" else None
    )
    assert module_mod.cpp_compiler() == "/opt/bin/my-c++"


def test_compiled_training_equals_eager_and_short_batches_reuse_the_graphs(tmp_path: Path, monkeypatch):
    """model.compile=true trains the eager model's steps: same losses over three SGD steps and a short last
    batch, same validation logits (dropout off: Inductor draws its own masks); the batch dimension is compiled as a symbol, so the short batch and
    validation's other batch size compile nothing again; the graphs land in model.compile_cache_dir.
    30-60 s on 2 cores with an empty cache."""
    from fer_attention.training.module import mark_batch_dynamic

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "unused"))  # restored after the test
    cache = tmp_path / "inductor"
    torch._dynamo.reset()
    net = net_cfg(image_size=32)
    net["classifier"] = {**net["classifier"], "dropout": 0.0}  # Inductor draws its own dropout masks
    models = {}
    for name, kw in (("eager", {}), ("compiled", {"compile": True, "compile_cache_dir": str(cache)})):
        torch.manual_seed(0)
        models[name] = FERModule(net=net, optimizer=OPTIMIZER, class_names=CLASSES, channels_last=True, **kw)
    assert models["compiled"].net._compiled_call_impl is not None
    torch.manual_seed(1)
    batches = [(torch.rand(n, 1, 32, 32), torch.randint(0, 7, (n,))) for n in (4, 4, 4, 3)]
    losses: dict[str, list[float]] = {}
    graphs = []
    for name, m in models.items():
        opt = torch.optim.SGD(m.parameters(), lr=0.01)
        m.train()
        losses[name] = []
        for x, y in batches:
            opt.zero_grad()
            loss = m.criterion(m(x), y)
            loss.backward()
            opt.step()
            losses[name].append(loss.item())
            if name == "compiled":
                graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    # the first step from the same weights agrees to fp32 rounding; later ones drift as training amplifies
    # rounding (an eager run on 1 thread against 2 drifts as much), so they agree to 0.1%, well inside
    # bf16's rounding (0.4%), 20x the drift measured
    assert abs(losses["compiled"][0] - losses["eager"][0]) < 1e-5
    torch.testing.assert_close(losses["compiled"], losses["eager"], atol=0, rtol=1e-3)
    assert len(set(losses["eager"])) == 4  # the steps did train: every loss differs
    assert graphs[0] > 0 and graphs[1:] == [graphs[0]] * 3  # the short batch compiled nothing again
    with torch.no_grad():
        for m in models.values():
            m.eval()
        x = batches[0][0]
        torch.testing.assert_close(models["compiled"](x), models["eager"](x), atol=1e-4, rtol=0)
        compiled_for_eval = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        x = torch.rand(5, 1, 32, 32)
        torch.testing.assert_close(models["compiled"](x), models["eager"](x), atol=1e-4, rtol=0)
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == compiled_for_eval
    assert mark_batch_dynamic(torch.rand(1, 1, 32, 32)).shape[0] == 1  # a batch of 1 stays static
    assert any(cache.rglob("*")), "nothing written to model.compile_cache_dir"
    torch._dynamo.reset()


def test_malloc_thresholds_apply_and_bad_values_are_one_line(make_cfg):
    import pytest as _pytest

    from fer_attention.config import validate_config
    from fer_attention.errors import ConfigError
    from fer_attention.runtime import tune_malloc

    assert tune_malloc(None, None) is False
    # the thresholds take effect: after tune_malloc(256, ...) a 64 MB block comes from the heap, not from
    # a fresh mmap (which the kernel zeroes and unmaps again on free); glibc's default mmaps it
    assert _mmapped_blocks_for_64mb(tuned=True) == 0
    assert _mmapped_blocks_for_64mb(tuned=False) == 1
    with _pytest.raises(
        ValueError, match=r"mmap_threshold_mb=0 must be an integer in 1..4096 \(MB\) or null"
    ):
        tune_malloc(0, None)
    cfg = make_cfg(["malloc.trim_threshold_mb=-5"])
    with _pytest.raises(
        ConfigError, match=r"malloc.trim_threshold_mb=-5 must be an integer in 1..4096 \(MB\) or null"
    ):
        validate_config(cfg)


def test_cpu_isa_names_the_extensions_that_decide_the_fast_paths():
    from fer_attention.runtime import cpu_description, cpu_isa

    zen3 = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n"
    sapphire = (
        "model name\t: Intel(R) Xeon(R) Platinum 8481C\n"
        "flags\t\t: avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile\n"
    )
    assert cpu_isa(zen3) == ["AVX2"]
    assert cpu_isa(sapphire) == ["AMX", "AVX-512 BF16", "AVX-512 VNNI", "AVX-512", "AVX2"]
    assert cpu_isa("no flags here") == []
    assert cpu_description(zen3) == "AMD EPYC 7B13 (AVX2)"
    # "avx512f" must not be read as a prefix match of "avx512fp16" or similar
    assert cpu_isa("flags : avx512fp16") == []
