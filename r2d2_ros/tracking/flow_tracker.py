"""Flow-assisted R2D2 tracking: tracked points carried by pyramidal Lucas-Kanade flow, detections verify them.

The descriptor tracker (:class:`~r2d2_ros.tracking.FeatureTracker`) keeps a point only while R2D2
detects it again within about a pixel, frame after frame; on KITTI 85-88% survive a step, about half
five steps. Classic visual-odometry front ends instead carry each tracked point to the next frame by
optical flow, which follows a point whether or not a detector finds it again. This tracker does that,
and uses R2D2 where flow is blind:

* a flowed point must come back to where it started when flowed backwards (forward-backward check);
* the nearest detection of the new frame within :data:`VERIFY_RADIUS_PX` of a flowed point must carry
  a descriptor like the track's. R2D2's descriptors of detections a few pixels apart are nearly the
  same, so a dissimilar one there means the patch changed (occlusion, a flow that slid onto another
  object) and the track ends. A flowed point with no detection that near goes on unconfirmed: the
  detector often misses a point flow follows well (the far field on KITTI);
* the flowed points must agree with one rigid motion (LO-RANSAC on the epipolar geometry, as the
  descriptor tracker verifies).

The features carry no dense descriptor map (``Features.maps`` holds heatmaps only), so a flowed
point cannot be described where it landed; the nearest detection's descriptor stands in for it. A
confirmed point takes that detection's descriptor, scale and score (its appearance as now seen); an
unconfirmed one keeps its track's. The position is always the flow's: sub-pixel and relative to the
previous frame, where a re-detection is off by the detector's jitter.

A track that flow lost is searched for in the next frames by its descriptor (:mod:`.reidentification`)
and goes on under its id when found: a point hidden for a frame or two keeps its track.

New tracks start at the detections farther than :data:`NEW_POINT_SPACING_PX` from the tracked points
and from each other that flow follows best: ranked by their Shi-Tomasi response over the flow's window
(:func:`~r2d2_ros.tracking.optical_flow.trackability`), not by R2D2's score. R2D2's best detections
include fast, blurred road and grass near the car that flow loses at once.

Flow works on the image, so keypoints and image are in raw pixels; with a camera model the
verification runs on rectified pixels with the essential matrix.
"""
from __future__ import annotations

import numpy as np
import torch

from ..features import Features
from .optical_flow import FORWARD_BACKWARD_PX, LK_PARAMETERS, flow_points, trackability
from .reidentification import REIDENTIFY_FRAMES, LostTracks
from .rectification import CameraModel, rectify_points
from .tracker import NEW_POINT_SPACING_PX, TrackerConfig, _pixel_distances, _spaced_in_order
from .tracks import TrackBook, TrackIdSequence, Tracks
from .verification import epipolar_model

__all__ = ["FlowTracker", "flow_points", "trackability", "LK_PARAMETERS", "FORWARD_BACKWARD_PX", "VERIFY_RADIUS_PX"]

# Radius around a flowed point within which the nearest detection must describe the same point. About
# the detector's spread around one point (a few pixels between pyramid levels), less than the spacing
# of two tracks, so the nearest detection is this point's if the detector found it.
VERIFY_RADIUS_PX = 2.0


