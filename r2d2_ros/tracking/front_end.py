"""What a camera front end does after extraction: rectify keypoints and track them (ROS-free).

The node keeps one per camera and hands it each frame's features with the camera model that
belongs to that frame (or None when the keypoints stay in raw pixels). The tracker starts over
whenever its earlier tracks would no longer describe the same points in the same coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from ..features import Features
from .flow_tracker import FlowTracker
from .rectification import CameraModel, rectify_points
from .tracker import FeatureTracker, TrackerConfig
from .tracks import TrackIdSequence, Tracks

__all__ = ["FrontEndResult", "TrackingFrontEnd"]


@dataclass(frozen=True)
class FrontEndResult:
    """Features in the published coordinates, their tracks (None when tracking is off), and whether rectified."""

    features: Features
    tracks: Tracks | None
    rectified: bool
    kept: np.ndarray | None = None  # indices of the extracted keypoints the tracker kept; None: all of them
    restart: str = ""  # why the tracker started over at this frame ("" when it did not)
    image_features: Features | None = None  # the published points in image pixels, when not a subset of the
    # detections (flow carries tracked points to positions no detection has); None: the detections (or ``kept``)


def _calibration(camera: CameraModel | None) -> tuple | None:
    """What identifies a calibration (CameraModel holds arrays, which do not compare as a whole)."""
    if camera is None:
        return None
    return (camera.width, camera.height, camera.distortion_model,
            *(np.ascontiguousarray(matrix, np.float64).tobytes() for matrix in (camera.K, camera.D, camera.R, camera.P)))


class TrackingFrontEnd:
    """The feature tracker of one camera and what its tracks were made under.

    Args:
        ids: where new track ids come from; a node gives all its cameras' front ends one sequence.
    """

    def __init__(self, ids: TrackIdSequence | None = None) -> None:
        self._ids = ids if ids is not None else TrackIdSequence()
        self._tracker: FeatureTracker | FlowTracker | None = None
        self._image_size: tuple[int, int] | None = None
        self._calibration: tuple | None = None
        self._rectified = False
        self._stamp_ns: int | None = None

    def _restart_reason(self, features: Features, camera: CameraModel | None, config: TrackerConfig,
                        stamp_ns: int | None) -> str:
        """Why the current tracks cannot go on into this frame ("" when they can)."""
        assert self._tracker is not None
        if stamp_ns is not None and self._stamp_ns is not None and stamp_ns < self._stamp_ns:
            return "stamps jumped back"
        if (camera is not None) != self._rectified:
            return "rectification switched " + ("on" if camera is not None else "off")
        if _calibration(camera) != self._calibration:
            return "calibration changed"
        if features.image_size != self._image_size:
            return "image size changed"
        if self._tracker.config != config:
            return "tracking settings changed"
        return ""

    def process(self, features: Features, camera: CameraModel | None, track: bool, config: TrackerConfig,
                stamp_ns: int | None = None, image: np.ndarray | None = None) -> FrontEndResult:
        """Rectifies (with ``camera``, the model of this frame; None = raw pixels) and tracks (when asked).

        Tracking starts over (``restart`` says why) on a stamp earlier than the previous frame's, a
        rectification switched on or off, another calibration, image size or tracker settings. The
        descriptor mode matches detections frame to frame; the flow mode (``config.mode``) carries
        tracked points by optical flow over ``image`` (the frame, RGB or grey, needed then). Both verify
        with the essential matrix when the keypoints are rectified, else with the fundamental matrix.
        With ``config.max_points`` the result keeps only the points the tracker chose.
        """
        if not track:
            self._tracker = None
            return FrontEndResult(self._rectified_features(features, camera), None, camera is not None)
        restart = ""
        if self._tracker is not None:
            restart = self._restart_reason(features, camera, config, stamp_ns)
        if self._tracker is None or restart:
            self._tracker = (FlowTracker if config.mode == "flow" else FeatureTracker)(config, self._ids)
        self._image_size, self._calibration, self._rectified = features.image_size, _calibration(camera), camera is not None
        self._stamp_ns = stamp_ns
        if isinstance(self._tracker, FlowTracker):
            if image is None:
                raise ValueError("flow tracking needs the frame's image")
            grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
            carried, tracks = self._tracker.update(features, grey, camera)
            carried = replace(carried, maps=features.maps)
            return FrontEndResult(self._rectified_features(carried, camera), tracks, camera is not None,
                                  restart=restart, image_features=carried)
        features = self._rectified_features(features, camera)
        kept, tracks = self._tracker.update(features, camera.rectified_matrix if camera is not None else None)
        if len(kept) == len(features):
            return FrontEndResult(features, tracks, camera is not None, restart=restart)
        return FrontEndResult(features.select(kept), tracks, camera is not None, kept, restart)

    @staticmethod
    def _rectified_features(features: Features, camera: CameraModel | None) -> Features:
        """``features`` with x, y in the rectified pixels of ``camera`` (as they are when None)."""
        if camera is None:
            return features
        keypoints = features.keypoints.clone()
        rectified = rectify_points(keypoints[:, :2].float().cpu().numpy(), camera)
        keypoints[:, :2] = torch.from_numpy(rectified).to(keypoints.device, keypoints.dtype)
        return Features(keypoints, features.descriptors, features.scores, features.image_size, features.maps)

    def adopt_ids(self, result: FrontEndResult, indices: np.ndarray, ids: np.ndarray) -> FrontEndResult:
        """``result`` (this front end's latest) with its points ``indices`` renamed to ``ids`` in the tracker, for good.

        Raises:
            ValueError: tracking is off, or an id already names another live track.
        """
        if self._tracker is None or result.tracks is None:
            raise ValueError("ids can only be adopted by a tracking front end")
        return replace(result, tracks=self._tracker.book.adopt(indices, ids))

    def trails(self) -> list:
        """Recent positions of the live tracks (for the overlay), empty when tracking is off."""
        return self._tracker.book.trails() if self._tracker is not None else []
