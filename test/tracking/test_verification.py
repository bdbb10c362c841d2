"""Epipolar verification at its edges: the relative pose it recovers, the fewest matches, both sides of the threshold."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from r2d2_ros.tracking.verification import MIN_MATCHES, epipolar_model, relative_pose, sampson_errors

K = np.array([[400.0, 0, 320], [0, 400, 240], [0, 0, 1]])
ROTATION = cv2.Rodrigues(np.array([0.0, 0.05, 0.01]))[0]
TRANSLATION = np.array([0.3, 0.0, 0.1])
OFF = 40  # the first OFF matches of _matches(off_px) are moved off the epipolar geometry


def _true_fundamental() -> np.ndarray:
    cross = np.array([[0, -TRANSLATION[2], TRANSLATION[1]], [TRANSLATION[2], 0, -TRANSLATION[0]],
                      [-TRANSLATION[1], TRANSLATION[0], 0]])
    inverse = np.linalg.inv(K)
    return inverse.T @ cross @ ROTATION @ inverse


def _opencv_sampson(points1: np.ndarray, points2: np.ndarray, fundamental: np.ndarray) -> np.ndarray:
    """OpenCV's Sampson distance (it returns the square), as an independent reference."""
    def homogeneous(point: np.ndarray) -> np.ndarray:
        return np.array([[point[0]], [point[1]], [1.0]])

    return np.sqrt([cv2.sampsonDistance(homogeneous(a), homogeneous(b), fundamental) for a, b in zip(points1, points2)])


def _matches(off_px: float = 0.0, count: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions of a random scene before and after the motion; the first OFF second positions are
    moved across their epipolar lines to a Sampson distance of ``off_px`` (none when 0)."""
    rng = np.random.default_rng(0)
    scene = np.column_stack([rng.uniform(-4, 4, count), rng.uniform(-3, 3, count), rng.uniform(6, 20, count)])

    def project(camera_points: np.ndarray) -> np.ndarray:
        pixels = camera_points @ K.T
        return pixels[:, :2] / pixels[:, 2:]

    first, second = project(scene), project(scene @ ROTATION.T + TRANSLATION)
    if off_px:
        fundamental = _true_fundamental()
        lines = np.column_stack([first[:OFF], np.ones(OFF)]) @ fundamental.T
        normals = lines[:, :2] / np.linalg.norm(lines[:, :2], axis=1, keepdims=True)
        moved = second[:OFF] + normals
        # Sampson distance grows about linearly with the move: scale each move to off_px (within 1e-4).
        second[:OFF] += normals * (off_px / _opencv_sampson(first[:OFF], moved, fundamental))[:, None]
    return first, second


@pytest.mark.parametrize("estimator", ["lo-ransac", "ransac"])
def test_relative_pose_recovers_the_rotation_and_the_direction_of_travel(estimator: str) -> None:
    first, second = _matches()
    rotation, translation, inliers = relative_pose(first, second, K, estimator=estimator)
    np.testing.assert_allclose(rotation, ROTATION, atol=1e-4)
    np.testing.assert_allclose(translation.ravel(), TRANSLATION / np.linalg.norm(TRANSLATION), atol=1e-4)
    assert 0 < inliers <= len(first)


def test_relative_pose_names_the_estimators_it_knows() -> None:
    first, second = _matches()
    with pytest.raises(ValueError, match=r"^unknown estimator 'lmeds'; use one of lo-ransac, ransac$"):
        relative_pose(first, second, K, estimator="lmeds")


@pytest.mark.parametrize("camera_matrix", [K, None], ids=["essential", "fundamental"])
def test_eight_matches_are_verified_seven_are_not(camera_matrix: np.ndarray | None) -> None:
    first, second = _matches()
    inliers, model = epipolar_model(first[:MIN_MATCHES], second[:MIN_MATCHES], camera_matrix)
    assert MIN_MATCHES == 8 and model is not None and inliers.all()
    inliers, model = epipolar_model(first[:7], second[:7], camera_matrix)
    assert model is None and inliers.tolist() == [False] * 7
    if camera_matrix is not None:
        assert relative_pose(first[:MIN_MATCHES], second[:MIN_MATCHES], K) is not None
        assert relative_pose(first[:7], second[:7], K) is None


@pytest.mark.parametrize("camera_matrix", [K, None], ids=["essential", "fundamental"])
def test_the_model_is_a_fundamental_matrix_in_pixels(camera_matrix: np.ndarray | None) -> None:
    """With K the essential matrix is turned into pixels (K^-T E K^-1): the matches lie on its lines."""
    first, second = _matches()
    inliers, fundamental = epipolar_model(first, second, camera_matrix)
    assert inliers.all()
    assert sampson_errors(first, second, fundamental).max() < 1e-3


@pytest.mark.parametrize("camera_matrix", [K, None], ids=["essential", "fundamental"])
def test_matches_one_and_a_half_pixels_off_fail_the_default_threshold_and_pass_two(
        camera_matrix: np.ndarray | None) -> None:
    first, second = _matches(off_px=1.5)
    strict, _ = epipolar_model(first, second, camera_matrix)
    assert not strict[:OFF].any() and strict[OFF:].all()
    loose, _ = epipolar_model(first, second, camera_matrix, threshold_px=2.0)
    assert loose.all()


def test_relative_pose_counts_more_inliers_under_a_looser_threshold() -> None:
    first, second = _matches(off_px=1.5)
    default = relative_pose(first, second, K)[2]
    assert default == relative_pose(first, second, K, threshold_px=1.0)[2]
    assert default < relative_pose(first, second, K, threshold_px=2.0)[2]


def test_sampson_errors_of_matches_moved_across_their_lines() -> None:
    first, second = _matches(off_px=1.5)
    errors = sampson_errors(first, second, _true_fundamental())
    np.testing.assert_allclose(errors[:OFF], 1.5, rtol=1e-4)
    assert errors[OFF:].max() < 1e-9


def test_sampson_errors_agree_with_opencv_for_any_fundamental_matrix() -> None:
    """A general F (no symmetry between the axes or the images), at pixel-like scales."""
    rng = np.random.default_rng(8)
    fundamental = rng.normal(size=(3, 3)) * [[1e-6, 1e-6, 1e-3], [1e-6, 1e-6, 1e-3], [1e-3, 1e-3, 1]]
    points1, points2 = rng.uniform(0, 640, (50, 2)), rng.uniform(0, 480, (50, 2))
    np.testing.assert_allclose(sampson_errors(points1, points2, fundamental),
                               _opencv_sampson(points1, points2, fundamental), rtol=1e-9)


@pytest.mark.parametrize("camera_matrix", [K, None], ids=["essential", "fundamental"])
def test_a_degenerate_set_gives_no_model_and_no_inliers(camera_matrix: np.ndarray | None) -> None:
    """Ten matches all at one pixel (a frozen frame's one bright spot): OpenCV finds no model, nothing is accepted."""
    spot = np.full((10, 2), 100.0)
    inliers, model = epipolar_model(spot, spot, camera_matrix)
    assert model is None and not inliers.any()
    assert relative_pose(spot, spot, K) is None
