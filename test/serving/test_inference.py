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
