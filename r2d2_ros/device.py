"""Choosing the torch device from a user's string (node parameter, CLI option), and its fast precision."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

__all__ = ["resolve_device", "cpu_has_native_bf16", "fast_autocast_dtype", "auto_precision"]

# CPU flags (as /proc/cpuinfo names them) of native bf16 arithmetic. Without them oneDNN emulates
# bf16 and runs several times slower than fp32.
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def resolve_device(name: str) -> torch.device:
    """Turns ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a usable device.

    ``auto`` picks the first GPU when there is one, else the CPU.

    Raises:
        ValueError: an unknown name, or a GPU that this machine does not have.
    """
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from error
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but no CUDA GPU is available")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
    return device


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX).

    Args:
        cpuinfo: the text of /proc/cpuinfo (read when not given; False where it does not exist).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    return any(flag in flags for flag in _NATIVE_BF16_FLAGS)


def fast_autocast_dtype(device: torch.device, cpuinfo: str | None = None) -> torch.dtype | None:
    """The reduced precision worth using on ``device``: bf16 on CUDA and on native-bf16 CPUs, else None (fp32)."""
    if device.type == "cuda":
        return torch.bfloat16
    return torch.bfloat16 if cpu_has_native_bf16(cpuinfo) else None


@lru_cache(maxsize=1)
def _this_cpu_has_native_bf16() -> bool:
    # The CPU does not change while the process runs; extraction asks on every frame.
    return cpu_has_native_bf16()


def auto_precision(device: torch.device) -> str:
    """What precision ``auto`` means for PyTorch on ``device``.

    fp16 on CUDA (tensor cores; fp16 keeps more fp32 detections than bf16), bf16 on CPUs that
    compute it natively (about 2x fp32 there), fp32 elsewhere (emulated bf16 is slower than fp32).
    """
    if device.type == "cuda":
        return "fp16"
    return "bf16" if _this_cpu_has_native_bf16() else "fp32"
