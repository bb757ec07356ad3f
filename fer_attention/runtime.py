"""Process-level tuning applied before training: the C allocator's thresholds (glibc only) and the
precision this machine can run."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MAX_MB = 4096


@dataclass
class MallocOptions:
    """``malloc`` (conf/runtime/default.yaml): glibc malloc's mmap and trim thresholds, each ``None`` (glibc's
    default) or an integer number of MB in 1..4096. The schema of the config keys, and the rule each value
    obeys on every path (:func:`tune_malloc`, :func:`fer_attention.config.validate_config`): ValueError with
    one line naming the key."""

    mmap_threshold_mb: int | None = None
    trim_threshold_mb: int | None = None

    def __post_init__(self) -> None:
        for name in ("mmap_threshold_mb", "trim_threshold_mb"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or not 0 < value <= _MAX_MB):
                raise ValueError(f"malloc.{name}={value!r} must be an integer in 1..{_MAX_MB} (MB) or null")


@dataclass
class RuntimeOptions:
    """conf/runtime/default.yaml (top-level keys): torch's intra-op ``threads`` (``None``: one per core; else
    a positive integer) and the ``malloc`` thresholds. The schema of those keys and their rules, as
    :class:`MallocOptions`."""

    threads: int | None = None
    malloc: MallocOptions = field(default_factory=MallocOptions)

    def __post_init__(self) -> None:
        threads = self.threads
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads={self.threads!r} must be a positive integer or null")
        if isinstance(self.malloc, Mapping):
            self.malloc = MallocOptions(**self.malloc)


def tune_malloc(mmap_threshold_mb: int | None, trim_threshold_mb: int | None) -> bool:
    """Raise glibc malloc's mmap and trim thresholds, so that large activation buffers freed after one
    training step are reused by the next instead of being unmapped and page-faulted back in (zeroed by
    the kernel) every step. ``None`` leaves a threshold at glibc's default (which adapts up to 32 MiB).
    Returns whether anything was set; a no-op (False) off glibc. Bad values: see :class:`MallocOptions`."""
    MallocOptions(mmap_threshold_mb, trim_threshold_mb)
    if mmap_threshold_mb is None and trim_threshold_mb is None:
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    ok = True
    if mmap_threshold_mb is not None:
        ok &= libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold_mb << 20) == 1
    if trim_threshold_mb is not None:
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold_mb << 20) == 1
    if not ok:
        log.warning("mallopt refused malloc thresholds %s / %s MB", mmap_threshold_mb, trim_threshold_mb)
    return bool(ok)


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads to ``threads`` (``None``: leave torch's choice, one per core).
    A sweep running n jobs side by side gives each ``cores // n`` threads (``make ablation-* JOBS=n``).
    More threads than cores is clamped to the cores, with one log line. Returns the threads in use.
    Bad values: see :class:`RuntimeOptions`."""
    import os

    import torch

    RuntimeOptions(threads=threads)
    if threads is None:
        return torch.get_num_threads()
    cores = os.cpu_count() or 1
    if threads > cores:
        log.warning("threads=%d is more than this machine's %d cores: using %d", threads, cores, cores)
        threads = cores
    torch.set_num_threads(threads)
    return threads


def configure_process(threads: int | None, malloc: Mapping[str, Any] | None) -> int:
    """Apply conf/runtime's settings at the start of a training process: the malloc thresholds
    (:func:`tune_malloc`, ``malloc``'s keys) and the intra-op threads (:func:`set_threads`). Returns the
    threads in use."""
    tune_malloc(**(malloc or {}))
    return set_threads(threads)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX). Without it, oneDNN emulates
    bf16 and autocast runs slower than fp32."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


# instruction-set extensions that decide the fast paths on x86 (the /proc/cpuinfo flag, the name said)
ISA_FLAGS = (
    ("amx_bf16", "AMX"),
    ("avx512_bf16", "AVX-512 BF16"),
    ("avx512_vnni", "AVX-512 VNNI"),
    ("avx_vnni", "AVX-VNNI"),
    ("avx512f", "AVX-512"),
    ("avx2", "AVX2"),
)


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpuinfo_field(cpuinfo: str, key: str) -> str | None:
    return next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith(key)), None
    )


def cpu_isa(cpuinfo: str | None = None) -> list[str]:
    """The extensions of ISA_FLAGS this CPU has (from /proc/cpuinfo, or the text ``cpuinfo``); empty off
    Linux. Machine lines in benchmarks print them, since a model name such as "AMD EPYC" does not say."""
    flags = (_cpuinfo_field(_cpuinfo() if cpuinfo is None else cpuinfo, "flags") or "").split()
    return [name for flag, name in ISA_FLAGS if flag in flags]


def cpu_description(cpuinfo: str | None = None) -> str:
    """The CPU's model name and its extensions of ISA_FLAGS, e.g. "AMD EPYC (AVX2)"."""
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    name = _cpuinfo_field(cpuinfo, "model name") or platform.processor() or platform.machine()
    isa = cpu_isa(cpuinfo)
    return f"{name} ({', '.join(isa)})" if isa else name


def resolve_precision(precision: str, accelerator: str) -> str:
    """The precision a run uses: ``precision`` as asked, except bf16 on a CPU that lacks native bf16,
    which falls back to ``32-true`` with one log line."""
    import torch

    precision = str(precision)
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if precision.startswith("bf16") and on_cpu and not cpu_has_bf16():
        log.warning(
            "trainer.precision=%s: this CPU has no native bf16 (AVX-512 BF16 / AMX); running in 32-true",
            precision,
        )
        return "32-true"
    return precision
