"""Choosing the backend, execution provider and precision, and the errors for what is missing (no GPU needed)."""
from __future__ import annotations

import sys

import pytest
import torch

from r2d2_ros import backends
from r2d2_ros.backends import BackendError, choose_provider, make_runner
from r2d2_ros.extraction import TorchRunner
from r2d2_ros.model.nets import Quad_L2Net_ConfCFS

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize(("requested", "device", "available", "chosen"), [
    ("auto", CPU, GPU_BUILD, "cpu"),
    ("auto", CUDA, GPU_BUILD, "tensorrt"),
    ("auto", CUDA, GPU_BUILD[1:], "cuda"),
    ("cuda", CUDA, GPU_BUILD, "cuda"),
])
def test_provider_choice(requested: str, device: torch.device, available: list[str], chosen: str) -> None:
    assert choose_provider(requested, device, available) == chosen


@pytest.mark.parametrize(("requested", "device", "available", "message"), [
    ("auto", CUDA, ["CPUExecutionProvider"], "pip install onnxruntime-gpu"),
    ("tensorrt", CUDA, GPU_BUILD[1:], "tensorrt"),
    ("cuda", CPU, GPU_BUILD, "does not run on device cpu"),
    ("dml", CPU, GPU_BUILD, "must be one of"),
])
def test_missing_or_wrong_provider_is_one_clear_error(requested: str, device: torch.device, available: list[str],
                                                      message: str) -> None:
    with pytest.raises(BackendError, match=message):
        choose_provider(requested, device, available)


@pytest.mark.parametrize(("requested", "provider", "resolved"),
                         [("auto", "cpu", "fp32"), ("auto", "cuda", "fp16"), ("auto", "tensorrt", "fp16"),
                          ("fp32", "tensorrt", "fp32")])
def test_onnxruntime_precision(requested: str, provider: str, resolved: str) -> None:
    assert backends._onnxruntime_precision(requested, provider) == resolved


@pytest.mark.parametrize(("requested", "provider"), [("bf16", "cuda"), ("fp16", "cpu"), ("bf16", "cpu")])
def test_onnxruntime_refuses_what_it_cannot_compute(requested: str, provider: str) -> None:
    with pytest.raises(BackendError, match=f"not {requested}"):
        backends._onnxruntime_precision(requested, provider)


def test_torch_backend_is_the_torch_runner() -> None:
    assert isinstance(make_runner(Quad_L2Net_ConfCFS().eval(), "torch"), TorchRunner)


def test_unknown_backend() -> None:
    with pytest.raises(BackendError, match="backend must be one of torch, onnxruntime"):
        make_runner(Quad_L2Net_ConfCFS().eval(), "tensorflow")


def test_missing_onnxruntime_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(BackendError, match="pip install onnxruntime"):
        make_runner(Quad_L2Net_ConfCFS().eval(), "onnxruntime")


def test_missing_onnx_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(BackendError, match="pip install onnx"):
        make_runner(Quad_L2Net_ConfCFS().eval(), "onnxruntime")
