"""Loading the node's model: every failure, out of memory included, is one ModelLoadError with its reason."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from r2d2_ros.extraction import ExtractionConfig
from r2d2_ros.serving.inference import ModelLoadError, cpu_fallback_note, load_inference_model


def write_oversized_checkpoint(path: Path) -> Path:
    """A well-formed checkpoint whose architecture needs terabytes: building it runs out of memory."""
    arch = {"name": "Quad_L2Net_ConfCFS", "kwargs": {"mchan": 2**15}}
    torch.save({"format": "r2d2_ros", "version": 1, "arch": arch, "state_dict": {}, "config": {}, "meta": {}}, path)
    return path


def test_out_of_memory_is_a_load_error(tmp_path: Path) -> None:
    path = write_oversized_checkpoint(tmp_path / "huge.pt")
    with pytest.raises(ModelLoadError, match="allocate"):
        load_inference_model(str(path), "cpu", ExtractionConfig())


@pytest.mark.parametrize(("model", "device", "reason"), [("/nonexistent.pt", "cpu", "no such file"),
                                                         ("", "cuda:99", "cuda:99")])
def test_bad_file_or_device_is_a_load_error(model: str, device: str, reason: str) -> None:
    with pytest.raises(ModelLoadError, match=reason):
        load_inference_model(model, device, ExtractionConfig())


def test_cpu_fallback_of_auto_is_noted() -> None:
    assert "no CUDA GPU" in cpu_fallback_note("auto", torch.device("cpu"))
    assert cpu_fallback_note("cpu", torch.device("cpu")) == ""
    assert cpu_fallback_note("auto", torch.device("cuda", 0)) == ""


def test_the_bundled_model_loads_on_the_cpu_with_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """"" is the bundled model, run by PyTorch; engine cache and batch keep their defaults; warmed up once."""
    from r2d2_ros.backends import DEFAULT_ENGINE_CACHE, make_runner
    from r2d2_ros.extraction import TorchRunner
    from r2d2_ros.serving import inference
    from r2d2_ros.weights import default_model_path

    seen, warmed = {}, []

    def recording_make_runner(model, backend, precision, **kwargs):  # noqa: ANN001, ANN202
        seen.update(kwargs, backend=backend, precision=precision)
        return make_runner(model, backend, precision)

    monkeypatch.setattr(inference, "make_runner", recording_make_runner)
    monkeypatch.setattr(inference, "warm_up", lambda network, config: warmed.append(config))
    config = ExtractionConfig(max_size=640)
    loaded = load_inference_model("", "auto" if not torch.cuda.is_available() else "cpu", config)
    assert seen == {"backend": "torch", "precision": config.precision, "engine_cache": DEFAULT_ENGINE_CACHE,
                    "max_side": 640, "max_batch": 1}
    assert isinstance(loaded.network, TorchRunner) and loaded.backend == "torch" and warmed == [config]
    assert loaded.name == default_model_path().stem and loaded.device == torch.device("cpu")
    assert loaded.arch == "Fast_Quad_L2Net_ConfCFS()"
    assert loaded.device_note == ("" if torch.cuda.is_available() else cpu_fallback_note("auto", torch.device("cpu")))


def test_the_warm_up_runs_a_vga_quarter_at_the_configured_precision() -> None:
    """One 320 x 240 frame through the runner, whatever the configuration's min_size."""
    from r2d2_ros.serving.inference import warm_up

    calls = []

    def runner(image: torch.Tensor, precision: str):  # noqa: ANN202
        calls.append((tuple(image.shape), precision))
        height, width = image.shape[-2:]
        return (torch.nn.functional.normalize(torch.ones(1, 4, height, width), dim=1),
                torch.zeros(1, 1, height, width), torch.zeros(1, 1, height, width))

    runner.device, runner.dim = torch.device("cpu"), 4  # type: ignore[attr-defined]
    runner.precision = lambda requested: "fp32"  # type: ignore[attr-defined]
    warm_up(runner, ExtractionConfig(min_size=256, max_size=1024, precision="fp32"))  # type: ignore[arg-type]
    assert calls[0] == ((1, 3, 240, 320), "fp32")


def test_a_runner_that_fails_its_warm_up_is_a_load_error() -> None:
    from r2d2_ros.serving.inference import warm_up

    def broken(image: torch.Tensor, precision: str):  # noqa: ANN202
        raise RuntimeError("no kernel for this precision")

    broken.device, broken.dim = torch.device("cpu"), 4  # type: ignore[attr-defined]
    broken.precision = lambda requested: "fp32"  # type: ignore[attr-defined]
    with pytest.raises(ModelLoadError, match="^RuntimeError: no kernel for this precision$"):
        warm_up(broken, ExtractionConfig())  # type: ignore[arg-type]


VALUES = {"model": "", "device": "cpu", "backend": "torch", "engine_cache": "", "cameras": []}


def test_model_settings_name_what_a_model_is_built_for() -> None:
    from r2d2_ros.serving.inference import model_settings

    config = ExtractionConfig(max_size=640, precision="fp32")
    assert model_settings(VALUES, config) == ("", "cpu", "torch", "fp32", None, "", 1)
    assert model_settings(VALUES, config.replace(max_size=800)) == model_settings(VALUES, config)  # PyTorch: any size
    onnx = {**VALUES, "model": "m.pt", "device": "cuda", "backend": "onnxruntime", "engine_cache": "/e",
            "cameras": ["left", "right"]}
    assert model_settings(onnx, config) == ("m.pt", "cuda", "onnxruntime", "fp32", 640, "/e", 2)
    assert model_settings({**onnx, "cameras": ["one"]}, config)[-1] == 1


def test_model_problems_found_without_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from r2d2_ros.serving.inference import model_problem

    (tmp_path / "model.pt").write_bytes(b"")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert model_problem(VALUES) is None  # the bundled model
    assert model_problem({**VALUES, "model": str(tmp_path / "model.pt")}) is None
    assert model_problem({**VALUES, "model": "~/model.pt"}) is None
    gone = str(tmp_path / "gone.pt")
    assert model_problem({**VALUES, "model": gone}) == f"model: no such file {gone!r}"
    assert model_problem({**VALUES, "device": "cuda"}) == "device 'cuda' requested but no CUDA GPU is available"
