"""Keypoints extracted with the original weights match the original implementation's outputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from r2d2_ros import ExtractionConfig, extract_multiscale, load_model, prepare_for_inference
from r2d2_ros.image_io import read_rgb

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(reference: Path) -> torch.nn.Module:
    return prepare_for_inference(load_model(reference / "models" / "r2d2_WASF_N16.pt"))


def match_keypoints(expected: np.ndarray, actual: np.ndarray, tolerance: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Pairs rows of two (N, 3) keypoint arrays with the same scale and x, y within ``tolerance``.

    Returns the indices into ``expected`` and into ``actual`` of the matched pairs.
    """
    matched_expected, matched_actual = [], []
    for scale in np.unique(expected[:, 2]):
        a = np.flatnonzero(np.abs(expected[:, 2] - scale) < 1e-3)
        b = np.flatnonzero(np.abs(actual[:, 2] - scale) < 1e-3)
        if len(b) == 0:
            continue
        distance = np.linalg.norm(expected[a, None, :2] - actual[None, b, :2], axis=2)
        nearest = distance.argmin(axis=1)
        close = distance[np.arange(len(a)), nearest] <= tolerance
        matched_expected.append(a[close])
        matched_actual.append(b[nearest[close]])
    return np.concatenate(matched_expected), np.concatenate(matched_actual)


def assert_parity(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> None:
    """The issue's criteria: >= 99% of keypoints within 1e-3 px, cosine >= 0.9999, scores to 1e-4."""
    assert len(actual["keypoints"]) == len(expected["keypoints"])
    e, a = match_keypoints(expected["keypoints"], actual["keypoints"])
    assert len(e) >= 0.99 * len(expected["keypoints"])
    cosine = (expected["descriptors"][e] * actual["descriptors"][a]).sum(axis=1)
    assert cosine.min() >= 0.9999
    np.testing.assert_allclose(actual["scores"][a], expected["scores"][e], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["boat", "peppers", "test", "brooklyn"])
def test_top5000_matches_original(name: str, reference: Path, model: torch.nn.Module) -> None:
    image = read_rgb(reference / "images" / f"{name}.png")
    features = extract_multiscale(model, image, ExtractionConfig())
    expected = np.load(reference / "outputs" / f"{name}.topk5000.npz")
    assert features.image_size == tuple(expected["imsize"])
    actual = features.numpy()
    assert np.all(np.diff(actual["scores"]) <= 0), "best first"
    assert_parity(dict(expected), actual)


def test_every_detection_before_top_k(reference: Path, model: torch.nn.Module) -> None:
    """All 5238 NMS detections of boat.png over its five levels, not only the best 5000."""
    image = read_rgb(reference / "images" / "boat.png")
    features = extract_multiscale(model, image, ExtractionConfig(top_k=100_000))
    assert_parity(dict(np.load(reference / "outputs" / "boat.all.npz")), features.numpy())


def test_single_scale_detections_match_raw_dump(reference: Path) -> None:
    """The unfused net gives exactly the original's detections (folding batch norm moves ~0.5% of ties)."""
    exact_model = load_model(reference / "models" / "r2d2_WASF_N16.pt")
    dump = np.load(reference / "outputs" / "test.raw.npz")
    config = ExtractionConfig(min_scale=1.0, min_size=0, max_size=10_000, top_k=100_000)
    features = extract_multiscale(exact_model, read_rgb(reference / "images" / "test.png"), config)
    expected = np.stack([dump["nms_x"], dump["nms_y"], np.full(len(dump["nms_x"]), 32.0)], axis=1).astype(np.float32)
    scores = dump["nms_reliability"] * dump["nms_repeatability"]
    assert_parity({"keypoints": expected, "descriptors": dump["nms_desc"], "scores": scores}, features.numpy())


@pytest.mark.parametrize(("precision", "fraction"), [("fp16", 0.99), ("bf16", 0.95)])
def test_reduced_precision_finds_the_same_detections(
    precision: str, fraction: float, reference: Path, model: torch.nn.Module
) -> None:
    image = read_rgb(reference / "images" / "boat.png")[::2, ::2].copy()
    config = ExtractionConfig(min_size=0, top_k=100_000)
    full = extract_multiscale(model, image, config).numpy()
    reduced = extract_multiscale(model, image, config.replace(precision=precision))
    assert reduced.descriptors.dtype == config.replace(precision=precision).dtype
    assert abs(len(reduced) - len(full["scores"])) <= 0.02 * len(full["scores"])
    found, _ = match_keypoints(full["keypoints"], reduced.numpy()["keypoints"])
    assert len(found) >= fraction * len(full["keypoints"])
