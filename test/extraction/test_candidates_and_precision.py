"""Candidates gathered on the device (one wait per frame) give every NMS detection; precision auto."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from r2d2_ros import ExtractionConfig, extract_multiscale
from r2d2_ros import device as device_module
from r2d2_ros.device import auto_precision
from r2d2_ros.extraction import PRECISIONS, TorchRunner
from r2d2_ros.model.nets import Quad_L2Net_ConfCFS

from ..parity import LevelMaps, _neighbour_maximum, pyramid_maps

# Low thresholds: hundreds of detections on every level of the small image, so top-k cuts across levels.
CONFIG = ExtractionConfig(precision="fp32", min_size=48, reliability_threshold=0.3, repeatability_threshold=0.3,
                          top_k=100_000)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return Quad_L2Net_ConfCFS().eval()


def _all_detections(levels: list[LevelMaps], config: ExtractionConfig) -> tuple[np.ndarray, np.ndarray]:
    """Every detection (x, y, scale) and score of every level, by NMS written out in numpy."""
    keypoints, scores = [], []
    for level in levels:
        rep, rel = level.repeatability, level.reliability
        mask = (rep >= _neighbour_maximum(rep)) & (rep >= config.repeatability_threshold) & (
            rel >= config.reliability_threshold)
        ys, xs = np.nonzero(mask)
        keypoints.append(np.stack([xs / level.to_level[0], ys / level.to_level[1],
                                   np.full(len(xs), level.patch_diameter)], axis=1))
        scores.append(rel[ys, xs] * rep[ys, xs])
    return np.concatenate(keypoints).astype(np.float32), np.concatenate(scores)


def _sorted_rows(keypoints: np.ndarray) -> np.ndarray:
    return keypoints[np.lexsort(keypoints.T[::-1])]


def test_every_level_detection_is_found(model: torch.nn.Module, textured_image: np.ndarray) -> None:
    expected, expected_scores = _all_detections(pyramid_maps(model, textured_image, CONFIG), CONFIG)
    assert len({round(s) for s in expected[:, 2]}) >= 3, "the test needs several pyramid levels"
    features = extract_multiscale(model, textured_image, CONFIG).numpy()
    # Same maps on both sides (the unfolded net, fp32): the same detections exactly, no ties to allow.
    np.testing.assert_allclose(_sorted_rows(features["keypoints"]), _sorted_rows(expected), atol=1e-4)
    np.testing.assert_allclose(np.sort(features["scores"]), np.sort(expected_scores), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(features["descriptors"], axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("top_k", [1, 37, 500])
def test_top_k_across_levels_is_the_best_k(model: torch.nn.Module, textured_image: np.ndarray, top_k: int) -> None:
    _, expected_scores = _all_detections(pyramid_maps(model, textured_image, CONFIG), CONFIG)
    assert len(expected_scores) > top_k
    features = extract_multiscale(model, textured_image, CONFIG.replace(top_k=top_k)).numpy()
    np.testing.assert_allclose(features["scores"], np.sort(expected_scores)[::-1][:top_k], atol=1e-6)


def test_a_level_without_detections_adds_nothing(model: torch.nn.Module, textured_image: np.ndarray) -> None:
    config = CONFIG.replace(reliability_threshold=1.0, repeatability_threshold=1.0)
    features = extract_multiscale(model, textured_image, config)
    assert len(features) == 0 and features.descriptors.shape == (0, model.dim)


@pytest.mark.parametrize(("native_bf16", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_the_cpu(monkeypatch: pytest.MonkeyPatch, native_bf16: bool, expected: str) -> None:
    monkeypatch.setattr(device_module, "_this_cpu_has_native_bf16", lambda: native_bf16)
    assert auto_precision(torch.device("cpu")) == expected


def test_auto_precision_on_cuda_is_fp16() -> None:
    assert auto_precision(torch.device("cuda")) == "fp16"  # a device object needs no GPU


def test_auto_is_the_default_and_resolved_by_the_runner(model: torch.nn.Module, textured_image: np.ndarray) -> None:
    assert ExtractionConfig().precision == "auto"
    runner = TorchRunner(model)
    resolved = runner.precision("auto")
    assert resolved == auto_precision(torch.device("cpu"))
    features = extract_multiscale(runner, textured_image, CONFIG.replace(precision="auto", top_k=100))
    assert features.descriptors.dtype == PRECISIONS[resolved]


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, fp16, bf16"):
        ExtractionConfig(precision="fp64")
