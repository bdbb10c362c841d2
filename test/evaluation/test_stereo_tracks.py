"""Each front end's stereo pairing for the back end: KLT's by flow, R2D2's and ORB's by descriptor (ROS-free)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros.evaluation.cache import FeatureCache
from r2d2_ros.evaluation.stereo_tracks import descriptor_stereo, flow_stereo, paired_share, stereo_trajectory
from r2d2_ros.evaluation.stereo_vo import StereoFrame
from r2d2_ros.evaluation.tracking import TrackedFrame
from r2d2_ros.features import Features
from r2d2_ros.sequences import CameraCalibration, Sequence
from r2d2_ros.tracking import CameraModel, TrackBook, rectify_points
from r2d2_ros.tracking.stereo import StereoConfig
from test.conftest import rectangles_image

DISPARITY = 8


def _camera(baseline_px: float = 0.0) -> CameraModel:
    projection = [150.0, 0, 80, -baseline_px, 0, 150, 60, 0, 0, 0, 1, 0]
    return CameraModel.from_camera_info(SimpleNamespace(width=160, height=120, k=[150.0, 0, 80, 0, 150, 60, 0, 0, 1],
                                                        d=[], distortion_model="plumb_bob", r=list(np.eye(3).ravel()),
                                                        p=projection))


def _frame(points: np.ndarray, descriptors: torch.Tensor | None = None) -> TrackedFrame:
    tracks = TrackBook().update(points, np.zeros((0, 2), np.int64))
    return TrackedFrame(points, points.copy(), tracks, [], descriptors)


def test_flow_pairs_each_point_with_where_it_is_in_the_right_image() -> None:
    grey = rectangles_image(120, 200, 60, seed=3)[..., 1]
    left, right = grey[:, 20:180].copy(), grey[:, 20 + DISPARITY : 180 + DISPARITY].copy()  # everything 8 px left
    points = np.array([[40.0, 30], [90, 60], [120, 90], [150, 20]], np.float32)
    stereo = flow_stereo(_frame(points), left, right, _camera(150 * 0.1))
    found = np.isfinite(stereo.right_x)
    assert found.sum() >= 2, "textured points are followed"
    np.testing.assert_allclose(stereo.right_x[found], points[found, 0] - DISPARITY, atol=0.1)
    np.testing.assert_array_equal(stereo.ids, _frame(points).tracks.ids)
    # The same images the other way round: every point would have a negative disparity, none is paired.
    assert np.isnan(flow_stereo(_frame(points), right, left, _camera(15)).right_x).all()
    assert len(flow_stereo(_frame(np.zeros((0, 2), np.float32)), left, right, _camera(15)).right_x) == 0


def test_descriptors_pair_points_on_the_same_row() -> None:
    descriptors = torch.nn.functional.normalize(torch.randn(3, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    left = np.array([[50.0, 20], [80, 40], [120, 90]])
    # Right, in another order: the first two 10 px to the left on their rows, the third 3 rows down (another row).
    right_points = torch.tensor([[70.0, 40.4, 1], [110, 93, 1], [40, 20, 1]])
    right = Features(right_points, descriptors[[1, 2, 0]], torch.ones(3), (160, 120))
    stereo = descriptor_stereo(_frame(left, descriptors), right, _camera(), _camera(15))
    np.testing.assert_allclose(stereo.right_x, [40, 70, np.nan])
    with pytest.raises(ValueError, match="descriptors"):
        descriptor_stereo(_frame(left), right, _camera(), _camera(15))
    with pytest.raises(ValueError, match="baseline"):
        descriptor_stereo(_frame(left, descriptors), right, _camera(), _camera())


def _distorted_camera(distortion: list[float], pitch_deg: float, baseline_px: float) -> CameraModel:
    """A lens with distortion, rectified by a rotation about x (rows move) and a P other than K."""
    rotation, _ = cv2.Rodrigues(np.array([np.radians(pitch_deg), 0.0, 0.0]))
    projection = [140.0, 0, 78, -baseline_px, 0, 140, 62, 0, 0, 0, 1, 0]
    return CameraModel.from_camera_info(SimpleNamespace(width=160, height=120, k=[150.0, 0, 80, 0, 152, 60, 0, 0, 1],
                                                        d=distortion, distortion_model="plumb_bob",
                                                        r=list(rotation.ravel()), p=projection))


def _raw(rectified: np.ndarray, camera: CameraModel) -> np.ndarray:
    """Rectified pixels back to the camera's raw (distorted) pixels."""
    rays = np.column_stack([rectified, np.ones(len(rectified))]) @ np.linalg.inv(camera.P[:, :3]).T @ camera.R
    raw, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), camera.K, camera.D)
    return raw.reshape(-1, 2)


