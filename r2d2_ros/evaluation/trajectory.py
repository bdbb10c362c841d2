"""Trajectory errors against ground truth with ``evo`` (APE and RPE, as evo_ape and evo_rpe compute them).

A stereo trajectory is metric and starts at the ground truth's first pose, so it is aligned by that
pose only (``evo_ape --align_origin``): its error is the drift from the start. Umeyama's alignment
(``-a``) would hide part of the drift, and is ill-posed on a nearly straight drive (it cannot tell
the rotation about the direction of travel).
"""
from __future__ import annotations

import numpy as np
from evo.core import metrics
from evo.core.trajectory import PoseTrajectory3D

__all__ = ["score_trajectory", "aligned_to_truth"]


def _homogeneous(poses: np.ndarray) -> np.ndarray:
    poses = np.asarray(poses, float)
    if poses.shape[1:] == (4, 4):
        return poses
    bottom = np.broadcast_to(np.array([0.0, 0, 0, 1]), (len(poses), 1, 4))
    return np.concatenate([poses, bottom], axis=1)


def _aligned(estimate: np.ndarray, truth: np.ndarray, times_s: np.ndarray
             ) -> tuple[PoseTrajectory3D, PoseTrajectory3D]:
    if len(estimate) != len(truth) or len(truth) != len(times_s) or len(truth) < 2:
        raise ValueError(f"need the same N >= 2 poses and times, got {len(estimate)}, {len(truth)}, {len(times_s)}")
    reference = PoseTrajectory3D(poses_se3=list(_homogeneous(truth)), timestamps=np.asarray(times_s, float))
    estimated = PoseTrajectory3D(poses_se3=list(_homogeneous(estimate)), timestamps=np.asarray(times_s, float))
    estimated.align_origin(reference)
    return reference, estimated


def score_trajectory(estimate: np.ndarray, truth: np.ndarray, times_s: np.ndarray) -> dict[str, float]:
    """APE and RPE of an estimated trajectory, its first pose aligned to the ground truth's.

    Args:
        estimate, truth: (N, 3, 4) or (N, 4, 4) camera-to-world poses of the same N frames.
        times_s: (N,) the frames' times, seconds.

    Returns:
        ``ape_rmse_m``: RMSE of the positions; ``rpe_translation_rmse_m`` and ``rpe_rotation_rmse_deg``:
        RMSE of the relative motion's error from one frame to the next; ``length_m``: the ground truth's
        path length (what the errors compare with).

    Raises:
        ValueError: the trajectories and times differ in length, or have fewer than two poses.
    """
    reference, estimated = _aligned(estimate, truth, times_s)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((reference, estimated))
    errors = {"ape_rmse_m": ape.get_statistic(metrics.StatisticsType.rmse)}
    for name, relation in (("rpe_translation_rmse_m", metrics.PoseRelation.translation_part),
                           ("rpe_rotation_rmse_deg", metrics.PoseRelation.rotation_angle_deg)):
        rpe = metrics.RPE(relation, delta=1, delta_unit=metrics.Unit.frames)
        rpe.process_data((reference, estimated))
        errors[name] = rpe.get_statistic(metrics.StatisticsType.rmse)
    errors["length_m"] = float(reference.path_length)
    return {name: round(float(value), 4) for name, value in errors.items()}


def aligned_to_truth(estimate: np.ndarray, truth: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """(N, 4, 4) the estimated poses aligned to the ground truth as :func:`score_trajectory` aligns them."""
    return np.array(_aligned(estimate, truth, times_s)[1].poses_se3)
