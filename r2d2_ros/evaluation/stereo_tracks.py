"""A front end's left-camera tracks paired with the right camera, as the stereo back end takes them, and
the trajectory the back end makes of them.

Each front end pairs its points as it would in a stereo VO stack: R2D2 and ORB by descriptor among
the right camera's detections on the same rectified row (the node's ``stereo_ids``,
:func:`~r2d2_ros.tracking.stereo.stereo_matches`), KLT by flowing each left point into the right
image (VINS-Fusion's stereo tracking), with the same row test.
"""
from __future__ import annotations

import numpy as np

from ..features import Features
from ..sequences import Sequence
from ..tracking import CameraModel, rectify_points
from ..tracking.optical_flow import flow_points
from ..tracking.stereo import StereoConfig, StereoView, stereo_matches
from .cache import FeatureCache
from .methods import Method
from .stereo_vo import StereoFrame, StereoRig, stereo_odometry
from .tracking import TrackedFrame, camera_model, grey_frame

__all__ = ["descriptor_stereo", "flow_stereo", "paired_share", "stereo_trajectory"]


def _stereo_frame(frame: TrackedFrame, right_index: np.ndarray, right_rectified: np.ndarray) -> StereoFrame:
    right_x = np.full(len(frame.rectified), np.nan)
    right_x[right_index[:, 0]] = right_rectified[right_index[:, 1], 0]
    return StereoFrame(frame.tracks.ids, frame.rectified, right_x)


def descriptor_stereo(frame: TrackedFrame, right: Features, left_camera: CameraModel, right_camera: CameraModel,
                      config: StereoConfig = StereoConfig()) -> StereoFrame:
    """The frame's tracked points with the right detection each pairs with by descriptor (same rectified row
    within ``config.row_tolerance_px``, mutual nearest neighbours), as the node's stereo ids pair them.

    Raises:
        ValueError: the frame carries no descriptors (KLT's points have none).
    """
    if frame.descriptors is None:
        raise ValueError("descriptor stereo needs the tracked points' descriptors")
    right_raw = right.keypoints[:, :2].float().numpy()
    left_view = StereoView(frame.rectified, frame.descriptors, left_camera, rectified=True)
    right_view = StereoView(right_raw, right.descriptors, right_camera, rectified=False)
    matches = stereo_matches(left_view, right_view, config)
    if matches.skipped:
        raise ValueError(f"no stereo pairing: {matches.skipped}")
    return _stereo_frame(frame, matches.pairs, rectify_points(right_raw, right_camera))


def flow_stereo(frame: TrackedFrame, left_image: np.ndarray, right_image: np.ndarray, right_camera: CameraModel,
                config: StereoConfig = StereoConfig()) -> StereoFrame:
    """The frame's tracked points flowed into the right image (pyramidal LK with the forward-backward check,
    as VINS-Fusion pairs its stereo points), kept where the rectified row agrees within
    ``config.row_tolerance_px`` and the disparity is in [0, ``config.max_disparity_px``]."""
    right_raw, followed = flow_points(left_image, right_image, frame.raw.astype(np.float32))
    right_rectified = rectify_points(right_raw, right_camera)
    disparity = frame.rectified[:, 0] - right_rectified[:, 0]
    row_gap = np.abs(frame.rectified[:, 1] - right_rectified[:, 1])
    paired = np.flatnonzero(followed & (row_gap <= config.row_tolerance_px) & (disparity >= 0)
                            & (disparity <= config.max_disparity_px))
    return _stereo_frame(frame, np.column_stack([paired, paired]), right_rectified)


def stereo_trajectory(left: Sequence, right: Sequence, frames: list[TrackedFrame], pairing: Method | None,
                       cache: FeatureCache) -> tuple[np.ndarray, float]:
    """(N, 4, 4) the trajectory the stereo back end makes of a front end's tracks, paired as that front end
    pairs them (by descriptor with ``pairing``'s right-camera features, or by flow: None), and the share
    of the frames' points it paired, averaged over frames (:func:`paired_share`).

    Raises:
        ValueError: a camera without its rectified projection, or the left sequence without poses.
    """
    if left.poses is None:
        raise ValueError(f"{left.name}: the trajectory starts at the first ground-truth pose, and there is none")
    rig = StereoRig.from_projections(_projection(left), _projection(right))
    left_camera, right_camera = camera_model(left), camera_model(right)
    stereo = [descriptor_stereo(frame, cache.features(pairing, right_path), left_camera, right_camera)
              if pairing is not None else
              flow_stereo(frame, grey_frame(left_path), grey_frame(right_path), right_camera)
              for frame, left_path, right_path in zip(frames, left.frames, right.frames)]
    return stereo_odometry(stereo, rig, left.poses[0]), paired_share(stereo)


def _projection(sequence: Sequence) -> np.ndarray:
    if sequence.calibration is None or sequence.calibration.P is None:
        raise ValueError(f"{sequence.name}: the stereo back end needs each camera's rectified projection P")
    return sequence.calibration.P


def paired_share(stereo: list[StereoFrame]) -> float:
    """The share of each frame's points the back end can use in stereo, averaged over frames (a frame without
    points pairs none: 0), to three decimals."""
    return round(float(np.mean([frame.stereo().mean() if len(frame.ids) else 0.0 for frame in stereo])), 3)
