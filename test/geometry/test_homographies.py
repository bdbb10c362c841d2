"""Random homographies for training pairs and the correspondence helpers (ROS-free): each range of
HomographyConfig bounds what it says, and the helpers map points exactly."""
from __future__ import annotations

import numpy as np
import pytest

from r2d2_ros.geometry import (HomographyConfig, _homography_from_points, corner_error, homography_flow, local_scale,
                               sample_homography, warp_points)

WIDTH, HEIGHT = 200, 120
CENTRE = np.array([[WIDTH / 2, HEIGHT / 2]])
NOTHING = {"max_log2_scale": 0.0, "max_log2_aspect": 0.0, "rotation_probability": 0.0, "max_rotation_deg": 0.0,
           "max_tilt": 0.0, "max_translation": 0.0}


def _samples(count: int = 300, **ranges: float) -> list[np.ndarray]:
    """Homographies drawn with every range 0 but ``ranges``."""
    rng, config = np.random.default_rng(0), HomographyConfig(**{**NOTHING, **ranges})
    return [sample_homography(rng, WIDTH, HEIGHT, config) for _ in range(count)]


def test_config_limits_on_both_sides() -> None:
    HomographyConfig(**NOTHING)
    HomographyConfig(max_tilt=0.99, rotation_probability=1.0)
    for bad in ({"max_log2_scale": -0.1}, {"max_log2_aspect": -0.1}, {"max_rotation_deg": -1.0},
                {"max_tilt": -0.1}, {"max_translation": -0.1}):
        with pytest.raises(ValueError, match="non-negative"):
            HomographyConfig(**bad)
    with pytest.raises(ValueError, match="max_tilt must be < 1"):
        HomographyConfig(max_tilt=1.0)
    for probability in (-0.01, 1.01):
        with pytest.raises(ValueError, match="rotation_probability"):
            HomographyConfig(rotation_probability=probability)


def test_the_default_ranges_are_the_training_distribution() -> None:
    # The training configs leave them to these defaults: changing one changes the pairs of every run, resumed
    # ones included (documented in HomographyConfig's comments and the model card).
    assert HomographyConfig() == HomographyConfig(max_log2_scale=0.5, max_log2_aspect=0.25, rotation_probability=0.5,
                                                  max_rotation_deg=30.0, max_tilt=0.5, max_translation=0.15)


def test_no_range_is_the_identity() -> None:
    for homography in _samples(5):
        np.testing.assert_allclose(homography, np.eye(3), atol=1e-9)


def test_scale_zooms_about_the_centre_within_its_range_both_ways() -> None:
    scales = []
    for homography in _samples(max_log2_scale=0.5):
        np.testing.assert_allclose(warp_points(homography, CENTRE), CENTRE, atol=1e-9)
        np.testing.assert_allclose(homography[0, 0], homography[1, 1], rtol=1e-9)  # no aspect change
        scales.append(local_scale(homography, 10.0, 90.0))
    assert 2 ** -0.5 <= min(scales) < 0.8 and 1.25 < max(scales) <= 2 ** 0.5


def test_aspect_stretches_x_and_squeezes_y_alike() -> None:
    ratios = []
    for homography in _samples(max_log2_aspect=0.25):
        assert homography[0, 0] * homography[1, 1] == pytest.approx(1.0)  # the area is kept
        assert homography[0, 1] == pytest.approx(0.0, abs=1e-12) and homography[2, :2] == pytest.approx(0.0, abs=1e-12)
        ratios.append(homography[0, 0] / homography[1, 1])
    assert 2 ** -0.5 <= min(ratios) < 0.8 and 1.25 < max(ratios) <= 2 ** 0.5


def test_rotation_within_its_angle_for_the_share_of_pairs_it_is_given() -> None:
    def angles(probability: float) -> np.ndarray:
        return np.degrees([np.arctan2(h[1, 0], h[0, 0]) for h in _samples(rotation_probability=probability,
                                                                           max_rotation_deg=30.0)])
    always = angles(1.0)
    assert np.abs(always).max() <= 30.0 and always.min() < -20 and always.max() > 20
    for homography in _samples(20, rotation_probability=1.0, max_rotation_deg=30.0):  # a rotation, not a shear
        np.testing.assert_allclose(homography[:2, :2] @ homography[:2, :2].T, np.eye(2), atol=1e-9)
        assert np.linalg.det(homography[:2, :2]) == pytest.approx(1.0)
    assert np.abs(angles(0.0)).max() < 1e-9  # the identity's SVD leaves 1e-13 degrees
    share = (np.abs(angles(0.5)) > 1e-9).mean()
    assert 0.4 < share < 0.6  # 300 draws: a binomial's standard deviation is 0.03


