"""The node's backend and precision parameters, and its model loader with backend onnxruntime (no DDS)."""
from __future__ import annotations

from pathlib import Path

import pytest

from r2d2_ros.backends import DEFAULT_ENGINE_CACHE, make_runner
from r2d2_ros.extraction import ExtractionConfig, NetworkRunner
from r2d2_ros.model import load_checkpoint
from r2d2_ros.model.nets import R2D2Net
from r2d2_ros.ros import inference
from r2d2_ros.ros.inference import ModelLoadError, load_inference_model
from r2d2_ros.ros.params import defaults, validate_update
from r2d2_ros.weights import default_model_path


def test_precision_auto_and_backend_torch_are_the_defaults() -> None:
    assert (defaults()["precision"], defaults()["backend"]) == ("auto", "torch")
    assert validate_update(defaults(), {"backend": "onnxruntime", "precision": "fp32"}) is None
    assert "backend must be one of torch, onnxruntime" in validate_update(defaults(), {"backend": "tensorrt"})


def test_onnxruntime_model_loads_and_resolves_auto_for_its_provider() -> None:
    pytest.importorskip("onnxruntime", reason="backend onnxruntime needs it: pip install onnxruntime")
    model = load_inference_model("", "cpu", ExtractionConfig(), "onnxruntime")
    assert model.backend == "onnxruntime" and model.arch == load_checkpoint(default_model_path()).arch.to_string()
    assert model.network.precision("auto") == "fp32"  # the CPU provider computes fp32 only


def test_onnxruntime_refuses_bf16_with_the_reason() -> None:
    pytest.importorskip("onnxruntime", reason="backend onnxruntime needs it: pip install onnxruntime")
    with pytest.raises(ModelLoadError, match="not bf16 .backend torch runs bf16"):
        load_inference_model("", "cpu", ExtractionConfig(precision="bf16"), "onnxruntime")


@pytest.mark.parametrize(("setting", "expected"), [("", DEFAULT_ENGINE_CACHE),
                                                   ("/var/lib/r2d2/engines", Path("/var/lib/r2d2/engines")),
                                                   ("~/engines", Path.home() / "engines")])
def test_engine_cache_reaches_the_runner(monkeypatch: pytest.MonkeyPatch, setting: str, expected: Path) -> None:
    # TensorRT is not on CI machines: the folder is checked where the loader hands it to make_runner.
    seen = {}

    def recording_make_runner(model: R2D2Net, backend: str, precision: str, *, engine_cache: Path,
                              max_side: int) -> NetworkRunner:
        seen["engine_cache"] = engine_cache
        return make_runner(model, "torch", precision, max_side=max_side)

    monkeypatch.setattr(inference, "make_runner", recording_make_runner)
    load_inference_model("", "cpu", ExtractionConfig(min_size=0, max_size=64), "onnxruntime", setting)
    assert seen["engine_cache"] == expected
