"""Keypoints extracted with the original weights match the original implementation's outputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from r2d2_ros import ExtractionConfig, extract_multiscale, load_model, prepare_for_inference
from r2d2_ros.extraction import PRECISIONS
from r2d2_ros.image_io import read_rgb

from ..parity import MAX_TIED_SHARE, assert_matched_features_agree, assert_same_detections, match_keypoints, pyramid_maps

pytestmark = pytest.mark.slow

# The original computes in fp32; the default precision (auto) is bf16 on CPUs with native bf16.
FP32 = ExtractionConfig(precision="fp32")


@pytest.fixture(scope="module")
def model(reference: Path) -> torch.nn.Module:
    return prepare_for_inference(load_model(reference / "models" / "r2d2_WASF_N16.pt"))


def assert_top_k_parity(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], top_k: int) -> None:
    """At least 99% of the original's top-k keypoints found, with the same descriptors and scores.

    Counts are not compared exactly: near-tied detections (see ``test/parity.py``) may enter or
    leave the set on another CPU, which also moves the top-k cut by as many keypoints.
    """
    assert len(actual["keypoints"]) <= top_k
    assert abs(len(actual["keypoints"]) - len(expected["keypoints"])) <= MAX_TIED_SHARE * len(expected["keypoints"])
    e, a = match_keypoints(expected["keypoints"], actual["keypoints"])
    assert len(e) >= (1 - MAX_TIED_SHARE) * len(expected["keypoints"])
    assert_matched_features_agree(expected, actual, e, a)


@pytest.mark.parametrize("name", ["boat", "peppers", "test", "brooklyn"])
def test_top5000_matches_original(name: str, reference: Path, model: torch.nn.Module) -> None:
    image = read_rgb(reference / "images" / f"{name}.png")
    features = extract_multiscale(model, image, FP32)
    expected = np.load(reference / "outputs" / f"{name}.topk5000.npz")
    assert features.image_size == tuple(expected["imsize"])
    actual = features.numpy()
    assert np.all(np.diff(actual["scores"]) <= 0), "best first"
    assert_top_k_parity(dict(expected), actual, ExtractionConfig().top_k)


def test_every_detection_before_top_k(reference: Path, model: torch.nn.Module) -> None:
    """All 5238 NMS detections of boat.png over its five levels, not only the best 5000, up to ties."""
    image = read_rgb(reference / "images" / "boat.png")
    config = FP32.replace(top_k=100_000)
    features = extract_multiscale(model, image, config)
    expected = dict(np.load(reference / "outputs" / "boat.all.npz"))
    assert_same_detections(expected, features.numpy(), pyramid_maps(model, image, config), config)


def test_single_scale_detections_match_raw_dump(reference: Path) -> None:
    """The unfused net gives the original's scale-1 detections of test.png, up to ties."""
    exact_model = load_model(reference / "models" / "r2d2_WASF_N16.pt")
    dump = np.load(reference / "outputs" / "test.raw.npz")
    image = read_rgb(reference / "images" / "test.png")
    config = FP32.replace(min_scale=1.0, min_size=0, max_size=10_000, top_k=100_000)
    features = extract_multiscale(exact_model, image, config)
    expected = np.stack([dump["nms_x"], dump["nms_y"], np.full(len(dump["nms_x"]), 32.0)], axis=1).astype(np.float32)
    scores = dump["nms_reliability"] * dump["nms_repeatability"]
    assert_same_detections({"keypoints": expected, "descriptors": dump["nms_desc"], "scores": scores},
                           features.numpy(), pyramid_maps(exact_model, image, config), config)


@pytest.mark.parametrize(("precision", "fraction"), [("fp16", 0.99), ("bf16", 0.95)])
def test_reduced_precision_finds_the_same_detections(
    precision: str, fraction: float, reference: Path, model: torch.nn.Module
) -> None:
    image = read_rgb(reference / "images" / "boat.png")[::2, ::2].copy()
    config = FP32.replace(min_size=0, top_k=100_000)
    full = extract_multiscale(model, image, config).numpy()
    reduced = extract_multiscale(model, image, config.replace(precision=precision))
    assert reduced.descriptors.dtype == PRECISIONS[precision]
    assert abs(len(reduced) - len(full["scores"])) <= 0.02 * len(full["scores"])
    found, _ = match_keypoints(full["keypoints"], reduced.numpy()["keypoints"])
    assert len(found) >= fraction * len(full["keypoints"])
