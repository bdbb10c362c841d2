"""TensorRT engines are cached under a key of everything they were built for: a change builds anew (logged)."""
from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import pytest
import torch

from r2d2_ros import backends
from r2d2_ros.backends import OnnxRuntimeRunner, tensorrt_engine_key, tensorrt_version
from r2d2_ros.model.nets import Quad_L2Net_ConfCFS

BUILT_FOR = {"onnx_model": b"graph", "max_side": 1024, "max_batch": 1, "precision": "fp16", "tensorrt": "10.3.0",
             "gpu": "Orin sm_87"}


def test_the_key_is_readable_and_stable() -> None:
    key = tensorrt_engine_key(**BUILT_FOR)
    assert key == tensorrt_engine_key(**BUILT_FOR)
    assert key.startswith("fp16-1024px-b1-trt10.3.0-") and "/" not in key
    # Pinned: a release that changed the digest of the same settings would rebuild every robot's engine (minutes).
    assert key == "fp16-1024px-b1-trt10.3.0-cbd4cfb0aede5e27"


@pytest.mark.parametrize(("setting", "other"), [("onnx_model", b"retrained graph"), ("max_side", 1600),
                                                ("max_batch", 2), ("precision", "fp32"), ("tensorrt", "10.4.0"),
                                                ("gpu", "NVIDIA H200 sm_90")])
def test_every_setting_changes_the_key(setting: str, other: object) -> None:
    assert tensorrt_engine_key(**{**BUILT_FOR, setting: other}) != tensorrt_engine_key(**BUILT_FOR)


def test_the_same_weights_export_the_same_graph() -> None:
    """The key hashes the exported graph: an export that differed from run to run would rebuild every start."""
    pytest.importorskip("onnx", reason="the export needs onnx: pip install onnx")
    from r2d2_ros.export import export_onnx

    torch.manual_seed(0)
    model, retrained = Quad_L2Net_ConfCFS().eval(), Quad_L2Net_ConfCFS().eval()
    assert export_onnx(model) == export_onnx(model)
    assert export_onnx(model) != export_onnx(retrained)


def test_tensorrt_version_from_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0.30"))
    assert tensorrt_version() == "10.3.0.30"
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # not installed: import raises ImportError
    assert tensorrt_version() == "unknown"


def _runner_on_a_gpu(monkeypatch: pytest.MonkeyPatch, precision: str) -> OnnxRuntimeRunner:
    """A runner as far as its TensorRT options go, on a stand-in GPU (no session, no CUDA)."""
    monkeypatch.setattr(backends, "tensorrt_version", lambda: "10.3.0")
    monkeypatch.setattr(backends, "_gpu_name", lambda device: "Orin sm_87")
    monkeypatch.setattr(OnnxRuntimeRunner, "_stream_options", lambda self: {})
    runner = OnnxRuntimeRunner.__new__(OnnxRuntimeRunner)
    runner.device, runner._precision = torch.device("cuda"), precision
    return runner


def test_a_change_builds_a_new_engine_beside_the_old(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "r2d2_ros")
    options = _runner_on_a_gpu(monkeypatch, "fp16")._tensorrt_options(b"graph", tmp_path, 1024, 1)
    folder = Path(options["trt_engine_cache_path"])
    assert folder == tmp_path / tensorrt_engine_key(b"graph", 1024, 1, "fp16", "10.3.0", "Orin sm_87")
    assert folder.is_dir() and options["trt_timing_cache_path"] == str(folder)
    assert options["trt_fp16_enable"] == "True" and options["trt_profile_max_shapes"].endswith("1x3x1024x1024")
    assert "is not in the cache" in caplog.text

    (folder / "TensorrtExecutionProvider_TRTKernel_graph_0.engine").write_bytes(b"engine")  # as ORT names them
    caplog.clear()
    assert _runner_on_a_gpu(monkeypatch, "fp16")._tensorrt_options(b"graph", tmp_path, 1024, 1) == options
    assert "loading it from" in caplog.text

    caplog.clear()
    for changed in (_runner_on_a_gpu(monkeypatch, "fp32")._tensorrt_options(b"graph", tmp_path, 1024, 1),
                    _runner_on_a_gpu(monkeypatch, "fp16")._tensorrt_options(b"retrained", tmp_path, 1024, 1)):
        assert Path(changed["trt_engine_cache_path"]).parent == tmp_path
        assert changed["trt_engine_cache_path"] != str(folder)
    assert caplog.text.count("is not in the cache") == 2
