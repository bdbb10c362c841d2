"""Camera models from full calibrations (R and P of a stereo rig, every distortion model) and rectified points."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from r2d2_ros.tracking import CameraModel, rectify_points

K = np.array([[400.0, 0, 320], [0, 410, 240], [0, 0, 1]])
# A rectified right camera of a rig: rotated into the common plane, a new focal length and centre, a baseline.
R = cv2.Rodrigues(np.array([0.01, -0.02, 0.005]))[0]
P = np.array([[380.0, 0, 300, -380.0 * 0.12], [0, 380, 250, 0], [0, 0, 1, 0]])
COEFFICIENTS = {"plumb_bob": [-0.28, 0.07, 0.0002, 0.00002, 0.0],
                "rational_polynomial": [-0.2, 0.05, 0.0001, -0.0002, 0.0, 0.1, -0.02, 0.01],
                "equidistant": [0.01, -0.005, 0.001, 0.0]}


def _info(distortion_model: str, d: list[float], r: np.ndarray | None = None, p: np.ndarray | None = None
          ) -> SimpleNamespace:
    return SimpleNamespace(width=640, height=480, k=K.reshape(-1).tolist(), d=d,
                           r=(r if r is not None else np.zeros((3, 3))).reshape(-1).tolist(),
                           p=(p if p is not None else np.zeros((3, 4))).reshape(-1).tolist(),
                           distortion_model=distortion_model)


def _raw_pixels(normalised: np.ndarray, model: str) -> np.ndarray:
    """(N, 2) raw pixels of ideal normalised image coordinates through the lens ``model``."""
    coefficients = np.array(COEFFICIENTS[model])
    if model == "equidistant":
        return cv2.fisheye.distortPoints(normalised.reshape(-1, 1, 2), K, coefficients).reshape(-1, 2)
    raw, _ = cv2.projectPoints(np.column_stack([normalised, np.ones(len(normalised))]), np.zeros(3), np.zeros(3), K,
                               coefficients)
    return raw.reshape(-1, 2)


@pytest.mark.parametrize("model", sorted(COEFFICIENTS))
def test_rectified_points_are_undistorted_rotated_by_r_and_projected_by_p(model: str) -> None:
    camera = CameraModel.from_camera_info(_info(model, COEFFICIENTS[model], R, P))
    normalised = np.random.default_rng(5).uniform([-0.6, -0.45], [0.6, 0.45], (60, 2))
    rotated = np.column_stack([normalised, np.ones(len(normalised))]) @ R.T
    projected = rotated @ P[:, :3].T
    expected = projected[:, :2] / projected[:, 2:]
    rectified = rectify_points(_raw_pixels(normalised, model), camera)
    assert rectified.dtype == np.float32
    np.testing.assert_allclose(rectified, expected, atol=0.02)


def test_a_full_calibration_is_kept_as_given() -> None:
    camera = CameraModel.from_camera_info(_info("rational_polynomial", COEFFICIENTS["rational_polynomial"], R, P))
    assert (camera.width, camera.height, camera.distortion_model) == (640, 480, "rational_polynomial")
    assert isinstance(camera.width, int) and isinstance(camera.height, int)
    np.testing.assert_array_equal(camera.K, K)
    np.testing.assert_array_equal(camera.R, R)
    np.testing.assert_array_equal(camera.P, P)
    np.testing.assert_array_equal(camera.D, COEFFICIENTS["rational_polynomial"])
    assert camera.rectified_matrix.flags.c_contiguous
    np.testing.assert_array_equal(camera.rectified_matrix, P[:, :3])


def test_missing_r_p_and_model_mean_identity_k_and_plumb_bob() -> None:
    camera = CameraModel.from_camera_info(_info("", [0.0] * 5))
    assert camera.distortion_model == "plumb_bob"
    np.testing.assert_array_equal(camera.R, np.eye(3))
    np.testing.assert_array_equal(camera.P, np.hstack([K, np.zeros((3, 1))]))
    points = np.array([[10.0, 20], [320, 240], [630, 470]])
    np.testing.assert_allclose(rectify_points(points, camera), points, atol=1e-4)


def test_no_points_rectify_to_an_empty_float32_array() -> None:
    camera = CameraModel.from_camera_info(_info("plumb_bob", COEFFICIENTS["plumb_bob"]))
    rectified = rectify_points(np.zeros((0, 2)), camera)
    assert rectified.shape == (0, 2) and rectified.dtype == np.float32


def test_unsupported_models_are_refused_naming_the_supported_ones() -> None:
    with pytest.raises(ValueError, match=r"^distortion model 'fov' is not supported; "
                                         r"use one of plumb_bob, rational_polynomial, equidistant$"):
        CameraModel.from_camera_info(_info("fov", [0.9]))
    with pytest.raises(ValueError, match=r"^camera_info has an all-zero K: the camera is not calibrated$"):
        CameraModel.from_camera_info(SimpleNamespace(**{**vars(_info("plumb_bob", [])), "k": [0.0] * 9}))


def test_a_single_point_rectifies_as_it_does_among_others() -> None:
    camera = CameraModel.from_camera_info(_info("plumb_bob", COEFFICIENTS["plumb_bob"], R, P))
    points = np.array([[600.0, 40], [100, 400], [320, 240]])
    np.testing.assert_array_equal(rectify_points(points[:1], camera), rectify_points(points, camera)[:1])


def test_a_fisheye_calibration_padded_to_five_coefficients_uses_the_four() -> None:
    """Some drivers pad D; the equidistant model has four coefficients."""
    four = CameraModel.from_camera_info(_info("equidistant", COEFFICIENTS["equidistant"], R, P))
    five = CameraModel.from_camera_info(_info("equidistant", COEFFICIENTS["equidistant"] + [0.0], R, P))
    points = np.array([[600.0, 40], [100, 400], [320, 240]])
    np.testing.assert_array_equal(rectify_points(points, five), rectify_points(points, four))


def test_a_model_built_without_a_distortion_model_is_plumb_bob() -> None:
    camera = CameraModel(640, 480, K, np.zeros(5), np.eye(3), np.hstack([K, np.zeros((3, 1))]))
    assert camera.distortion_model == "plumb_bob"
