"""ONNX Runtime sessions as the runner builds them for each provider, and a GPU's bound inputs and outputs.

A stand-in ONNX Runtime records what the runner asks of it, and a stand-in GPU gives a stream and a name: the
provider options a Jetson's session gets are checked here, with no CUDA and no session (test/gpu runs them).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from r2d2_ros import backends
from r2d2_ros.backends import (DEFAULT_ENGINE_CACHE, Backend, OnnxRuntimeRunner, make_runner, tensorrt_engine_key,
                               tensorrt_profile)
from r2d2_ros.export import INPUT_NAME, OUTPUT_NAMES

STREAM = 4242  # the stand-in PyTorch stream's handle
GPU_OUTPUTS = (torch.zeros(1, 128, 2, 3), torch.ones(1, 1, 2, 3), torch.full((1, 1, 2, 3), 0.5))


class _Binding:
    def __init__(self) -> None:
        self.inputs: list[tuple] = []
        self.outputs: list[tuple] = []

    def bind_input(self, *arguments: object) -> None:
        self.inputs.append(arguments)

    def bind_output(self, *arguments: object) -> None:
        self.outputs.append(arguments)

    def get_outputs(self) -> tuple[torch.Tensor, ...]:
        return GPU_OUTPUTS  # tensors speak DLPack, as ONNX Runtime's OrtValues do


class _Session:
    def __init__(self, model: object, options: object, providers: list) -> None:
        self.model, self.options, self.providers = model, options, providers
        self.bindings: list[_Binding] = []
        self.ran_with: object = None

    def get_outputs(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(shape=["batch", 128, "h", "w"]), SimpleNamespace(shape=["batch", 1, "h", "w"])]

    def io_binding(self) -> _Binding:
        self.bindings.append(_Binding())
        return self.bindings[-1]

    def run_with_iobinding(self, binding: _Binding, run_options: object) -> None:
        self.ran_with = run_options


class _RunOptions:
    def __init__(self) -> None:
        self.entries: dict[str, str] = {}

    def add_run_config_entry(self, key: str, value: str) -> None:
        self.entries[key] = value


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime with every provider, TensorRT 10.3.0 and an Orin GPU, all stand-ins."""
    fake_ort = SimpleNamespace(SessionOptions=SimpleNamespace, InferenceSession=_Session, RunOptions=_RunOptions,
                               get_available_providers=lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                                "CPUExecutionProvider"])
    monkeypatch.setattr(backends, "_import_onnxruntime", lambda: fake_ort)
    monkeypatch.setattr(backends, "tensorrt_version", lambda: "10.3.0")
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device: SimpleNamespace(cuda_stream=STREAM))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (8, 7))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "Orin")


def _stream(device_id: str) -> dict[str, str]:
    return {"device_id": device_id, "has_user_compute_stream": "1", "user_compute_stream": str(STREAM)}


@pytest.mark.parametrize("device, precision, device_id, tf32", [
    (torch.device("cuda"), "fp32", "0", "0"), (torch.device("cuda", 1), "fp16", "1", "1")])
def test_cuda_session_on_pytorchs_stream(stand_ins: None, device: torch.device, precision: str, device_id: str,
                                         tf32: str) -> None:
    """fp32 means fp32 (no TF32); the session runs on PyTorch's stream, unsynchronised at the end of a run."""
    runner = OnnxRuntimeRunner(b"graph", device, "cuda", precision)
    session = runner.session
    assert session.model == b"graph" and session.options.intra_op_num_threads == torch.get_num_threads()
    assert session.providers == [("CUDAExecutionProvider", {**_stream(device_id), "use_tf32": tf32}),
                                 ("CPUExecutionProvider", {})]
    assert runner.dim == 128 and runner.precision("auto") == precision
    assert runner._run_options.entries == {"disable_synchronize_execution_providers": "1"}


def test_tensorrt_session_with_its_engine_folder(stand_ins: None, tmp_path: Path) -> None:
    """TensorRT first (an fp32 graph, fp16 kernels of its choosing), CUDA for what it leaves, the CPU last; the
    engine in a folder of the cache (made, parents too) named by the model, profile, precision, TensorRT and GPU."""
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"graph")
    cache = tmp_path / "not" / "made"
    runner = OnnxRuntimeRunner(graph, torch.device("cuda"), "tensorrt", "fp16", cache)
    folder = cache / tensorrt_engine_key(b"graph", 1024, 1, "fp16", "10.3.0", "Orin sm_87")
    assert folder.is_dir() and runner.session.model == str(graph)
    assert runner.session.providers == [
        ("TensorrtExecutionProvider", {**_stream("0"), "trt_fp16_enable": "True", "trt_engine_cache_enable": "True",
                                       "trt_engine_cache_path": str(folder), "trt_timing_cache_enable": "True",
                                       "trt_timing_cache_path": str(folder), **tensorrt_profile(1024, 1)}),
        ("CUDAExecutionProvider", {**_stream("0"), "use_tf32": "1"}),
        ("CPUExecutionProvider", {})]
    fp32 = OnnxRuntimeRunner(b"graph", torch.device("cuda"), "tensorrt", "fp32", cache, max_side=640, max_batch=2)
    assert fp32.session.providers[0][1]["trt_fp16_enable"] == "False"
    assert fp32.session.providers[0][1]["trt_profile_max_shapes"] == f"{INPUT_NAME}:2x3x640x640"


