"""Each front end's stereo pairing for the back end: KLT's by flow, R2D2's and ORB's by descriptor (ROS-free)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from r2d2_ros.evaluation.stereo_tracks import descriptor_stereo, flow_stereo
from r2d2_ros.evaluation.tracking import TrackedFrame
from r2d2_ros.features import Features
from r2d2_ros.tracking import CameraModel, TrackBook
from test.conftest import rectangles_image

DISPARITY = 8


def _camera(baseline_px: float = 0.0) -> CameraModel:
    projection = [150.0, 0, 80, -baseline_px, 0, 150, 60, 0, 0, 0, 1, 0]
    return CameraModel.from_camera_info(SimpleNamespace(width=160, height=120, k=[150.0, 0, 80, 0, 150, 60, 0, 0, 1],
                                                        d=[], distortion_model="plumb_bob", r=list(np.eye(3).ravel()),
                                                        p=projection))


def _frame(points: np.ndarray, descriptors: torch.Tensor | None = None) -> TrackedFrame:
    tracks = TrackBook().update(points, np.zeros((0, 2), np.int64))
    return TrackedFrame(points, points.copy(), tracks, [], descriptors)


def test_flow_pairs_each_point_with_where_it_is_in_the_right_image() -> None:
    grey = rectangles_image(120, 200, 60, seed=3)[..., 1]
    left, right = grey[:, 20:180].copy(), grey[:, 20 + DISPARITY : 180 + DISPARITY].copy()  # everything 8 px left
    points = np.array([[40.0, 30], [90, 60], [120, 90], [150, 20]], np.float32)
    stereo = flow_stereo(_frame(points), left, right, _camera(150 * 0.1))
    found = np.isfinite(stereo.right_x)
    assert found.sum() >= 2, "textured points are followed"
    np.testing.assert_allclose(stereo.right_x[found], points[found, 0] - DISPARITY, atol=0.1)
    np.testing.assert_array_equal(stereo.ids, _frame(points).tracks.ids)
    # The same images the other way round: every point would have a negative disparity, none is paired.
    assert np.isnan(flow_stereo(_frame(points), right, left, _camera(15)).right_x).all()
    assert len(flow_stereo(_frame(np.zeros((0, 2), np.float32)), left, right, _camera(15)).right_x) == 0


def test_descriptors_pair_points_on_the_same_row() -> None:
    descriptors = torch.nn.functional.normalize(torch.randn(3, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    left = np.array([[50.0, 20], [80, 40], [120, 90]])
    # Right, in another order: the first two 10 px to the left on their rows, the third 3 rows down (another row).
    right_points = torch.tensor([[70.0, 40.4, 1], [110, 93, 1], [40, 20, 1]])
    right = Features(right_points, descriptors[[1, 2, 0]], torch.ones(3), (160, 120))
    stereo = descriptor_stereo(_frame(left, descriptors), right, _camera(), _camera(15))
    np.testing.assert_allclose(stereo.right_x, [40, 70, np.nan])
    with pytest.raises(ValueError, match="descriptors"):
        descriptor_stereo(_frame(left), right, _camera(), _camera(15))
    with pytest.raises(ValueError, match="baseline"):
        descriptor_stereo(_frame(left, descriptors), right, _camera(), _camera())
