"""Geometric verification of frame-to-frame matches: LO-RANSAC on the epipolar geometry.

The estimator is OpenCV's LO-RANSAC (``cv2.USAC_DEFAULT``): it refits each better model on its
inliers, while plain ``cv2.RANSAC`` keeps the model of the best minimal sample. On KITTI that
minimal-sample model's translation direction moves by about 0.5 degrees from one ordering of the
same matches to the next, which decides both which matches count as inliers and the relative pose.
Thresholds are Sampson distances in pixels (the first-order distance of a match to the epipolar
geometry, about its distance to the epipolar line over sqrt 2), as :func:`sampson_errors` computes them.
"""
from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

__all__ = ["relative_pose", "epipolar_inliers", "epipolar_model", "sampson_errors", "MIN_MATCHES", "ESTIMATORS",
           "Estimator"]

MIN_MATCHES = 8  # fewest correspondences the eight-point (or five-point) RANSAC works with

Estimator = Literal["lo-ransac", "ransac"]
# OpenCV's robust estimators by name; "ransac" (no refit) only to reproduce figures measured with it.
ESTIMATORS: dict[Estimator, int] = {"lo-ransac": cv2.USAC_DEFAULT, "ransac": cv2.RANSAC}


def _float64(array: np.ndarray) -> np.ndarray:
    # USAC returns no model for a non-contiguous camera matrix (a slice of P, say), plain RANSAC does.
    return np.ascontiguousarray(array, np.float64)


def _essential_matrix(points1: np.ndarray, points2: np.ndarray, camera_matrix: np.ndarray, threshold_px: float,
                      confidence: float, estimator: Estimator) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``cv2.findEssentialMat``'s model (one (3, 3), several stacked, or None) and (K, 1) uint8 inlier mask."""
    return cv2.findEssentialMat(points1, points2, camera_matrix, ESTIMATORS[estimator], confidence, threshold_px)


def relative_pose(points1: np.ndarray, points2: np.ndarray, camera_matrix: np.ndarray, threshold_px: float = 1.0,
                  confidence: float = 0.999, estimator: Estimator = "lo-ransac"
                  ) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The camera motion that matched pixel positions give: rotation, unit translation and inliers.

    Args:
        points1, points2: (K, 2) matched pixel positions (undistorted) in two frames.
        camera_matrix: (3, 3) K.
        threshold_px: largest Sampson distance of an inlier.
        estimator: a key of :data:`ESTIMATORS`.

    Returns:
        (R, t, inliers) with x2 = R x1 + t (t of unit length, as ``cv2.recoverPose`` gives it), or None
        with fewer than :data:`MIN_MATCHES` matches or when no single model is found.

    Raises:
        ValueError: ``estimator`` is not a key of :data:`ESTIMATORS`.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; use one of {', '.join(ESTIMATORS)}")
    if len(points1) < MIN_MATCHES:
        return None
    points1, points2, camera_matrix = _float64(points1), _float64(points2), _float64(camera_matrix)
    essential, mask = _essential_matrix(points1, points2, camera_matrix, threshold_px, confidence, estimator)
    if essential is None or essential.shape != (3, 3):
        return None
    inliers, rotation, translation, _ = cv2.recoverPose(essential, points1, points2, camera_matrix, mask=mask)
    return rotation, translation, int(inliers)


def epipolar_model(points1: np.ndarray, points2: np.ndarray, camera_matrix: np.ndarray | None = None,
                   threshold_px: float = 1.0, confidence: float = 0.999) -> tuple[np.ndarray, np.ndarray | None]:
    """Which correspondences agree with one rigid camera motion, and that motion's fundamental matrix.

    LO-RANSAC on the essential matrix when the intrinsics are known (points in pixels of a pinhole
    camera, i.e. undistorted), else on the fundamental matrix.

    Args:
        points1, points2: (K, 2) matched pixel positions in the previous and the current frame.
        camera_matrix: (3, 3) K, or None.
        threshold_px: largest Sampson distance of an inlier.

    Returns:
        (K,) bool inliers, and the (3, 3) fundamental matrix in pixels (from the essential matrix
        when K is given); all False and None with fewer than :data:`MIN_MATCHES` matches or when no
        model is found (nothing is accepted unverified).
    """
    inliers = np.zeros(len(points1), bool)
    if len(points1) < MIN_MATCHES:
        return inliers, None
    points1, points2 = _float64(points1), _float64(points2)
    if camera_matrix is not None:
        model, mask = _essential_matrix(points1, points2, _float64(camera_matrix), threshold_px, confidence,
                                        "lo-ransac")
    else:
        model, mask = cv2.findFundamentalMat(points1, points2, ESTIMATORS["lo-ransac"], threshold_px, confidence)
    if model is None or mask is None or model.shape[0] != 3:  # degenerate, or several solutions stacked
        return inliers, None
    if camera_matrix is not None:
        inverse = np.linalg.inv(camera_matrix)
        model = inverse.T @ model @ inverse
    return mask.ravel().astype(bool), model


def epipolar_inliers(points1: np.ndarray, points2: np.ndarray, camera_matrix: np.ndarray | None = None,
                     threshold_px: float = 1.0, confidence: float = 0.999) -> np.ndarray:
    """The inliers of :func:`epipolar_model`, (K,) bool."""
    return epipolar_model(points1, points2, camera_matrix, threshold_px, confidence)[0]


def sampson_errors(points1: np.ndarray, points2: np.ndarray, fundamental: np.ndarray) -> np.ndarray:
    """First-order geometric distance (pixels) of correspondences (K, 2) to the epipolar geometry ``fundamental``."""
    x1 = np.column_stack([points1, np.ones(len(points1))])
    x2 = np.column_stack([points2, np.ones(len(points2))])
    line2, line1 = x1 @ fundamental.T, x2 @ fundamental
    numerator = np.einsum("ij,ij->i", x2, line2) ** 2
    denominator = line2[:, 0] ** 2 + line2[:, 1] ** 2 + line1[:, 0] ** 2 + line1[:, 1] ** 2
    return np.sqrt(numerator / np.maximum(denominator, 1e-12))
