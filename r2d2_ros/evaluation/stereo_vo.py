"""Sliding-window stereo visual odometry on GTSAM smart factors: one back end for every front end's tracks.

A front end's value to a VO stack is the trajectory its tracks give, so every front end (R2D2 in each
tracking mode, KLT, ORB) feeds the same established back end: GTSAM's stereo smart factors
(``SmartStereoProjectionPoseFactor``, one per track, its landmark eliminated by a Schur complement
as VINS-style back ends do) over a sliding window of camera poses, optimised by Levenberg-Marquardt.
Only the tracks differ between the runs, so the trajectories' errors compare the front ends.

Per frame: the new pose starts where PnP (RANSAC) puts it against the previous frame's stereo points
(else at a constant velocity); then the window's last :attr:`StereoVOConfig.window` poses are
optimised with every track seen in stereo at least twice in the window, the oldest pose held by a
tight prior at its estimate (the window's gauge; poses that leave the window are final). A track
whose reprojection errors after triangulation exceed :attr:`StereoVOConfig.outlier_px` is dropped
by its factor (GTSAM's dynamic outlier rejection), so one bad track does not bend the trajectory.

Evaluation code, not part of the node: GTSAM is imported here only.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import gtsam
import gtsam_unstable
import numpy as np

__all__ = ["StereoRig", "StereoFrame", "StereoVOConfig", "stereo_odometry"]

# Smallest disparity a stereo observation may have: at one pixel a KITTI point is ~380 m away, where a
# pixel of noise moves it by hundreds of metres; such points tell nothing about translation.
MIN_DISPARITY_PX = 1.0
# Correspondences PnP needs before its pose is trusted as the initial guess (six for a stable solution).
MIN_PNP_POINTS = 6
# Prior sigmas that hold the window's oldest pose (rad, rad, rad, m, m, m): tight, it is already final.
ANCHOR_SIGMAS = np.array([1e-4, 1e-4, 1e-4, 1e-3, 1e-3, 1e-3])


@dataclass(frozen=True)
class StereoRig:
    """A rectified stereo pair: the shared intrinsics (pixels) and the baseline (metres)."""

    fx: float
    fy: float
    cx: float
    cy: float
    baseline: float

    def __post_init__(self) -> None:
        if self.fx <= 0 or self.fy <= 0 or self.baseline <= 0:
            raise ValueError(f"need positive focal lengths and baseline: {self}")

    @classmethod
    def from_projections(cls, left: np.ndarray, right: np.ndarray) -> StereoRig:
        """The rig of two rectified 3x4 projection matrices (KITTI's P0, P1; right[0, 3] = -fx * baseline)."""
        return cls(float(left[0, 0]), float(left[1, 1]), float(left[0, 2]), float(left[1, 2]),
                   float(-(right[0, 3] - left[0, 3]) / right[0, 0]))

    @property
    def camera_matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]])

    def calibration(self) -> gtsam.Cal3_S2Stereo:
        return gtsam.Cal3_S2Stereo(self.fx, self.fy, 0.0, self.cx, self.cy, self.baseline)

    def points_in_camera(self, left: np.ndarray, right_x: np.ndarray) -> np.ndarray:
        """(N, 3) left-camera coordinates (metres) of stereo observations (rectified pixels)."""
        depth = self.fx * self.baseline / (left[:, 0] - right_x)
        return np.column_stack([(left[:, 0] - self.cx) * depth / self.fx, (left[:, 1] - self.cy) * depth / self.fy,
                                depth])


@dataclass(frozen=True)
class StereoFrame:
    """One frame's tracked points as the back end takes them, in rectified pixels."""

    ids: np.ndarray  # (N,) int64 track ids, distinct
    left: np.ndarray  # (N, 2) x, y in the left image
    right_x: np.ndarray  # (N,) x in the right image (same row); NaN where the point has no stereo match

    def stereo(self) -> np.ndarray:
        """(N,) bool: the observations with a usable stereo match (disparity at least MIN_DISPARITY_PX)."""
        with np.errstate(invalid="ignore"):
            return np.isfinite(self.right_x) & (self.left[:, 0] - self.right_x >= MIN_DISPARITY_PX)


@dataclass(frozen=True)
class StereoVOConfig:
    """The back end's settings; the same for every front end it compares."""

    window: int = 10  # poses optimised together (1 s at KITTI's 10 Hz)
    pixel_sigma: float = 1.0  # standard deviation of a measured position, pixels
    outlier_px: float = 3.0  # a track whose triangulated point reprojects farther than this is left out
    max_iterations: int = 20  # Levenberg-Marquardt iterations per window

    def __post_init__(self) -> None:
        if self.window < 2 or self.pixel_sigma <= 0 or self.outlier_px <= 0 or self.max_iterations < 1:
            raise ValueError(f"need window >= 2 and positive sigma, outlier threshold and iterations: {self}")


