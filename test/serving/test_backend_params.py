"""The node's backend and precision parameters, and its model loader with backend onnxruntime (no DDS)."""
from __future__ import annotations

from pathlib import Path

import pytest

from r2d2_ros.backends import DEFAULT_ENGINE_CACHE, make_runner, tensorrt_profile
from r2d2_ros.export import INPUT_NAME
from r2d2_ros.extraction import ExtractionConfig, NetworkRunner
from r2d2_ros.model import load_checkpoint
from r2d2_ros.model.nets import R2D2Net
from r2d2_ros.serving import inference
from r2d2_ros.serving.inference import ModelLoadError, load_inference_model
from r2d2_ros.serving.params import defaults, validate_update
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
def test_engine_cache_and_batch_reach_the_runner(monkeypatch: pytest.MonkeyPatch, setting: str, expected: Path) -> None:
    # TensorRT is not on CI machines: what the engine is built for is checked where the loader hands it on.
    seen = {}

    def recording_make_runner(model: R2D2Net, backend: str, precision: str, *, engine_cache: Path,
                              max_side: int, max_batch: int) -> NetworkRunner:
        seen.update(engine_cache=engine_cache, max_side=max_side, max_batch=max_batch)
        return make_runner(model, "torch", precision, max_side=max_side)

    monkeypatch.setattr(inference, "make_runner", recording_make_runner)
    load_inference_model("", "cpu", ExtractionConfig(min_size=0, max_size=64), "onnxruntime", setting, max_batch=2)
    assert seen == {"engine_cache": expected, "max_side": 64, "max_batch": 2}


def test_tensorrt_profile_covers_every_level_and_the_rigs_batch() -> None:
    assert tensorrt_profile(1024) == {"trt_profile_min_shapes": f"{INPUT_NAME}:1x3x16x16",
                                      "trt_profile_opt_shapes": f"{INPUT_NAME}:1x3x480x640",
                                      "trt_profile_max_shapes": f"{INPUT_NAME}:1x3x1024x1024"}
    stereo = tensorrt_profile(640, max_batch=2)  # batch 1 still fits: the warm-up runs one image
    assert stereo["trt_profile_min_shapes"] == f"{INPUT_NAME}:1x3x16x16"
    assert stereo["trt_profile_max_shapes"] == f"{INPUT_NAME}:2x3x640x640"
