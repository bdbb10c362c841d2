"""Device names from users (node parameter, CLI option) and the CPU's native bf16 (no ROS, no GPU needed)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from r2d2_ros.device import cpu_has_native_bf16, fast_autocast_dtype, resolve_device


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with two CUDA GPUs, as far as resolve_device can tell."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_cpu_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cpu", " CPU ", "auto", "Auto\n"):
        assert resolve_device(name) == torch.device("cpu")


def test_gpu_names_on_a_machine_with_two(two_gpus: None) -> None:
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda") and resolve_device(" CUDA:1") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0) and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device 'cuda:2' requested but only 2 GPU\(s\) exist"):
        resolve_device("cuda:2")


def test_a_gpu_asked_for_where_there_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match=f"device '{name}' requested but no CUDA GPU is available"):
            resolve_device(name)


def test_unknown_and_unsupported_names(two_gpus: None) -> None:
    with pytest.raises(ValueError, match="unknown device 'gpu'; use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    for name in ("meta", "mps"):  # names torch knows, of devices the extractor does not run on
        with pytest.raises(ValueError, match=f"unsupported device '{name}'; use auto, cpu, cuda or cuda:N"):
            resolve_device(name)


def test_native_bf16_flags_are_read_from_flags_lines_only() -> None:
    assert cpu_has_native_bf16("processor\t: 0\nflags\t\t: fpu sse2 avx512_bf16\n")
    assert cpu_has_native_bf16("flags : amx_tile amx_bf16\n") and not cpu_has_native_bf16("flags : amx_tile avx512f\n")
    assert not cpu_has_native_bf16("model name : avx512_bf16 lookalike\nbugs : amx_bf16\nflags : sse2\n")
    assert not cpu_has_native_bf16("flags : avx512_bf16x\n")  # whole flags, not parts of one


def test_native_bf16_without_proc_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(self: Path, *args: object, **kwargs: object) -> str:
        raise FileNotFoundError(self)

    monkeypatch.setattr(Path, "read_text", unreadable)
    assert cpu_has_native_bf16() is False


def test_native_bf16_of_this_machine_is_read_from_proc_cpuinfo() -> None:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo on this system")
    assert cpu_has_native_bf16() == cpu_has_native_bf16(cpuinfo.read_text())


def test_reduced_precision_on_cuda_is_bf16_whatever_the_cpu() -> None:
    assert fast_autocast_dtype(torch.device("cuda"), "flags : sse2\n") == torch.bfloat16
    assert fast_autocast_dtype(torch.device("cpu"), "flags : sse2\n") is None
