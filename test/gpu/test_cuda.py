"""What only a CUDA GPU can check: fp32 parity, fp16/bf16 agreement, ONNX Runtime CUDA and TensorRT,
and one host wait per frame. Skipped without a GPU; `make gpu-check` runs them."""
from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros import ExtractionConfig, extract_multiscale, load_model, prepare_for_inference
from r2d2_ros.backends import BackendError, make_runner
from r2d2_ros.extraction import image_to_tensor
from r2d2_ros.image_io import read_rgb

from ..parity import assert_same_detections, match_keypoints, pyramid_maps

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

FP32 = ExtractionConfig(precision="fp32", min_size=0, top_k=100_000)
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def image(reference: Path) -> np.ndarray:
    return cv2.resize(read_rgb(reference / "images" / "boat.png"), (256, 256), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def cpu_fp32(checkpoint: Path, image: np.ndarray) -> dict[str, np.ndarray]:
    return extract_multiscale(prepare_for_inference(load_model(checkpoint)), image, FP32).numpy()


def _runner_or_skip(checkpoint: Path, provider: str, precision: str, engine_cache: Path):
    try:
        return make_runner(prepare_for_inference(load_model(checkpoint, CUDA)), "onnxruntime", precision, provider,
                           engine_cache)
    except BackendError as error:
        pytest.skip(str(error))


def test_fp32_on_cuda_matches_the_cpu(checkpoint: Path, image: np.ndarray, cpu_fp32: dict[str, np.ndarray]) -> None:
    features = extract_multiscale(prepare_for_inference(load_model(checkpoint, CUDA)), image, FP32)
    assert features.keypoints.device.type == "cuda"
    assert_same_detections(cpu_fp32, features.numpy(), pyramid_maps(load_model(checkpoint), image, FP32), FP32)


@pytest.mark.parametrize(("precision", "fraction"), [("fp16", 0.99), ("bf16", 0.95), ("auto", 0.99)])
def test_reduced_precision_keeps_the_fp32_detections(checkpoint: Path, image: np.ndarray,
                                                     cpu_fp32: dict[str, np.ndarray], precision: str,
                                                     fraction: float) -> None:
    reduced = extract_multiscale(prepare_for_inference(load_model(checkpoint, CUDA)), image,
                                 FP32.replace(precision=precision)).numpy()
    found, _ = match_keypoints(cpu_fp32["keypoints"], reduced["keypoints"])
    assert len(found) >= fraction * len(cpu_fp32["keypoints"])


def test_one_host_wait_per_frame(checkpoint: Path, image: np.ndarray) -> None:
    model = prepare_for_inference(load_model(checkpoint, CUDA))
    normalised = image_to_tensor(image, CUDA)  # uploaded before, so only the extraction is watched
    extract_multiscale(model, normalised, ExtractionConfig())  # warm-up: cuDNN picks its kernels
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            extract_multiscale(model, normalised, ExtractionConfig())
        finally:
            torch.cuda.set_sync_debug_mode("default")
    # One warning per synchronizing operation; torch 2.11 also warns once that the debug mode itself is
    # a prototype ("Synchronization debug mode is a prototype feature..."), which is no host wait.
    waits = [w for w in caught if "called a synchronizing" in str(w.message)]
    assert len(waits) == 1, [str(w.message) for w in waits]


def test_onnxruntime_cuda_fp32_matches_pytorch(checkpoint: Path, image: np.ndarray, cpu_fp32: dict[str, np.ndarray],
                                               tmp_path: Path) -> None:
    runner = _runner_or_skip(checkpoint, "cuda", "fp32", tmp_path)
    model = load_model(checkpoint)
    tensor = image_to_tensor(image)
    expected = model(tensor)
    with torch.inference_mode():
        descriptors, reliability, repeatability = runner(tensor.to(CUDA), "fp32")
    for actual, reference in ((descriptors, expected.descriptors), (reliability, expected.reliability),
                              (repeatability, expected.repeatability)):
        torch.testing.assert_close(actual.cpu(), reference.detach(), atol=1e-4, rtol=0)
    actual = extract_multiscale(runner, image, FP32).numpy()
    assert_same_detections(cpu_fp32, actual, pyramid_maps(model, image, FP32), FP32)


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_onnxruntime_fp16_keeps_the_fp32_detections(checkpoint: Path, image: np.ndarray,
                                                    cpu_fp32: dict[str, np.ndarray], provider: str,
                                                    tmp_path: Path) -> None:
    runner = _runner_or_skip(checkpoint, provider, "fp16", tmp_path)
    reduced = extract_multiscale(runner, image, FP32.replace(precision="auto")).numpy()
    found, _ = match_keypoints(cpu_fp32["keypoints"], reduced["keypoints"])
    assert len(found) >= 0.95 * len(cpu_fp32["keypoints"])
    if provider == "tensorrt":
        assert any(tmp_path.glob("*/*.engine")), "TensorRT wrote no engine into its key's cache folder"