def test_descriptors_pair_on_rectified_rows_of_a_distorted_rotated_rig() -> None:
    # Left points come rectified (the tracker's), right detections raw: each is rectified with its own camera
    # once. Pairing raw right points, or rectifying the left ones again, moves rows by pixels (pitch, lens).
    left_camera = _distorted_camera([-0.28, 0.09, 0.001, -0.002, 0.0], 1.5, 0.0)
    right_camera = _distorted_camera([-0.22, 0.05, -0.001, 0.001, 0.0], -1.0, 140 * 0.12)
    left_rectified = np.array([[30.0, 15], [70, 40], [120, 65], [50, 95], [140, 100]])
    right_rectified = left_rectified - np.array([[4.0, 0], [9, 0], [2.5, 0], [14, 0], [6, 0]])
    assert np.abs(_raw(right_rectified, right_camera) - right_rectified).max() > 3, "the lens moves points"
    descriptors = torch.nn.functional.normalize(torch.randn(5, 8, generator=torch.Generator().manual_seed(1)), dim=1)
    raw_left = _raw(left_rectified, left_camera)
    tracks = TrackBook().update(raw_left, np.zeros((0, 2), np.int64))
    frame = TrackedFrame(raw_left, rectify_points(raw_left, left_camera), tracks, [], descriptors)
    order = [3, 0, 4, 2, 1]
    right = Features(torch.tensor(np.column_stack([_raw(right_rectified, right_camera)[order], np.ones(5)]),
                                  dtype=torch.float32), descriptors[order], torch.ones(5), (160, 120))
    stereo = descriptor_stereo(frame, right, left_camera, right_camera)
    np.testing.assert_allclose(stereo.right_x, right_rectified[:, 0], atol=1e-2)


def test_flow_pairs_at_zero_disparity_and_row_gap_with_zero_limits() -> None:
    # Identical images: flow returns every point where it was, so the disparity and the row gap are exactly 0,
    # which limits of 0 (both inclusive) still accept.
    grey = rectangles_image(120, 160, 60, seed=3)[..., 1]
    raw = np.array([[40.0, 30], [90, 60], [120, 90], [130, 20]], np.float32)
    camera = _camera(15)
    tracks = TrackBook().update(raw, np.zeros((0, 2), np.int64))
    frame = TrackedFrame(raw, rectify_points(raw, camera), tracks, [])
    stereo = flow_stereo(frame, grey, grey, camera, StereoConfig(row_tolerance_px=0.0, max_disparity_px=0.0))
    found = np.isfinite(stereo.right_x)
    assert found.sum() >= 2, "textured points are followed"
    np.testing.assert_array_equal(stereo.right_x[found], frame.rectified[found, 0])


