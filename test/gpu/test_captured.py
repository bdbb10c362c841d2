"""Captured pyramids on a CUDA GPU: a replay gives the eager path's detections, on every frame of a size,
for a batch, in fp32 and fp16, with one host wait per frame; a new size runs eagerly first, then gets
its own graph. Skipped without a GPU; `make gpu-check` runs them."""
from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros import ExtractionConfig, extract_multiscale, load_model, prepare_for_inference
from r2d2_ros.backends import BackendError, make_runner
from r2d2_ros.extraction import extract_multiscale_batch, image_to_tensor
from r2d2_ros.extraction.captured import pyramid_graphs
from r2d2_ros.image_io import read_rgb
from r2d2_ros.model import R2D2Net

from ..parity import assert_same_detections, match_keypoints, pyramid_maps

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

FP32 = ExtractionConfig(precision="fp32", min_size=0, top_k=100_000)
CAPTURED = FP32.replace(cuda_graphs=True)
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def cpu_model(checkpoint: Path) -> R2D2Net:
    """For the score maps that tell near-ties from errors."""
    return load_model(checkpoint)


@pytest.fixture
def model(checkpoint: Path) -> R2D2Net:
    """A network of its own per test, so that each starts without graphs."""
    return prepare_for_inference(load_model(checkpoint, CUDA))


def _frame(reference: Path, name: str, size: tuple[int, int] = (256, 256)) -> np.ndarray:
    return cv2.resize(read_rgb(reference / "images" / f"{name}.png"), size, interpolation=cv2.INTER_AREA)


def test_replays_give_the_eager_detections_on_every_frame(model: R2D2Net, cpu_model: R2D2Net,
                                                          reference: Path) -> None:
    frames = [_frame(reference, name) for name in ("boat", "brooklyn", "peppers")]
    eager = [extract_multiscale(model, frame, FP32).numpy() for frame in frames]
    # boat: first frame, eager; brooklyn: captured and replayed; peppers and boat again: replayed on new data.
    for frame, expected in zip([*frames, frames[0]], [*eager, eager[0]]):
        actual = extract_multiscale(model, frame, CAPTURED).numpy()
        assert_same_detections(expected, actual, pyramid_maps(cpu_model, frame, FP32), FP32)
    graphs = pyramid_graphs(model)
    assert graphs.replays == 3 and graphs.fallbacks == {"first frame of its size": 1}


def test_a_new_size_runs_eagerly_then_gets_its_own_graph(model: R2D2Net, cpu_model: R2D2Net, reference: Path) -> None:
    square, wide = _frame(reference, "boat"), _frame(reference, "boat", (320, 240))
    for frame in (square, square, wide, square, wide, wide):
        actual = extract_multiscale(model, frame, CAPTURED).numpy()
        assert_same_detections(extract_multiscale(model, frame, FP32).numpy(), actual,
                               pyramid_maps(cpu_model, frame, FP32), FP32)
    graphs = pyramid_graphs(model)
    assert len(graphs.graphs) == 2
    assert graphs.fallbacks == {"first frame of its size": 2} and graphs.replays == 4


def test_a_batch_of_cameras_is_captured_as_one(model: R2D2Net, cpu_model: R2D2Net, reference: Path) -> None:
    pair = [_frame(reference, "boat"), _frame(reference, "peppers")]
    eager = extract_multiscale_batch(model, pair, FP32)
    for _ in range(3):
        replayed = extract_multiscale_batch(model, pair, CAPTURED)
    for frame, expected, actual in zip(pair, eager, replayed):
        assert_same_detections(expected.numpy(), actual.numpy(), pyramid_maps(cpu_model, frame, FP32), FP32)
    assert pyramid_graphs(model).replays == 2


def test_fp16_replays_keep_the_fp16_detections(model: R2D2Net, reference: Path) -> None:
    config = FP32.replace(precision="fp16")
    frame = _frame(reference, "brooklyn")
    eager = extract_multiscale(model, frame, config).numpy()
    for _ in range(3):
        captured = extract_multiscale(model, frame, config.replace(cuda_graphs=True)).numpy()
    # Same kernels, same inputs: fp16 ties would flip alike, so nearly every detection is shared.
    found, _ = match_keypoints(eager["keypoints"], captured["keypoints"])
    assert len(found) >= 0.99 * len(eager["keypoints"])
    assert len(captured["keypoints"]) <= 1.01 * len(found)
    assert pyramid_graphs(model).replays == 2


def test_features_of_a_replay_survive_the_next_replay(model: R2D2Net, reference: Path) -> None:
    first, second = _frame(reference, "boat"), _frame(reference, "peppers")
    extract_multiscale(model, first, CAPTURED)
    kept = extract_multiscale(model, first, CAPTURED)  # a replay
    copy = kept.numpy()
    extract_multiscale(model, second, CAPTURED)  # overwrites the graph's own outputs
    np.testing.assert_array_equal(kept.numpy()["keypoints"], copy["keypoints"])


def test_one_host_wait_per_replayed_frame(model: R2D2Net, reference: Path) -> None:
    normalised = image_to_tensor(_frame(reference, "boat"), CUDA)
    config = ExtractionConfig(cuda_graphs=True)
    for _ in range(2):  # eager first frame, then the capture
        extract_multiscale(model, normalised, config)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            extract_multiscale(model, normalised, config)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    waits = [w for w in caught if "called a synchronizing" in str(w.message)]
    assert len(waits) == 1, [str(w.message) for w in waits]
    assert pyramid_graphs(model).replays == 1


def test_onnxruntime_runs_eagerly(model: R2D2Net, reference: Path, tmp_path: Path) -> None:
    try:
        runner = make_runner(model, "onnxruntime", "fp32", "cuda", tmp_path)
    except BackendError as error:
        pytest.skip(str(error))
    frame = _frame(reference, "boat")
    for _ in range(3):
        extract_multiscale(runner, frame, CAPTURED)
    graphs = pyramid_graphs(runner)
    assert graphs.replays == 0 and graphs.fallbacks == {"OnnxRuntimeRunner runs kernels PyTorch cannot capture": 3}
