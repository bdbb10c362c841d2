"""Pyramidal Lucas-Kanade flow with a forward-backward check, and how well it can follow a point.

Shared by the flow tracker, its re-identification of lost tracks and the evaluation's KLT baseline, so
that they follow points alike.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["inside_image", "flow_points", "trackability", "LK_PARAMETERS", "FORWARD_BACKWARD_PX", "TRACKABILITY_BLOCK_PX"]

# Pyramidal Lucas-Kanade as VINS-style front ends run it: a 21 px window over 4 levels follows motions
# of tens of pixels (KITTI's road near the car moves 20-40 px a frame).
LK_PARAMETERS = {"winSize": (21, 21), "maxLevel": 3,
                 "criteria": (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01)}
# Largest distance between a point and where its forward-then-backward flow returns: beyond it the
# flow is ambiguous (an edge, repeated texture) or lost (occlusion).
FORWARD_BACKWARD_PX = 0.5
# Block of the corner response that ranks new points: the flow's window, since Lucas-Kanade solves with
# the gradients of that window and follows a point as well as their smaller eigenvalue is large (Shi and
# Tomasi's argument). goodFeaturesToTrack's 3 px block ranks worse on KITTI (docs/tracking_flow.md).
TRACKABILITY_BLOCK_PX = LK_PARAMETERS["winSize"][0]


def flow_points(previous_image: np.ndarray, image: np.ndarray, points: np.ndarray,
                forward_backward_px: float = FORWARD_BACKWARD_PX) -> tuple[np.ndarray, np.ndarray]:
    """Points of ``previous_image`` followed into ``image`` by pyramidal Lucas-Kanade flow.

    Args:
        previous_image, image: grey (H, W) uint8 images of the same size.
        points: (N, 2) x, y in ``previous_image``.
        forward_backward_px: largest distance between a point and its flow there and back.

    Returns:
        (N, 2) float32 positions in ``image``, and (N,) bool: found both ways, back within
        ``forward_backward_px`` and inside ``image``.
    """
    if len(points) == 0:
        return np.zeros((0, 2), np.float32), np.zeros(0, bool)
    start = np.ascontiguousarray(points, np.float32).reshape(-1, 1, 2)
    forward, status, _ = cv2.calcOpticalFlowPyrLK(previous_image, image, start, None, **LK_PARAMETERS)
    backward, back_status, _ = cv2.calcOpticalFlowPyrLK(image, previous_image, forward, None, **LK_PARAMETERS)
    forward, backward, start = forward.reshape(-1, 2), backward.reshape(-1, 2), start.reshape(-1, 2)
    returned = np.linalg.norm(backward - start, axis=1) <= forward_backward_px
    return forward, (status.ravel() == 1) & (back_status.ravel() == 1) & returned & inside_image(forward, image.shape)


def inside_image(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(N,) bool: each x, y lies on the image of ``shape`` (H, W, ...), pixel centres at integers: in
    [0, W) x [0, H), as a point flow carried off the image's edge does not."""
    height, width = shape[:2]
    return (points >= 0).all(axis=1) & (points[:, 0] < width) & (points[:, 1] < height)


def trackability(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """How well flow can follow each point: the smaller eigenvalue of the image's gradient matrix over a
    :data:`TRACKABILITY_BLOCK_PX` block around its pixel (``cv2.cornerMinEigenVal``), (N,) float32.

    Args:
        image: grey (H, W) uint8.
        points: (N, 2) x, y in ``image``.
    """
    response = cv2.cornerMinEigenVal(image, TRACKABILITY_BLOCK_PX)
    height, width = image.shape
    columns = np.clip(np.rint(points[:, 0]).astype(np.int64), 0, width - 1)
    rows = np.clip(np.rint(points[:, 1]).astype(np.int64), 0, height - 1)
    return response[rows, columns]
