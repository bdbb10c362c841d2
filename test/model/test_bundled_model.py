"""The bundled default model: what a user sees first."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros import ExtractionConfig, extract_multiscale, load_model, prepare_for_inference
from r2d2_ros.weights import default_model_path

from ..conftest import rectangles_image

# Flat areas of a synthetic scene (y0, y1, x0, x1): a blown-out white window, a grey wall and a
# black shadow, away from the image border.
FLAT_AREAS = {"saturated white": ((40, 150, 190, 310), 255), "uniform grey": ((170, 235, 200, 300), 128),
              "flat black": ((60, 160, 20, 140), 0)}
# A keypoint is on a flat area when the central half of its patch (32 px at full resolution, 32/s
# at pyramid scale s) lies inside it: 8 px from the edge at full resolution. A keypoint of a coarse
# level near the edge describes the texture beside the area (its patch reaches it), as one of the
# full-resolution level 8 px from the edge still does.
PATCH_MARGIN = 1 / 4


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return prepare_for_inference(load_model(default_model_path()))


def _scene_with_flat_areas() -> np.ndarray:
    image = cv2.GaussianBlur(rectangles_image(240, 320, 220, sides=(3, 16)), (3, 3), 0)
    for (y0, y1, x0, x1), value in FLAT_AREAS.values():
        image[y0:y1, x0:x1] = value
    return image


def _keypoints_on_flat_areas(model: torch.nn.Module) -> tuple[int, dict[str, int]]:
    """All keypoints of the scene, and how many lie on each flat area."""
    features = extract_multiscale(model, _scene_with_flat_areas(), ExtractionConfig(min_size=0))
    x, y, patch = (features.keypoints[:, i].numpy() for i in range(3))
    margin = patch * PATCH_MARGIN
    on_area = {name: int(((x > x0 + margin) & (x < x1 - margin) & (y > y0 + margin) & (y < y1 - margin)).sum())
               for name, ((y0, y1, x0, x1), _) in FLAT_AREAS.items()}
    return len(features), on_area


def test_keypoints_on_texture_none_on_flat_or_saturated_areas(model: torch.nn.Module) -> None:
    count, on_area = _keypoints_on_flat_areas(model)
    assert count >= 100, "the bundled model finds keypoints at the default thresholds"
    assert on_area == {name: 0 for name in FLAT_AREAS}


def test_the_flat_area_check_catches_a_model_that_fires_there(reference: Path) -> None:
    """The official r2d2_WASF_N16 keeps keypoints on the white window and the grey wall."""
    official = prepare_for_inference(load_model(reference / "models" / "r2d2_WASF_N16.pt"))
    _, on_area = _keypoints_on_flat_areas(official)
    assert on_area["saturated white"] > 0 and on_area["uniform grey"] > 0, on_area
