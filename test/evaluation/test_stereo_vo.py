"""The stereo back end (GTSAM smart factors) and evo's trajectory scores on synthetic tracks with a known
trajectory: ROS-free, no ../shared."""
from __future__ import annotations

import gtsam
import numpy as np
import pytest

from r2d2_ros.evaluation.report import trajectory_table
from r2d2_ros.evaluation.stereo_vo import (MIN_DISPARITY_PX, MIN_PNP_POINTS, StereoFrame, StereoRig, StereoVOConfig,
                                           _initial_pose, _optimise_window, stereo_odometry)
from r2d2_ros.evaluation.trajectory import aligned_to_truth, score_trajectory

# KITTI-like: 0.54 m baseline, a 1200x370 image.
RIG = StereoRig(700.0, 700.0, 600.0, 185.0, 0.54)


def _trajectory(count: int, step_m: float = 1.0, yaw_rad: float = 0.01) -> np.ndarray:
    """(count, 4, 4) camera-to-world poses: forward along z, drifting along x, turning about y."""
    poses = []
    for index in range(count):
        angle = yaw_rad * index
        pose = np.eye(4)
        pose[:3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
        pose[:3, 3] = [0.05 * index, 0.0, step_m * index]
        poses.append(pose)
    return np.array(poses)


def _frames(poses: np.ndarray, noise_px: float = 0.3, outliers: float = 0.0, seed: int = 0) -> list[StereoFrame]:
    """Each pose's stereo observations of 800 fixed points (ids = point indices), with pixel noise and a
    share of ``outliers`` observations moved anywhere in the image."""
    rng = np.random.default_rng(seed)
    world = np.column_stack([rng.uniform(-20, 20, 800), rng.uniform(-3, 3, 800), rng.uniform(5, 80, 800)])
    frames = []
    for pose in poses:
        camera = (np.linalg.inv(pose) @ np.column_stack([world, np.ones(len(world))]).T).T[:, :3]
        x = RIG.fx * camera[:, 0] / camera[:, 2] + RIG.cx
        y = RIG.fy * camera[:, 1] / camera[:, 2] + RIG.cy
        right_x = RIG.fx * (camera[:, 0] - RIG.baseline) / camera[:, 2] + RIG.cx
        ids = np.flatnonzero((camera[:, 2] > 1) & (x > 0) & (x < 1200) & (y > 0) & (y < 370))
        left = np.column_stack([x[ids], y[ids]]) + rng.normal(0, noise_px, (len(ids), 2))
        right_x = right_x[ids] + rng.normal(0, noise_px, len(ids))
        moved = rng.random(len(ids)) < outliers
        left[moved] = rng.uniform([0, 0], [1200, 370], (moved.sum(), 2))
        frames.append(StereoFrame(ids, left, right_x))
    return frames


def _position_errors(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(estimate[:, :3, 3] - truth[:, :3, 3], axis=1)


def test_the_trajectory_of_noisy_stereo_tracks_is_recovered_metric() -> None:
    truth = _trajectory(25)
    estimate = stereo_odometry(_frames(truth), RIG, truth[0])
    # 0.3 px of noise on hundreds of points: centimetres over 24 m; stereo gives the scale.
    assert _position_errors(estimate, truth).max() < 0.05
    rotation_error = [np.degrees(np.arccos(np.clip((np.trace(e[:3, :3].T @ t[:3, :3]) - 1) / 2, -1, 1)))
                      for e, t in zip(estimate, truth)]
    assert max(rotation_error) < 0.1


def test_outlier_tracks_do_not_bend_the_trajectory() -> None:
    """A tenth of the observations anywhere in the image: the smart factors' outlier rejection drops them."""
    truth = _trajectory(20)
    estimate = stereo_odometry(_frames(truth, outliers=0.1), RIG, truth[0])
    assert _position_errors(estimate, truth).max() < 0.1
    without_rejection = stereo_odometry(_frames(truth, outliers=0.1), RIG, truth[0], StereoVOConfig(outlier_px=1e6))
    assert _position_errors(without_rejection, truth).max() > _position_errors(estimate, truth).max()


def test_frames_without_stereo_points_continue_at_constant_velocity() -> None:
    truth = _trajectory(12, yaw_rad=0.0)
    frames = _frames(truth, noise_px=0.0)
    blind = StereoFrame(np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros(0))
    estimate = stereo_odometry([*frames[:10], blind, blind], RIG, truth[0])
    assert _position_errors(estimate[:10], truth[:10]).max() < 0.01
    np.testing.assert_allclose(estimate[11, :3, 3] - estimate[10, :3, 3], estimate[10, :3, 3] - estimate[9, :3, 3],
                               atol=1e-6)


def test_the_first_pose_is_where_the_trajectory_starts() -> None:
    truth = _trajectory(6)
    shifted = truth.copy()
    shifted[:, :3, 3] += [100.0, -2.0, 50.0]
    estimate = stereo_odometry(_frames(truth, noise_px=0.0), RIG, shifted[0][:3])
    np.testing.assert_allclose(estimate[0], shifted[0], atol=1e-9)
    assert _position_errors(estimate, shifted).max() < 0.01


def test_stereo_observations_below_a_pixel_of_disparity_are_not_used() -> None:
    frame = StereoFrame(np.arange(4), np.array([[100.0, 10], [100, 10], [100, 10], [100, 10]]),
                        np.array([99.5, 100 - MIN_DISPARITY_PX, np.nan, 120]))
    np.testing.assert_array_equal(frame.stereo(), [False, True, False, False])


def test_rig_from_kitti_projections() -> None:
    left = np.array([[707.0912, 0, 601.8873, 0], [0, 707.0912, 183.1104, 0], [0, 0, 1, 0]])
    right = left.copy()
    right[0, 3] = -379.8145
    rig = StereoRig.from_projections(left, right)
    assert rig.baseline == pytest.approx(0.5372, abs=1e-4) and (rig.fx, rig.cx, rig.cy) == (707.0912, 601.8873,
                                                                                            183.1104)
    with pytest.raises(ValueError, match="baseline"):
        StereoRig.from_projections(right, left)  # the second camera to the left
    with pytest.raises(ValueError, match="window"):
        StereoVOConfig(window=1)


def test_evo_scores_of_a_trajectory() -> None:
    truth = _trajectory(11, step_m=1.0, yaw_rad=0.0)
    times = np.arange(11) * 0.1
    exact = score_trajectory(truth, truth[:, :3], times)
    assert exact["ape_rmse_m"] == 0 and exact["rpe_translation_rmse_m"] == 0 and exact["length_m"] == pytest.approx(
        np.hypot(10, 0.5))
    # A trajectory in another world frame (rotated and moved): aligned by its first pose, so no error.
    offset = np.eye(4)
    offset[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    offset[:3, 3] = [5, 6, 7]
    moved = score_trajectory(offset @ truth, truth, times)
    assert moved["ape_rmse_m"] < 1e-6 and moved["rpe_translation_rmse_m"] < 1e-6
    # Every step 10% short: the drift grows to a metre over 10 m; each step is 0.1 m off.
    short = truth.copy()
    short[:, :3, 3] *= 0.9
    shortened = score_trajectory(short, truth, times)
    assert shortened["rpe_translation_rmse_m"] == pytest.approx(0.1 * np.hypot(1, 0.05), rel=1e-3)
    drift = 0.1 * np.hypot(np.arange(11), 0.05 * np.arange(11))
    assert shortened["ape_rmse_m"] == pytest.approx(np.sqrt(np.mean(drift ** 2)), rel=1e-3)
    # One step of the ten turns 0.01 rad (about x): the RMSE over the ten steps is that over sqrt(10).
    turned = truth.copy()
    pitch = [[1, 0, 0], [0, np.cos(0.01), -np.sin(0.01)], [0, np.sin(0.01), np.cos(0.01)]]
    turned[5:, :3, :3] = turned[5:, :3, :3] @ pitch
    assert score_trajectory(turned, truth, times)["rpe_rotation_rmse_deg"] == pytest.approx(
        np.degrees(0.01) / np.sqrt(10), rel=1e-3)
    np.testing.assert_allclose(aligned_to_truth(offset @ truth, truth, times), truth, atol=1e-6)
    with pytest.raises(ValueError, match="same N"):
        score_trajectory(truth[:5], truth, times)
    # Two poses are the fewest with a motion to score; one is refused.
    assert score_trajectory(short[:2], truth[:2], times[:2])["rpe_translation_rmse_m"] == pytest.approx(
        0.1 * np.hypot(1, 0.05), rel=1e-3)
    with pytest.raises(ValueError, match="N >= 2"):
        score_trajectory(truth[:1], truth[:1], times[:1])
    # Scores come rounded to 0.1 mm (or 0.0001 degree), as the tables print them.
    assert all(value == round(value, 4) for value in shortened.values())
    table = trajectory_table({"kitti": {"klt": {**exact, "stereo_share": 0.75}}})
    assert "| kitti | klt | 0.750 | 0.000 | 0.0000 | 0.0000 | 10.0 |" in table


def test_stereo_observations_at_exactly_a_pixel_of_disparity_are_used() -> None:
    frame = StereoFrame(np.arange(3), np.full((3, 2), 100.0), np.array([99.0, 98.5, 99.01]))
    np.testing.assert_array_equal(frame.stereo(), [True, True, False])


def test_rig_and_config_limits_on_both_sides() -> None:
    StereoRig(0.5, 0.5, 0.0, 0.0, 0.01)  # small but positive
    for bad in ((0.0, 1.0, 0, 0, 0.5), (1.0, 0.0, 0, 0, 0.5), (1.0, 1.0, 0, 0, 0.0), (-1.0, 1.0, 0, 0, 0.5)):
        with pytest.raises(ValueError, match="positive"):
            StereoRig(*bad)
    StereoVOConfig(window=2, pixel_sigma=0.01, outlier_px=0.5, max_iterations=1)
    for bad in ({"window": 1}, {"pixel_sigma": 0.0}, {"outlier_px": 0.0}, {"max_iterations": 0}):
        with pytest.raises(ValueError, match="window >= 2"):
            StereoVOConfig(**bad)


def test_rig_of_projections_whose_left_camera_is_not_the_origin() -> None:
    # KITTI's colour cameras: P2 and P3 both carry a translation; the baseline is their difference.
    left = np.array([[700.0, 0, 600.0, 45.0], [0, 710.0, 180.0, -0.3], [0, 0, 1, 0.003]])
    right = left.copy()
    right[0, 3] = 45.0 - 700.0 * 0.54
    rig = StereoRig.from_projections(left, right)
    assert (rig.fx, rig.fy, rig.cx, rig.cy) == (700.0, 710.0, 600.0, 180.0)
    assert rig.baseline == pytest.approx(0.54)
    np.testing.assert_array_equal(rig.camera_matrix, [[700.0, 0, 600.0], [0, 710.0, 180.0], [0, 0, 1]])
    calibration = rig.calibration()
    assert (calibration.fx(), calibration.fy(), calibration.skew(), calibration.px(), calibration.py(),
            calibration.baseline()) == pytest.approx((700.0, 710.0, 0.0, 600.0, 180.0, 0.54))
    # A point 2 m right, 1 m down and 10 m ahead: seen at x = 740, y = 251, disparity 37.8.
    np.testing.assert_allclose(rig.points_in_camera(np.array([[740.0, 251.0]]), np.array([740.0 - 37.8])),
                               [[2.0, 1.0, 10.0]])


def _pose(x: float, yaw: float = 0.0) -> gtsam.Pose3:
    return gtsam.Pose3(gtsam.Rot3.Yaw(yaw), np.array([x, 0.0, 0.0]))


def test_the_initial_pose_is_pnp_with_six_points_and_constant_velocity_with_fewer() -> None:
    truth = _trajectory(2, step_m=1.0, yaw_rad=0.02)
    frames = _frames(truth, noise_px=0.0)
    velocity = _pose(5.0)  # a wrong guess, to tell PnP's answer from it
    shared = np.intersect1d(frames[0].ids[frames[0].stereo()], frames[1].ids)
    assert MIN_PNP_POINTS == 6
    for count, from_pnp in ((6, True), (5, False)):
        keep = shared[np.linspace(0, len(shared) - 1, count).astype(int)]
        previous = StereoFrame(*(array[np.isin(frames[0].ids, keep)] for array in
                                 (frames[0].ids, frames[0].left, frames[0].right_x)))
        pose = _initial_pose(RIG, previous, gtsam.Pose3(truth[0]), frames[1], velocity).matrix()
        expected = truth[1] if from_pnp else truth[0] @ velocity.matrix()
        np.testing.assert_allclose(pose, expected, atol=1e-4)  # PnP's iterations stop within micrometres


def test_a_window_of_two_frames_corrects_the_second_pose_from_tracks_seen_twice() -> None:
    truth = _trajectory(2, step_m=1.0, yaw_rad=0.02)
    frames = _frames(truth, noise_px=0.0)
    estimate = gtsam.Values()
    estimate.insert(0, gtsam.Pose3(truth[0]))
    estimate.insert(1, gtsam.Pose3(truth[1]).compose(_pose(0.2, 0.01)))  # 0.2 m and 0.6 degrees off
    optimised = _optimise_window(RIG, frames, [0, 1], estimate, StereoVOConfig())
    np.testing.assert_allclose(optimised.atPose3(0).matrix(), truth[0], atol=1e-6)
    np.testing.assert_allclose(optimised.atPose3(1).matrix(), truth[1], atol=1e-5)


def test_without_a_first_pose_the_trajectory_starts_at_the_identity() -> None:
    truth = _trajectory(4)
    estimate = stereo_odometry(_frames(truth, noise_px=0.0), RIG)
    np.testing.assert_allclose(estimate[0], np.eye(4), atol=1e-12)
    relative = np.linalg.inv(truth[0]) @ truth
    assert _position_errors(estimate, relative).max() < 0.01


def test_a_pose_pnp_cannot_place_is_placed_by_the_window() -> None:
    # The first frame has only five points in stereo: too few for PnP, so the second pose starts at rest (constant
    # velocity from nothing, 1 m off); the window's smart factors over those five tracks move it where it was.
    truth = _trajectory(3, step_m=1.0, yaw_rad=0.0)
    frames = _frames(truth, noise_px=0.0)
    shared = np.flatnonzero(np.isin(frames[0].ids, frames[1].ids) & frames[0].stereo())
    mono = np.setdiff1d(np.arange(len(frames[0].ids)), shared[:5])
    right_x = frames[0].right_x.copy()
    right_x[mono] = np.nan
    frames[0] = StereoFrame(frames[0].ids, frames[0].left, right_x)
    estimate = stereo_odometry(frames, RIG, truth[0])
    assert _position_errors(estimate, truth).max() < 0.01