def _stereo_sequences(folder: Path, frames: int = 4) -> tuple[Sequence, Sequence]:
    """A still camera before a textured wall: the right image is the left one 8 px to the left. Ground-truth
    poses (that the images do not follow: only where the trajectory starts matters here) step along z."""
    grey = rectangles_image(120, 200, 80, seed=5)[..., 1]
    paths: dict[str, list[Path]] = {"left": [], "right": []}
    for index in range(frames):
        for side, image in (("left", grey[:, 20:180]), ("right", grey[:, 20 + DISPARITY : 180 + DISPARITY])):
            paths[side].append(folder / f"{side}{index}.png")
            cv2.imwrite(str(paths[side][-1]), np.ascontiguousarray(image))
    k = np.array([[150.0, 0, 80], [0, 150, 60], [0, 0, 1]])
    poses = np.array([np.hstack([np.eye(3), [[0.0], [0.0], [0.5 * index + 1.0]]]) for index in range(frames)])

    def calibration(baseline_px: float) -> CameraCalibration:
        return CameraCalibration(160, 120, k, P=np.hstack([k, [[-baseline_px], [0.0], [0.0]]]))
    return (Sequence("left", paths["left"], calibration=calibration(0.0), poses=poses),
            Sequence("right", paths["right"], calibration=calibration(150 * 0.1)))


def _tracked(points: np.ndarray, frames: int) -> list[TrackedFrame]:
    """The same points tracked through every frame but the last, which has none."""
    book, tracked = TrackBook(), []
    for index in range(frames):
        here = points if index < frames - 1 else np.zeros((0, 2), np.float32)
        previous = len(points) if index else 0
        tracks = book.update(here, np.column_stack([np.arange(min(previous, len(here)))] * 2).astype(np.int64))
        tracked.append(TrackedFrame(here, here.copy(), tracks, []))
    return tracked


def test_a_trajectory_starts_at_the_first_pose_and_counts_frames_without_points_as_unpaired(tmp_path: Path) -> None:
    left, right = _stereo_sequences(tmp_path)
    textured = np.array([[x, y] for x in range(30, 140, 12) for y in range(20, 100, 12)], np.float32)
    frames = _tracked(textured, len(left.frames))
    trajectory, share = stereo_trajectory(left, right, frames, None, FeatureCache(tmp_path / "cache"))
    assert trajectory.shape == (4, 4, 4)
    np.testing.assert_allclose(trajectory[0, :3], left.poses[0], atol=1e-9)  # type: ignore[index]
    paired = [flow_stereo(frame, cv2.imread(str(l), 0), cv2.imread(str(r), 0), _camera(15)).stereo().mean()
              for frame, l, r in zip(frames[:-1], left.frames, right.frames)]
    assert min(paired) > 0.5, "the wall's textured points pair"
    assert share == round(float(np.mean(paired + [0.0])), 3)


def test_paired_share_averages_frames() -> None:
    frames = [StereoFrame(np.arange(4), np.full((4, 2), 50.0), np.array([40.0, np.nan, 49.5, 30])),  # 2 of 4
              StereoFrame(np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros(0)),  # none to pair: 0
              StereoFrame(np.arange(2), np.full((2, 2), 50.0), np.array([45.0, 45]))]  # both
    assert paired_share(frames) == round((0.5 + 0 + 1) / 3, 3) == 0.5
    assert paired_share(frames[:1] + frames[2:]) == 0.75
    assert paired_share([StereoFrame(np.arange(3), np.full((3, 2), 50.0), np.array([40.0, 41, np.nan]))]) == 0.667


def test_a_trajectory_needs_projections_and_poses(tmp_path: Path) -> None:
    left, right = _stereo_sequences(tmp_path, frames=1)
    frames = _tracked(np.array([[40.0, 30]], np.float32), 1)
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(ValueError, match="left: .*ground-truth pose"):
        stereo_trajectory(replace(left, poses=None), right, frames, None, cache)
    for broken_left, broken_right in ((replace(left, calibration=None), right),
                                      (left, replace(right, calibration=replace(right.calibration, P=None)))):
        name = "left" if broken_left is not left else "right"
        with pytest.raises(ValueError, match=f"{name}: .*rectified projection"):
            stereo_trajectory(broken_left, broken_right, frames, None, cache)