def test_cpu_session_has_the_cpu_provider_alone(stand_ins: None) -> None:
    runner = OnnxRuntimeRunner(b"graph", torch.device("cpu"), "cpu", "fp32")
    assert runner.session.providers == [("CPUExecutionProvider", {})] and runner._run_options.entries == {}


@pytest.mark.parametrize("device, index", [(torch.device("cuda"), 0), (torch.device("cuda", 1), 1)])
def test_a_gpu_batch_is_bound_in_place(stand_ins: None, device: torch.device, index: int) -> None:
    """Inputs and outputs bound on the runner's GPU, the batch made contiguous, the outputs read through DLPack."""
    runner = OnnxRuntimeRunner(b"graph", device, "cuda", "fp32")
    image = torch.rand(2, 3, 6, 4).transpose(2, 3)  # not contiguous
    outputs = runner(image, "fp32")
    binding = runner.session.bindings[-1]
    ((name, device_type, bound_index, dtype, shape, pointer),) = binding.inputs
    assert (name, device_type, bound_index, dtype, shape) == (INPUT_NAME, "cuda", index, np.float32, (2, 3, 4, 6))
    assert pointer != image.data_ptr()  # a contiguous copy's memory, not the strided view's
    assert binding.outputs == [(output, "cuda", index) for output in OUTPUT_NAMES]
    assert runner.session.ran_with is runner._run_options
    assert all(torch.equal(got, expected) for got, expected in zip(outputs, GPU_OUTPUTS)) and len(outputs) == 3


def test_gpu_name_has_its_compute_capability(stand_ins: None) -> None:
    assert backends._gpu_name(torch.device("cuda")) == "Orin sm_87"


class _ModelOnAGpu:
    def parameters(self):  # noqa: ANN201
        yield SimpleNamespace(device=torch.device("cuda"))


@pytest.mark.parametrize("provider, precision, graph, session", [
    ("cuda", "auto", "fp16", "fp16"), ("cuda", "fp16", "fp16", "fp16"), ("cuda", "fp32", "fp32", "fp32"),
    ("tensorrt", "auto", "fp32", "fp16"), ("tensorrt", "fp32", "fp32", "fp32")])
def test_the_graph_each_gpu_provider_is_given(stand_ins: None, monkeypatch: pytest.MonkeyPatch, provider: str,
                                              precision: str, graph: str, session: str) -> None:
    """The CUDA provider runs the graph's own precision; TensorRT is given fp32 and picks fp16 kernels itself."""
    exported, built = [], []
    monkeypatch.setattr(backends, "export_onnx",
                        lambda model, graph_precision: exported.append(graph_precision) or b"g")
    monkeypatch.setattr(backends, "OnnxRuntimeRunner", lambda *arguments: built.append(arguments))
    make_runner(_ModelOnAGpu(), "onnxruntime", precision, provider)  # type: ignore[arg-type]
    assert exported == [graph]
    assert built == [(b"g", torch.device("cuda"), provider, session, DEFAULT_ENGINE_CACHE, 1024, 1)]


def test_backend_defaults() -> None:
    from r2d2_ros.extraction import TorchRunner
    from r2d2_ros.model.nets import Fast_Quad_L2Net_ConfCFS

    assert Backend() == Backend("torch", "auto", DEFAULT_ENGINE_CACHE)
    assert isinstance(make_runner(Fast_Quad_L2Net_ConfCFS()), TorchRunner)


def _engine_cache_of(environment: dict[str, str]) -> str:
    code = "from r2d2_ros.backends import DEFAULT_ENGINE_CACHE; print(DEFAULT_ENGINE_CACHE)"
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_default_engine_cache_follows_xdg(tmp_path: Path) -> None:
    """docs/node.md: $XDG_CACHE_HOME/r2d2_ros/tensorrt, or ~/.cache/r2d2_ros/tensorrt without it."""
    environment = {k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}
    assert _engine_cache_of({**environment, "XDG_CACHE_HOME": str(tmp_path)}) == str(tmp_path / "r2d2_ros" / "tensorrt")
    home = tmp_path / "home"
    assert _engine_cache_of({**environment, "HOME": str(home)}) == str(home / ".cache" / "r2d2_ros" / "tensorrt")
