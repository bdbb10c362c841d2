"""Re-identification of lost flow tracks: a point that flow lost (occluded, blurred, its check failed)
is looked for again in the next few frames, and goes on under its old id when found.

Each frame, a lost track is flowed directly from the image it was last seen in into the new one (a
point hidden in the frames between is visible at both ends), must pass the forward-backward check,
land where no tracked point is, and agree with the camera's motion since then (the epipolar geometry
of the tracks seen both then and now). The flow tracker then asks the frame's detections to confirm it
by descriptor, as it does for its tracked points.

Searching among the detections near where the neighbours' motion predicts the point, taking the most
similar descriptor, re-identified mostly other points on KITTI (docs/tracking_flow.md): R2D2's
descriptors of detections a few pixels apart are nearly the same, and over a few frames the
neighbours' motion misses a lost point (often near the car, at another depth) by several pixels.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from ..features import Features
from ..utils import check_shape
from .optical_flow import flow_points
from .rectification import CameraModel, rectify_points
from .tracker import NEW_POINT_SPACING_PX, _pixel_distances
from .verification import MIN_MATCHES, epipolar_model, sampson_errors

__all__ = ["FoundTracks", "LostTracks", "REIDENTIFY_FRAMES"]

# Frames a lost track may go unseen and still be found again. At KITTI's 10 Hz a pole, a passing car or
# a blurred frame hides a point for a frame or two; the longer it stays hidden, the more its look changes
# with scale and viewpoint (flow and descriptor then fail anyway), while a sliding-window back end (about
# five frames) gains little from a track that comes back after leaving its window.
REIDENTIFY_FRAMES = 3


@dataclass(frozen=True)
class _FramePoints:
    """One frame's image and tracked points: what a track lost after it is flowed from.

    The ids are the frame's own: a track renamed since (a stereo partner's id adopted) matches none of
    them, so it serves as no anchor of the motion since (one fewer, never a wrong one).
    """

    index: int
    image: np.ndarray  # grey (H, W) uint8
    ids: np.ndarray  # (N,) int64
    positions: np.ndarray  # (N, 2) raw pixels


@dataclass(frozen=True)
class FoundTracks:
    """Lost tracks found again in a frame: which (indices into :attr:`LostTracks.points`) and where."""

    lost: np.ndarray  # (R,) int64
    positions: np.ndarray  # (R, 2) float32, raw pixels


class LostTracks:
    """The tracks lost during the last :data:`REIDENTIFY_FRAMES` frames, and the frames they were lost from.

    Frames are numbered by the caller, one after the other. Each frame: :meth:`search` for the tracks lost
    before, :meth:`lose` the previous frame's points that did not go on, then :meth:`remember` the frame
    (which forgets the tracks found and those lost too long ago).

    Attributes:
        ids: (L,) int64, the lost tracks' ids.
        points: the lost tracks as last seen (raw pixels), None before any was lost.
    """

    def __init__(self) -> None:
        self._frames: deque[_FramePoints] = deque(maxlen=REIDENTIFY_FRAMES + 1)
        self.ids = np.zeros(0, np.int64)
        self.points: Features | None = None
        self._last_seen = np.zeros(0, np.int64)  # frame index

    def lose(self, ids: np.ndarray, points: Features, frame: int) -> None:
        """Adds tracks ``ids`` last seen in ``frame`` as ``points``."""
        if self.points is not None:
            points = Features(torch.cat([self.points.keypoints, points.keypoints]),
                              torch.cat([self.points.descriptors, points.descriptors]),
                              torch.cat([self.points.scores, points.scores]), points.image_size)
        self.points = points
        self.ids = np.concatenate([self.ids, ids])
        self._last_seen = np.concatenate([self._last_seen, np.full(len(ids), frame, np.int64)])

    def remember(self, frame: int, image: np.ndarray, ids: np.ndarray, positions: np.ndarray,
                 found: np.ndarray) -> None:
        """Keeps ``frame``'s image and points (ids, raw positions); forgets the ``found`` lost tracks
        (indices) and those the next frame could no longer find (missed more than
        :data:`REIDENTIFY_FRAMES` frames by then).

        Raises:
            ValueError: ``positions`` is not (N, 2) x, y (they are the anchors of a later epipolar fit).
        """
        check_shape(positions, "N 2")
        self._frames.append(_FramePoints(frame, image, ids, positions))
        recent = frame - self._last_seen <= REIDENTIFY_FRAMES
        keep = np.flatnonzero(~np.isin(np.arange(len(self.ids)), found) & recent)
        self.ids, self._last_seen = self.ids[keep], self._last_seen[keep]
        if self.points is not None:
            self.points = self.points.select(keep)

    def search(self, image: np.ndarray, eligible: np.ndarray, tracked_ids: np.ndarray, tracked_positions: np.ndarray,
               camera: CameraModel | None, threshold_px: float) -> FoundTracks:
        """The lost tracks that flow follows from their last sighting into ``image``, at free places, on
        the motion since.

        Args:
            image: the new frame, grey uint8.
            eligible: (L,) bool, which lost tracks may resume (those whose id nothing else took).
            tracked_ids, tracked_positions: the points flow carried into this frame, raw pixels.
            camera: verification on rectified pixels with the essential matrix; None: raw pixels.
            threshold_px: the largest Sampson distance to the motion since the track was lost.
        """
        lost, positions = [np.zeros(0, np.int64)], [np.zeros((0, 2), np.float32)]
        for then in self._frames:
            candidates = np.flatnonzero(eligible & (self._last_seen == then.index))
            if len(candidates) and self.points is not None:
                followed, flowed = self._follow(candidates, then, image, tracked_ids, tracked_positions, camera,
                                                threshold_px)
                lost.append(followed)
                positions.append(flowed)
        return FoundTracks(np.concatenate(lost), np.vstack(positions).astype(np.float32))

    def _follow(self, candidates: np.ndarray, then: _FramePoints, image: np.ndarray, tracked_ids: np.ndarray,
                tracked_positions: np.ndarray, camera: CameraModel | None, threshold_px: float
                ) -> tuple[np.ndarray, np.ndarray]:
        """Which ``candidates`` (lost tracks last seen in ``then``) flow follows into ``image``, and where."""
        assert self.points is not None
        before = self.points.keypoints[torch.from_numpy(candidates), :2].float().cpu().numpy()
        after, followed = flow_points(then.image, image, before)
        if len(tracked_positions):  # a place a tracked point holds is that point's
            distance = _pixel_distances(torch.from_numpy(after), torch.from_numpy(tracked_positions))
            followed &= (distance.min(dim=1).values > NEW_POINT_SPACING_PX).numpy()
        _, then_index, now_index = np.intersect1d(then.ids, tracked_ids, return_indices=True)
        if len(then_index) < MIN_MATCHES or not followed.any():
            return np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
        anchors_then, anchors_now = then.positions[then_index], tracked_positions[now_index]
        _, fundamental = epipolar_model(_rectified(anchors_then, camera), _rectified(anchors_now, camera),
                                        camera.rectified_matrix if camera is not None else None, threshold_px)
        if fundamental is None:  # nothing is accepted unverified
            return np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
        candidates, before, after = candidates[followed], before[followed], after[followed]
        on_line = sampson_errors(_rectified(before, camera), _rectified(after, camera), fundamental) <= threshold_px
        return candidates[on_line], after[on_line]


def _rectified(points: np.ndarray, camera: CameraModel | None) -> np.ndarray:
    """``points`` (raw pixels) in the pixels the verification works in: rectified with a camera model."""
    return points if camera is None else rectify_points(points, camera)
