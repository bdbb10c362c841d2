"""The precision harness: which detections count as kept, and bf16 on the CPU keeps fp32's detections."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros import load_model, prepare_for_inference
from r2d2_ros.evaluation.precision_check import ALL_DETECTIONS, compare_precision, kept_detections
from r2d2_ros.image_io import read_rgb
from r2d2_ros.model.nets import Quad_L2Net_ConfCFS

# bf16 on the CPU, r2d2_WASF_N16, the four reference images at 128x128, every detection: measured
# 98.3% of fp32's 1901 detections kept, 29 extra, descriptor cosine mean 0.9999 (faster2d2: 98.7%,
# 21 extra). The losses are near-ties: bf16's 8-bit mantissa moves the trunk's maps by ~0.4%, which
# flips NMS on plateaus and detections on a threshold. 95% and 5% leave room for other CPUs' bf16
# kernels (AVX512-BF16, AMX) while catching what matters: score heads in bf16 (what TorchRunner
# avoids) quantise the maps into plateaus and doubled the detections (1923 extra) in the same check.
BF16_KEPT = 0.95
BF16_EXTRA = 0.05
BF16_COSINE = 0.999


def _keypoints(rows: list[tuple[float, float, float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).view(-1, 3)


def test_a_detection_is_kept_within_the_tolerance_on_its_own_level() -> None:
    expected = _keypoints([(10, 10, 32), (20, 20, 32), (30, 30, 32), (40, 40, 45.25)])
    actual = _keypoints([(10.6, 10.6, 32),  # 0.85 px away: kept
                         (21.5, 20, 32),  # 1.5 px: lost
                         (30, 30, 45.25),  # right place, another level: lost
                         (40, 41, 45.25)])  # 1 px: kept
    found, matches = kept_detections(expected, actual)
    assert found.tolist() == [0, 3] and matches.tolist() == [0, 3]
    found, _ = kept_detections(expected, actual, tolerance_px=2.0)
    assert found.tolist() == [0, 1, 3]


def test_nothing_to_keep_from_or_with() -> None:
    some = _keypoints([(10, 10, 32)])
    for expected, actual in ((some, _keypoints([])), (_keypoints([]), some)):
        found, matches = kept_detections(expected, actual)
        assert len(found) == len(matches) == 0


def test_fp32_agrees_with_itself(textured_image: np.ndarray) -> None:
    torch.manual_seed(0)
    network = prepare_for_inference(Quad_L2Net_ConfCFS().eval())
    config = ALL_DETECTIONS.replace(reliability_threshold=0.3, repeatability_threshold=0.3)
    agreement = compare_precision(network, [textured_image], "fp32", config)
    assert agreement.detections > 100
    assert agreement.kept == agreement.detections and agreement.extra == 0
    assert agreement.cosine_min == pytest.approx(1.0, abs=1e-6)
    assert "100.0%" in str(agreement)


@pytest.mark.slow
def test_bf16_on_the_cpu_keeps_the_fp32_detections(reference: Path) -> None:
    images = [cv2.resize(read_rgb(reference / "images" / f"{name}.png"), (128, 128), interpolation=cv2.INTER_AREA)
              for name in ("boat", "brooklyn", "peppers", "test")]
    network = prepare_for_inference(load_model(reference / "models" / "r2d2_WASF_N16.pt"))
    agreement = compare_precision(network, images, "bf16")
    assert agreement.detections > 1000, agreement
    assert agreement.kept_share >= BF16_KEPT, agreement
    assert agreement.extra <= BF16_EXTRA * agreement.detections, agreement
    assert agreement.cosine_mean >= BF16_COSINE, agreement
