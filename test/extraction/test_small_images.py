"""Cameras smaller than min_size (thermal 160x120, 188x120 crops) are processed at their own scale."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from r2d2_ros.extraction import ExtractionConfig, extract_multiscale, pyramid_levels
from r2d2_ros.model import prepare_for_inference
from r2d2_ros.model.nets import Fast_Quad_L2Net_ConfCFS, Quad_L2Net_ConfCFS


@pytest.mark.parametrize(("height", "width"), [(120, 160), (120, 188), (200, 250), (2, 3)])
def test_an_image_smaller_than_min_size_uses_its_own_scale(height: int, width: int) -> None:
    levels = [level for level in pyramid_levels(height, width, ExtractionConfig()) if level.used]
    assert [(level.scale, level.height, level.width) for level in levels] == [(1.0, height, width)]


def test_max_scale_still_bounds_a_small_image() -> None:
    levels = [level for level in pyramid_levels(120, 160, ExtractionConfig(max_scale=0.5)) if level.used]
    assert len(levels) == 1 and levels[0].scale == pytest.approx(0.5, abs=1e-3)


def test_images_above_min_size_keep_the_original_pyramid() -> None:
    levels = pyramid_levels(300, 400, ExtractionConfig())
    assert [level.width for level in levels if level.used] == [400, 336, 283]


def test_a_thermal_frame_gets_keypoints(textured_image: np.ndarray) -> None:
    torch.manual_seed(0)
    model = prepare_for_inference(Quad_L2Net_ConfCFS().eval())
    config = ExtractionConfig(reliability_threshold=0.0, repeatability_threshold=0.0, top_k=100)
    features = extract_multiscale(model, textured_image, config)  # 160x120, default min_size 256
    assert len(features.scores) == 100


def test_the_pyramid_stops_before_levels_the_fast_net_cannot_run() -> None:
    """min_size 0 walks the pyramid down to its smallest levels; none may be 1 pixel high or wide."""
    levels = pyramid_levels(30, 40, ExtractionConfig(min_size=0))
    assert min(min(level.height, level.width) for level in levels) == 2
    assert pyramid_levels(1, 40, ExtractionConfig()) == []
    torch.manual_seed(0)
    model = prepare_for_inference(Fast_Quad_L2Net_ConfCFS().eval())
    config = ExtractionConfig(min_size=0, reliability_threshold=0.0, repeatability_threshold=0.0, precision="fp32")
    features = extract_multiscale(model, np.full((30, 40, 3), 128, np.uint8), config)
    assert len(features.scores) > 0 and (features.keypoints[:, 2] > 32).any()  # smaller levels were used
