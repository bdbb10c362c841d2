"""What a camera front end does after extraction: rectify keypoints and track them (ROS-free).

The node keeps one per camera: it hands over each camera_info it receives and each frame's
features, and publishes what comes back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..features import Features
from .rectification import CameraModel, rectify_points
from .tracker import FeatureTracker, TrackerConfig
from .tracks import Tracks

__all__ = ["MissingCameraInfo", "FrontEndResult", "TrackingFrontEnd"]


class MissingCameraInfo(ValueError):
    """A frame needs the camera's intrinsics and none have arrived (or they are unusable)."""


@dataclass(frozen=True)
class FrontEndResult:
    """Features in the published coordinates, their tracks (None when tracking is off), and whether rectified."""

    features: Features
    tracks: Tracks | None
    rectified: bool
    kept: np.ndarray | None = None  # indices of the extracted keypoints the tracker kept; None: all of them


class TrackingFrontEnd:
    """Latest intrinsics of one camera, and its feature tracker."""

    def __init__(self) -> None:
        self.camera: CameraModel | None = None
        self.camera_problem = "no camera_info received yet"
        self._tracker: FeatureTracker | None = None
        self._image_size: tuple[int, int] | None = None

    def set_camera_info(self, info: Any) -> None:
        """Takes a sensor_msgs/CameraInfo; an unusable one clears the intrinsics and says why."""
        try:
            self.camera, self.camera_problem = CameraModel.from_camera_info(info), ""
        except ValueError as error:
            self.camera, self.camera_problem = None, str(error)

    def require_camera(self) -> CameraModel:
        """The intrinsics, or :class:`MissingCameraInfo` (frames that need them are dropped, not guessed)."""
        if self.camera is None:
            raise MissingCameraInfo(self.camera_problem)
        return self.camera

    def process(self, features: Features, rectify: bool, track: bool, config: TrackerConfig) -> FrontEndResult:
        """Rectifies (when asked) and tracks (when asked) one frame's features.

        Tracking restarts when it is switched on, when its settings change, or when the image size
        changes (another camera mode); it verifies with the essential matrix when intrinsics are
        known and the keypoints are rectified, else with the fundamental matrix. With
        ``config.max_points`` the result keeps only the points the tracker chose.
        """
        camera = self.require_camera() if rectify else None
        if camera is not None:
            keypoints = features.keypoints.clone()
            rectified = rectify_points(keypoints[:, :2].float().cpu().numpy(), camera)
            keypoints[:, :2] = torch.from_numpy(rectified).to(keypoints.device, keypoints.dtype)
            features = Features(keypoints, features.descriptors, features.scores, features.image_size, features.maps)
        if not track:
            self._tracker = None
            return FrontEndResult(features, None, camera is not None)
        if self._tracker is None or self._tracker.config != config or self._image_size != features.image_size:
            self._tracker, self._image_size = FeatureTracker(config), features.image_size
        kept, tracks = self._tracker.update(features, camera.rectified_matrix if camera is not None else None)
        if len(kept) == len(features):
            return FrontEndResult(features, tracks, camera is not None)
        return FrontEndResult(features.select(kept), tracks, camera is not None, kept)

    def trails(self) -> list:
        """Recent positions of the live tracks (for the overlay), empty when tracking is off."""
        return self._tracker.book.trails() if self._tracker is not None else []
