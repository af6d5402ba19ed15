"""Choosing where and in which precision the network runs."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from pathlib import Path

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


_threads: int | None = None  # what use_threads() set for this process


def cgroup_cpu_limit(root: str | os.PathLike = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup") -> int | None:
    """Whole cores the process's cgroup CPU quota allows (rounded up), or None without a quota: a farm task
    given "1.5 CPUs" by its scheduler gets 2 threads, not one per core of the node. cgroup v2 (``cpu.max`` of
    the process's own cgroup, then the root's) and v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``)."""
    root = Path(root)
    candidates: list[tuple[Path, Path | None]] = []
    try:
        for line in Path(proc_cgroup).read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            rel = path.lstrip("/")
            if controllers == "":
                candidates.append((root / rel / "cpu.max", None))
            elif "cpu" in controllers.split(","):
                for v1 in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                    candidates.append((root / v1 / rel / "cpu.cfs_quota_us", root / v1 / rel / "cpu.cfs_period_us"))
    except (OSError, ValueError):
        pass
    candidates += [(root / "cpu.max", None), (root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us")]
    for quota_file, period_file in candidates:
        try:
            if period_file is None:
                quota, period = quota_file.read_text().split()[:2]
                if quota == "max":
                    return None
            else:
                quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
                if int(quota) < 0:
                    return None
            return max(1, math.ceil(int(quota) / int(period)))
        except (OSError, ValueError):
            continue
    return None


def cpu_budget() -> int:
    """The cores this process may use: its affinity mask (cpuset, taskset), capped by its cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return max(1, min(n, limit) if limit else n)


def use_threads(requested: int = 0) -> int:
    """Set torch's intra-op threads for this process: ``requested`` when above 0 (the ``threads`` parameter),
    else ``OMP_NUM_THREADS`` when set, else ``cpu_budget()``. Returns the number set."""
    global _threads
    n = requested
    if n <= 0:
        env = os.environ.get("OMP_NUM_THREADS", "")
        n = int(env) if env.isdigit() and int(env) > 0 else cpu_budget()
    torch.set_num_threads(n)
    if n != _threads:
        log.info("%d CPU thread(s) for the network", n)
    _threads = n
    return n


def configure_cpu_threads() -> int:
    """The threads already chosen for this process (``use_threads``), or the automatic choice."""
    return _threads if _threads is not None else use_threads(0)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return frozenset()
    return frozenset(word for line in text.splitlines() if line.startswith("flags") for word in line.split())


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 dot products (AVX512-BF16 or AMX), where bf16 is much faster than
    fp32 (BENCHMARKS.md)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def cpu_has_amx() -> bool:
    """True on CPUs with AMX tiles, where bf16 convolutions are fast enough that int8's gain is unmeasured."""
    return bool({"amx_bf16", "amx_int8", "amx_tile"} & cpu_flags())


def _supported_engines() -> list[str]:
    return list(torch.backends.quantized.supported_engines)


def int8_engine() -> str | None:
    """The quantised engine int8 inference runs on here (``quantize.py``), or None where PyTorch has no x86
    one (e.g. ARM)."""
    engines = _supported_engines()
    return next((e for e in ("onednn", "x86") if e in engines), None)


def inference_precision(precision: str, device: torch.device) -> str:
    """What inference runs in here (int8, bf16 or fp32) for a ``precision`` parameter. ``auto``: int8 on an
    x86 CPU (as accurate as fp32 on held-out shots, about twice bf16's speed with AVX512-BF16 and 2.4x fp32's
    without AVX-512: BENCHMARKS.md, "Inference in int8"), except on CPUs with AMX, where it is unmeasured and
    bf16 runs; elsewhere bf16 where the hardware runs it fast, else fp32. int8 asked for where it cannot run
    (a GPU, a CPU without x86 int8 kernels) runs auto's choice there, with a warning."""
    if precision == "int8" and (device.type != "cpu" or int8_engine() is None):
        log.warning("precision int8 needs an x86-64 CPU; on %s the network runs in auto precision", device)
        precision = "auto"
    if precision == "auto" and device.type == "cpu" and not cpu_has_amx() and int8_engine() is not None:
        return "int8"
    if precision == "int8":
        return precision
    return "bf16" if resolve_precision(precision, device) == torch.bfloat16 else "fp32"


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bf16 where the hardware runs it fast, else fp32. ``int8`` is inference's alone (see
    ``quantize.py``): training, and everything around the quantised convolutions, runs in fp32."""
    if precision in ("fp32", "int8"):
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}: expected auto, fp32, bf16 or int8")
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


def training_memory_format(device: torch.device, dtype: torch.dtype) -> torch.memory_format:
    """The layout training runs in: channels_last, except fp32 on a CPU whose kernels stop at AVX2, where
    oneDNN's backward convolutions run much slower in channels_last than in NCHW (BENCHMARKS.md, "A
    fine-tuning step's layout"). ATen's capability, not /proc/cpuinfo, so ``ATEN_CPU_CAPABILITY`` counts."""
    if device.type == "cpu" and dtype == torch.float32 and torch.backends.cpu.get_cpu_capability() != "AVX512":
        return torch.contiguous_format
    return torch.channels_last


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move to ``device`` in channels_last, which oneDNN and cuDNN run faster for VGG convs."""
    return model.to(device=device, memory_format=torch.channels_last)