def _smart_factor_parameters(config: StereoVOConfig) -> gtsam.SmartProjectionParams:
    parameters = gtsam.SmartProjectionParams()
    parameters.setLinearizationMode(gtsam.LinearizationMode.HESSIAN)
    # A track that cannot be triangulated (too little parallax, an outlier) adds nothing, not an error.
    parameters.setDegeneracyMode(gtsam.DegeneracyMode.ZERO_ON_DEGENERACY)
    parameters.setDynamicOutlierRejectionThreshold(config.outlier_px)
    return parameters


def _initial_pose(rig: StereoRig, previous: StereoFrame, previous_pose: gtsam.Pose3, frame: StereoFrame,
                  velocity: gtsam.Pose3) -> gtsam.Pose3:
    """Where the new frame's camera starts: PnP against the previous frame's stereo points, else the
    previous pose moved as the last step moved (constant velocity)."""
    fallback = previous_pose.compose(velocity)
    usable = previous.stereo()
    _, previous_index, index = np.intersect1d(previous.ids[usable], frame.ids, return_indices=True)
    if len(index) < MIN_PNP_POINTS:
        return fallback
    in_camera = rig.points_in_camera(previous.left[usable][previous_index], previous.right_x[usable][previous_index])
    in_world = np.array([previous_pose.transformFrom(point) for point in in_camera])
    found, rotation, translation, inliers = cv2.solvePnPRansac(
        in_world, frame.left[index].astype(np.float64), rig.camera_matrix, None, iterationsCount=200,
        reprojectionError=2.0, flags=cv2.SOLVEPNP_ITERATIVE)
    if not found or inliers is None or len(inliers) < MIN_PNP_POINTS:
        return fallback
    world_to_camera = gtsam.Pose3(gtsam.Rot3(cv2.Rodrigues(rotation)[0]), translation.ravel())
    return world_to_camera.inverse()


def _optimise_window(rig: StereoRig, frames: list[StereoFrame], keys: list[int], estimate: gtsam.Values,
                     config: StereoVOConfig) -> gtsam.Values:
    """The window's poses after Levenberg-Marquardt over its tracks' smart factors."""
    graph = gtsam.NonlinearFactorGraph()
    graph.add(gtsam.PriorFactorPose3(keys[0], estimate.atPose3(keys[0]),
                                     gtsam.noiseModel.Diagonal.Sigmas(ANCHOR_SIGMAS)))
    noise = gtsam.noiseModel.Isotropic.Sigma(3, config.pixel_sigma)
    parameters, calibration = _smart_factor_parameters(config), rig.calibration()
    observations: dict[int, list[tuple[int, gtsam.StereoPoint2]]] = {}
    for key, frame in zip(keys, frames):
        usable = frame.stereo()
        for track_id, (x, y), right_x in zip(frame.ids[usable], frame.left[usable], frame.right_x[usable]):
            observations.setdefault(int(track_id), []).append((key, gtsam.StereoPoint2(x, right_x, y)))
    for seen in observations.values():
        if len(seen) >= 2:  # one view constrains no pose
            factor = gtsam_unstable.SmartStereoProjectionPoseFactor(noise, parameters)
            for key, measured in seen:
                factor.add(measured, key, calibration)
            graph.add(factor)
    values = gtsam.Values()
    for key in keys:
        values.insert(key, estimate.atPose3(key))
    optimiser_parameters = gtsam.LevenbergMarquardtParams()
    optimiser_parameters.setMaxIterations(config.max_iterations)
    return gtsam.LevenbergMarquardtOptimizer(graph, values, optimiser_parameters).optimize()


def stereo_odometry(frames: list[StereoFrame], rig: StereoRig, first_pose: np.ndarray | None = None,
                    config: StereoVOConfig = StereoVOConfig()) -> np.ndarray:
    """The camera's trajectory from a front end's stereo tracks.

    Args:
        frames: every frame's tracked points, in order.
        rig: the stereo pair's intrinsics and baseline.
        first_pose: (3, 4) or (4, 4) camera-to-world pose of the first frame (e.g. the ground truth's, so
            that the trajectories share a frame); default: the identity.
        config: the back end's settings.

    Returns:
        (N, 4, 4) camera-to-world poses (left camera), one per frame.
    """
    start = np.eye(4) if first_pose is None else np.vstack([np.asarray(first_pose, float)[:3], [0, 0, 0, 1]])
    estimate = gtsam.Values()
    estimate.insert(0, gtsam.Pose3(start))
    velocity = gtsam.Pose3()
    for index in range(1, len(frames)):
        previous_pose = estimate.atPose3(index - 1)
        estimate.insert(index, _initial_pose(rig, frames[index - 1], previous_pose, frames[index], velocity))
        keys = list(range(max(0, index - config.window + 1), index + 1))
        optimised = _optimise_window(rig, [frames[key] for key in keys], keys, estimate, config)
        for key in keys[1:]:
            estimate.update(key, optimised.atPose3(key))
        velocity = estimate.atPose3(index - 1).between(estimate.atPose3(index))
    return np.array([estimate.atPose3(index).matrix() for index in range(len(frames))])
