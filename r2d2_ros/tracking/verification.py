"""Geometric verification of frame-to-frame matches: RANSAC on the epipolar geometry."""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["epipolar_inliers", "MIN_MATCHES"]

MIN_MATCHES = 8  # fewest correspondences the eight-point (or five-point) RANSAC works with


def epipolar_inliers(points1: np.ndarray, points2: np.ndarray, camera_matrix: np.ndarray | None = None,
                     threshold_px: float = 1.0, confidence: float = 0.999) -> np.ndarray:
    """Which correspondences agree with one rigid camera motion.

    RANSAC on the essential matrix when the intrinsics are known (points in pixels of a pinhole
    camera, i.e. undistorted), else on the fundamental matrix.

    Args:
        points1, points2: (K, 2) matched pixel positions in the previous and the current frame.
        camera_matrix: (3, 3) K, or None.
        threshold_px: largest distance to the epipolar line of an inlier.

    Returns:
        (K,) bool; all False with fewer than :data:`MIN_MATCHES` matches or when no model is found
        (nothing is accepted unverified).
    """
    inliers = np.zeros(len(points1), bool)
    if len(points1) < MIN_MATCHES:
        return inliers
    points1, points2 = (np.ascontiguousarray(p, np.float64) for p in (points1, points2))
    if camera_matrix is not None:
        model, mask = cv2.findEssentialMat(points1, points2, camera_matrix, cv2.RANSAC, confidence, threshold_px)
    else:
        model, mask = cv2.findFundamentalMat(points1, points2, cv2.FM_RANSAC, threshold_px, confidence)
    if model is None or mask is None or model.shape[0] != 3:  # degenerate, or several solutions stacked
        return inliers
    return mask.ravel().astype(bool)
