"""Which floating-point precision a device trains and evaluates in: one policy, one function.

    CUDA, compute capability >= 8.0 (A100, L4, H100, RTX 30xx and later) -> "bf16": autocast to bfloat16
    CUDA 7.x (T4, V100)                                                    -> "fp16": autocast to float16,
                                                                              with loss scaling in training
    a CPU with bfloat16 instructions (AVX512-BF16 or AMX: AMD Zen 4 and later,
    Intel Xeon from Cooper/Sapphire Rapids)                                -> "bf16": autocast to bfloat16
    older GPUs, other CPUs, Apple MPS                                      -> "no": float32

``torch.cuda.is_bf16_supported()`` is True on a T4 (Colab's free GPU) because bfloat16 is emulated
there, slowly; the compute capability is what says whether the tensor cores run it. On a CPU the
same holds: PyTorch accepts bfloat16 on any AVX-512 CPU, but only the instructions above compute
in it natively, which is what makes it faster than float32 (`make run` on 2 cores with
AVX512-BF16: 446 s of training against 704 s). The environment variable ``NERQA_CPU_BF16``
("1" or "0") replaces the CPU check, e.g. to compare the two or to keep runs on different
machines alike. The training loop (``training.make_accelerator``), evaluation
and the benchmark all ask :func:`precision_for`.
"""
from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import torch

PRECISIONS = ("bf16", "fp16", "no")
"""The names ``accelerate.Accelerator(mixed_precision=...)`` takes."""

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""``/proc/cpuinfo`` flags of the instructions that run bfloat16 matrix products natively."""


def cpu_has_native_bf16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """True when ``NERQA_CPU_BF16`` is "1", or, unset, when this x86 CPU lists a flag of
    :data:`CPU_BF16_FLAGS` (read from ``cpuinfo``; False where there is no such file: macOS, Windows)."""
    setting = os.environ.get("NERQA_CPU_BF16", "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    if setting:
        raise ValueError(f"NERQA_CPU_BF16 must be '0' or '1', got {setting!r}")
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def precision_for(device: str | torch.device | None = None, override: str | None = None) -> str:
    """"bf16", "fp16" or "no" for ``device`` (None: the GPU when there is one, else the CPU).

    ``override`` (e.g. ``TrainingConfig.mixed_precision``): ``None`` or ``"auto"`` applies the policy
    in the module docstring; one of :data:`PRECISIONS` is returned as it is.
    """
    if override not in (None, "auto"):
        if override not in PRECISIONS:
            raise ValueError(f"mixed precision must be 'auto' or one of {PRECISIONS}, got {override!r}")
        return override
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "no"
    if device.type != "cuda" or not torch.cuda.is_available():
        return "no"
    major, _minor = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16" if major == 7 else "no"


def autocast_for(device: str | torch.device, override: str | None = None):
    """A ``torch.autocast`` context in the precision :func:`precision_for` picks (a no-op context for "no").

    For forward passes without gradients (evaluation, inference); training autocasts through
    ``accelerate``, which adds the loss scaling fp16 needs.
    """
    device = torch.device(device)
    precision = precision_for(device, override)
    if precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])
