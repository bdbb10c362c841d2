"""Camera intrinsics as sensor_msgs/CameraInfo gives them, and keypoints in rectified pixels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = ["CameraModel", "rectify_points"]

# CameraInfo distortion models OpenCV's undistortPoints handles (4, 5, 8, 12 or 14 coefficients).
_PINHOLE_MODELS = ("plumb_bob", "rational_polynomial")
_FISHEYE_MODELS = ("equidistant",)
_ITERATIONS = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-9)


@dataclass(frozen=True)
class CameraModel:
    """K, D, R, P of one camera (the CameraInfo fields), as numpy arrays."""

    width: int
    height: int
    K: np.ndarray  # (3, 3)
    D: np.ndarray  # (n,)
    R: np.ndarray  # (3, 3) rectification rotation
    P: np.ndarray  # (3, 4) projection of the rectified image
    distortion_model: str = "plumb_bob"

    @classmethod
    def from_camera_info(cls, info: Any) -> CameraModel:
        """From a sensor_msgs/CameraInfo (or any object with its fields).

        Raises:
            ValueError: an uncalibrated camera (K all zero), or a distortion model we cannot undo.
        """
        k = np.asarray(info.k, float).reshape(3, 3)
        if not k.any():
            raise ValueError("camera_info has an all-zero K: the camera is not calibrated")
        model = info.distortion_model or "plumb_bob"
        if model not in _PINHOLE_MODELS + _FISHEYE_MODELS:
            raise ValueError(f"distortion model {model!r} is not supported; "
                             f"use one of {', '.join(_PINHOLE_MODELS + _FISHEYE_MODELS)}")
        d = np.asarray(info.d, float)
        r = np.asarray(info.r, float).reshape(3, 3) if np.any(info.r) else np.eye(3)
        p = np.asarray(info.p, float).reshape(3, 4) if np.any(info.p) else np.hstack([k, np.zeros((3, 1))])
        return cls(int(info.width), int(info.height), k, d, r, p, model)

    @property
    def rectified_matrix(self) -> np.ndarray:
        """(3, 3) intrinsics of rectified pixel coordinates: the left 3x3 of P (a contiguous copy, as OpenCV wants)."""
        return np.ascontiguousarray(self.P[:, :3])


def rectify_points(points: np.ndarray, camera: CameraModel) -> np.ndarray:
    """Pixel positions (N, 2) in the raw image -> positions in the rectified image (undistorted, R, P)."""
    if len(points) == 0:
        return np.zeros((0, 2), np.float32)
    raw = np.ascontiguousarray(points, np.float64).reshape(-1, 1, 2)
    if camera.distortion_model in _FISHEYE_MODELS:
        rectified = cv2.fisheye.undistortPoints(raw, camera.K, camera.D[:4], R=camera.R, P=camera.P)
    else:
        # More iterations than undistortPoints' default 5: those leave ~0.1 px near the corners of a wide lens.
        rectified = cv2.undistortPointsIter(raw, camera.K, camera.D, camera.R, camera.P, _ITERATIONS)
    return rectified.reshape(-1, 2).astype(np.float32)