def test_translation_within_its_fraction_of_each_side() -> None:
    shifts = np.array([warp_points(h, CENTRE)[0] - CENTRE[0] for h in _samples(max_translation=0.15)])
    assert (np.abs(shifts) <= [0.15 * WIDTH, 0.15 * HEIGHT]).all()
    assert (shifts.min(axis=0) < [-0.1 * WIDTH, -0.1 * HEIGHT]).all() and (shifts.max(axis=0) > [0.1 * WIDTH,
                                                                                                 0.1 * HEIGHT]).all()


def test_tilt_shortens_one_side_by_up_to_its_fraction() -> None:
    corners = np.array([[0.0, 0], [WIDTH, 0], [WIDTH, HEIGHT], [0, HEIGHT]])
    shrinks, sides = [], set()
    for homography in _samples(max_tilt=0.5):
        warped = warp_points(homography, corners)
        lengths = np.linalg.norm(np.roll(warped, -1, axis=0) - warped, axis=1)
        original = np.linalg.norm(np.roll(corners, -1, axis=0) - corners, axis=1)
        ratio = lengths / original
        side = int(np.argmin(ratio))
        sides.add(side)
        shrinks.append(1 - ratio[side])
        np.testing.assert_allclose(np.delete(ratio, [side, (side + 1) % 4, (side - 1) % 4]), 1.0)  # the opposite side
        # Its two corners pulled together symmetrically: the side keeps its middle.
        ends = [side, (side + 1) % 4]
        np.testing.assert_allclose(warped[ends].mean(axis=0), corners[ends].mean(axis=0), atol=1e-6)
    assert sides == {0, 1, 2, 3} and 0 <= min(shrinks) < 0.1 and 0.4 < max(shrinks) <= 0.5


def test_a_sampled_homography_is_normalised() -> None:
    for homography in _samples(20, max_log2_scale=0.5, max_tilt=0.5, max_translation=0.15):
        assert homography[2, 2] == 1.0


def test_local_scale_is_the_square_root_of_the_jacobian_determinant() -> None:
    assert local_scale(np.diag([2.0, 2.0, 1.0]), 30.0, 40.0) == pytest.approx(2.0)
    assert local_scale(np.diag([4.0, 1.0, 1.0]), 30.0, 40.0) == pytest.approx(2.0)
    perspective = np.array([[1.1, 0.1, 5.0], [-0.05, 0.9, 3.0], [1e-3, 2e-3, 1.0]])
    for x, y in ((30.0, 40.0), (150.0, 10.0)):
        step = 1e-4
        columns = [(warp_points(perspective, [[x + step, y]]) - warp_points(perspective, [[x - step, y]]))[0] / (2 * step),
                   (warp_points(perspective, [[x, y + step]]) - warp_points(perspective, [[x, y - step]]))[0] / (2 * step)]
        assert local_scale(perspective, x, y) == pytest.approx(np.sqrt(abs(np.linalg.det(np.column_stack(columns)))),
                                                                rel=1e-6)


def test_four_points_give_the_homography_that_maps_them() -> None:
    source = np.array([[0.0, 0], [10, 0], [10, 8], [0, 8]])
    target = np.array([[1.0, 2], [12, 1], [11, 10], [0.5, 9]])
    homography = _homography_from_points(source, target)
    np.testing.assert_allclose(warp_points(homography, source), target, atol=1e-9)
    assert homography[2, 2] == 1.0


def test_warp_points_flow_and_corner_error() -> None:
    shift = np.array([[1.0, 0, 3], [0, 1, -4], [0, 0, 1]])
    np.testing.assert_allclose(warp_points(shift, [[1.0, 2.0]]), [[4.0, -2.0]])
    at_infinity = np.array([[1.0, 0, 0], [0, 1, 0], [1, 0, 0]])  # w = x: x = 0 maps to infinity
    assert np.isnan(warp_points(at_infinity, [[0.0, 5.0]])).all() and np.isfinite(warp_points(at_infinity, [[2.0, 5.0]])).all()
    flow = homography_flow(shift, 5, 3)
    assert flow.shape == (3, 5, 2) and flow.dtype == np.float32
    np.testing.assert_array_equal(flow[2, 4], [7.0, -2.0])  # pixel x = 4, y = 2
    assert corner_error(shift, np.eye(3), WIDTH, HEIGHT) == pytest.approx(5.0)
    # Doubled about the origin: the corners (0, 0), (W-1, 0), (W-1, H-1), (0, H-1) move by their distance to it.
    expected = np.mean([0.0, WIDTH - 1, np.hypot(WIDTH - 1, HEIGHT - 1), HEIGHT - 1])
    assert corner_error(np.diag([2.0, 2.0, 1.0]), np.eye(3), WIDTH, HEIGHT) == pytest.approx(expected)
