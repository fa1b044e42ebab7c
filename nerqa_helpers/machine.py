"""What the CPU a run measured its seconds on was: its model, its widest vector instructions and
its speed at the time.

Two machines sold as "2 cores" can differ by a factor of two (AVX-512 against AVX2 alone), so a
study whose runs were made on several machines compares seconds only within one machine; the
records carry :func:`cpu_facts` so the report can tell them apart.
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

VECTOR_FLAGS = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
"""``/proc/cpuinfo`` flags, widest first, and how the report names them."""


def cpu_description(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """``"<model name>, <widest vector flag>"`` read from ``cpuinfo`` (e.g. "AMD EPYC, AVX2"); the
    processor's platform name where there is no such file (macOS, Windows)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine() or "unknown CPU"
    lines = text.splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())
    flags = {flag for line in lines if line.startswith("flags") for flag in line.split()}
    widest = next((name for flag, name in VECTOR_FLAGS if flag in flags), None)
    return f"{model}, {widest}" if widest else model


def cpu_speed(size: int = 1024, repeats: int = 20) -> float:
    """GFLOP/s of a float32 ``size x size`` matrix product on this process's torch threads, now."""
    import torch

    matrix = torch.randn(size, size)
    matrix @ matrix  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        matrix @ matrix
    return repeats * 2 * size ** 3 / (time.perf_counter() - started) / 1e9


def cpu_facts() -> dict:
    """``{"cpu": description, "cpu_gflops": speed}`` for a run record (about half a second)."""
    return {"cpu": cpu_description(), "cpu_gflops": round(cpu_speed(), 1)}