class FlowTracker:
    """Gives each keypoint of a stream of frames a persistent track id, carrying tracked points by flow.

    The counterpart of :class:`~r2d2_ros.tracking.FeatureTracker` (the same ``config``, ``book`` and
    ``reset``), but a frame's points are not a subset of its detections: a tracked point lies where
    the flow took it. So :meth:`update` takes the image and returns the frame's points as
    :class:`Features`. From the config it uses ``max_descriptor_distance`` (the verification against
    the nearest detection and the re-identification), ``ransac_threshold_px``, ``trail_length`` and
    ``max_points`` (0: every detection away from the tracked points starts a track);
    ``guided_radius_px`` is the descriptor mode's only.

    Args:
        ids: where new track ids come from (shared by the trackers of one node); default: its own.
    """

    def __init__(self, config: TrackerConfig = TrackerConfig(mode="flow"), ids: TrackIdSequence | None = None) -> None:
        self.config = config
        self.book = TrackBook(config.trail_length, ids, REIDENTIFY_FRAMES)
        self.reset()

    def reset(self) -> None:
        """Starts over (e.g. the camera changed); ids are never reused."""
        self.book.reset()
        self._previous: Features | None = None  # the points the last frame kept, raw pixels
        self._previous_image: np.ndarray | None = None
        self._previous_lengths = np.zeros(0, np.int32)
        self._lost = LostTracks()
        self._frame = -1  # index of the last frame

    def update(self, features: Features, image: np.ndarray, camera: CameraModel | None = None
               ) -> tuple[Features, Tracks]:
        """Tracks of a new frame.

        Args:
            features: the frame's detections in raw pixels (in any order: new tracks start at the most trackable).
            image: the frame, grey (H, W) uint8, the size ``features.image_size`` gives.
            camera: the camera's model, to verify on rectified pixels with the essential matrix; None:
                the fundamental matrix on raw pixels.

        Returns:
            The frame's points in raw pixels (the tracked ones at their flowed positions, in the order of
            the previous frame, then the lost ones found again at their detections, then the new ones,
            most trackable first) and their tracks.

        Raises:
            ValueError: the image is not grey uint8 of the features' image size.
        """
        if image.dtype != np.uint8 or image.ndim != 2 or image.shape[::-1] != tuple(features.image_size):
            raise ValueError(f"need a grey uint8 image of {features.image_size[0]}x{features.image_size[1]} "
                             f"(width x height), got {image.dtype} {image.shape}")
        detections = features.keypoints[:, :2].float().cpu().numpy()
        self._frame += 1
        previous_ids = self.book.ids  # as a stereo partner may have renamed them since
        tracked, positions, confirming = self._carry(features, detections, image, camera)
        carried = self._moved(self._previous.select(tracked) if self._previous is not None else features.select([]),
                              positions, confirming, features)
        # The points this step lost are searched for from the next frame on: flowed again from the previous
        # frame, they would only repeat the flow that lost them.
        resumed, found = self._reidentify(features, image, detections, previous_ids[tracked], positions, camera)
        if self._previous is not None:
            untracked = np.setdiff1d(np.arange(len(self._previous)), tracked)
            self._lost.lose(previous_ids[untracked], self._previous.select(untracked), self._frame - 1)
        taken = np.vstack([positions, resumed.keypoints[:, :2].float().cpu().numpy()])
        new = self._new_points(detections, taken, image)
        parts = (carried, resumed, features.select(new))
        points = Features(*(torch.cat([getattr(part, name).to(getattr(carried, name).dtype) for part in parts])
                            for name in ("keypoints", "descriptors", "scores")), features.image_size)
        xy = points.keypoints[:, :2].float().cpu().numpy()
        tracks = self.book.update(xy, np.column_stack([tracked, np.arange(len(tracked))]),
                                  np.column_stack([self._lost.ids[found], len(tracked) + np.arange(len(found))]))
        self._lost.remember(self._frame, image, tracks.ids, xy, found)
        self._previous, self._previous_image, self._previous_lengths = points, image, tracks.lengths
        return points, tracks

    @staticmethod
    def _moved(points: Features, positions: np.ndarray, confirming: np.ndarray, features: Features) -> Features:
        """``points`` at the flowed ``positions``; one ``confirming`` (>= 0) takes that detection's
        descriptor, scale and score (its look as now seen)."""
        keypoints = points.keypoints.clone()
        descriptors, scores = points.descriptors.clone(), points.scores.clone()
        confirmed = np.flatnonzero(confirming >= 0)
        keypoints[confirmed] = features.keypoints[confirming[confirmed]].to(keypoints.dtype)
        descriptors[confirmed] = features.descriptors[confirming[confirmed]].to(descriptors.dtype)
        scores[confirmed] = features.scores[confirming[confirmed]].to(scores.dtype)
        keypoints[:, :2] = torch.from_numpy(positions).to(keypoints.device, keypoints.dtype)
        return Features(keypoints, descriptors, scores, features.image_size)

    def _reidentify(self, features: Features, image: np.ndarray, detections: np.ndarray, tracked_ids: np.ndarray,
                    tracked_positions: np.ndarray, camera: CameraModel | None) -> tuple[Features, np.ndarray]:
        """Lost tracks found again: flow follows them from their last sighting (:class:`LostTracks`) and the
        nearest detection within :data:`VERIFY_RADIUS_PX` confirms each by descriptor. Returns them as
        points of this frame and their indices among the lost tracks, most alike first, each farther than
        NEW_POINT_SPACING_PX from those before it, within what ``max_points`` leaves."""
        found = self._lost.search(image, self.book.resumable(self._lost.ids), tracked_ids, tracked_positions, camera,
                                  self.config.ransac_threshold_px)
        if len(found.lost) == 0 or self._lost.points is None:
            return features.select([]), found.lost
        lost = self._lost.points.select(found.lost)
        confirming = self._nearest_detection(found.positions, detections)
        similarity = self._similarity(lost.descriptors, confirming, features)
        confirmed = (confirming >= 0) & self._alike(similarity)
        order = np.flatnonzero(confirmed)[np.argsort(-similarity[confirmed], kind="stable")]
        limit = self.config.max_points - len(tracked_ids) if self.config.max_points else len(order)
        order = order[_spaced_in_order(found.positions[order].tolist(), NEW_POINT_SPACING_PX, limit)]
        return self._moved(lost.select(order), found.positions[order], confirming[order], features), found.lost[order]

    def _carry(self, features: Features, detections: np.ndarray, image: np.ndarray, camera: CameraModel | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The previous points that go on: their indices (K,), flowed positions (K, 2) and the detection
        that confirmed each (K,), -1 where none lay within :data:`VERIFY_RADIUS_PX`."""
        nothing = np.zeros(0, np.int64), np.zeros((0, 2), np.float32), np.zeros(0, np.int64)
        if self._previous is None or self._previous_image is None or len(self._previous) == 0:
            return nothing
        previous = self._previous.keypoints[:, :2].float().cpu().numpy()
        positions, followed = flow_points(self._previous_image, image, previous)
        tracked = np.flatnonzero(followed)
        confirming = self._nearest_detection(positions[tracked], detections)
        alike = self._alike(self._similarity(self._previous.descriptors[torch.from_numpy(tracked)], confirming,
                                             features))
        tracked, confirming = tracked[alike], confirming[alike]
        points1, points2 = previous[tracked], positions[tracked]
        if camera is not None:
            points1, points2 = rectify_points(points1, camera), rectify_points(points2, camera)
        inliers, _ = epipolar_model(points1, points2, camera.rectified_matrix if camera is not None else None,
                                    self.config.ransac_threshold_px)
        tracked, confirming = tracked[inliers], confirming[inliers]
        # Two tracks flowed onto one point would count it twice: the longer-lived one keeps it.
        by_age = np.argsort(-self._previous_lengths[tracked], kind="stable")
        distinct = np.sort(by_age[_spaced_in_order(positions[tracked[by_age]].tolist(), NEW_POINT_SPACING_PX,
                                                   len(tracked))])
        tracked, confirming = tracked[distinct], confirming[distinct]
        return tracked, positions[tracked], confirming

    @staticmethod
    def _nearest_detection(points: np.ndarray, detections: np.ndarray) -> np.ndarray:
        """Index of the detection nearest to each point within :data:`VERIFY_RADIUS_PX`, -1 where none, (K,)."""
        if len(points) == 0 or len(detections) == 0:
            return np.full(len(points), -1, np.int64)
        distance = _pixel_distances(torch.from_numpy(points), torch.from_numpy(detections))
        nearest = distance.min(dim=1)
        return torch.where(nearest.values <= VERIFY_RADIUS_PX, nearest.indices, -1).numpy()

    @staticmethod
    def _similarity(descriptors: torch.Tensor, confirming: np.ndarray, features: Features) -> np.ndarray:
        """(K,) cosine between each track's descriptor and its confirming detection's; 1 where none."""
        similarity = np.ones(len(confirming), np.float32)
        near = np.flatnonzero(confirming >= 0)
        if len(near):
            detections = features.descriptors[torch.from_numpy(confirming[near])].float().cpu()
            similarity[near] = (descriptors[torch.from_numpy(near)].float().cpu() * detections).sum(dim=1).numpy()
        return similarity

    def _alike(self, similarity: np.ndarray) -> np.ndarray:
        """(K,) bool: descriptors this similar (cosine) describe one point, as ``max_descriptor_distance`` says."""
        # Unit descriptors: |a - b| = sqrt(2 - 2 a.b), as the descriptor tracker's limit is stated.
        return np.sqrt(np.clip(2 - 2 * similarity, 0, None)) <= self.config.max_descriptor_distance

    def _new_points(self, detections: np.ndarray, tracked: np.ndarray, image: np.ndarray) -> np.ndarray:
        """Indices of the detections that start tracks, the most trackable first (:func:`trackability`,
        ties in detection order): each farther than NEW_POINT_SPACING_PX from the tracked points and from
        the new ones before it, up to ``max_points`` points in all."""
        others = np.arange(len(detections))
        if len(tracked) and len(others):
            distance = _pixel_distances(torch.from_numpy(detections), torch.from_numpy(tracked))
            others = others[(distance.min(dim=1).values > NEW_POINT_SPACING_PX).numpy()]
        others = others[np.argsort(-trackability(image, detections[others]), kind="stable")]
        limit = self.config.max_points - len(tracked) if self.config.max_points else len(others)
        return others[_spaced_in_order(detections[others].tolist(), NEW_POINT_SPACING_PX, limit)]
