"""Choosing where and in which precision the network runs."""

from __future__ import annotations

import contextlib
import functools
import logging
import os

import torch

from .errors import InputError

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU. Asking for CUDA on a machine without it is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but no CUDA GPU is visible; use --device cpu or auto.")
    if device.type == "cpu":
        configure_cpu_threads()
    return device


@functools.cache
def configure_cpu_threads() -> int:
    """Intra-op threads = the cores this process may use (honouring affinity masks and OMP_NUM_THREADS)."""
    if "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    torch.set_num_threads(max(1, n))
    return n


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 dot products (AVX512-BF16 or AMX), where bf16 is much faster than
    fp32 (BENCHMARKS.md)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bf16 where the hardware runs it fast, else fp32."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}: expected auto, fp32 or bf16")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed precision for ``dtype`` other than fp32; a no-op context otherwise."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def shape_varying(device: torch.device) -> contextlib.AbstractContextManager:
    """For training whose every step has a new input shape (random crops and zooms): on CUDA, cuDNN off.

    cuDNN builds an execution plan for each new shape, which costs far more than the step itself
    (BENCHMARKS.md, "Fine-tuning on a GPU"); PyTorch's own CUDA convolutions need none. CPUs: no change.
    """
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.backends.cudnn.flags(enabled=False)


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move to ``device`` in channels_last, which oneDNN and cuDNN run faster for VGG convs."""
    return model.to(device=device, memory_format=torch.channels_last)
