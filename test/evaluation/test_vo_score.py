"""The VO check's scores on a synthetic scene with known poses (ROS-free, no ../shared): exact matches give
zero errors, and each pair is scored against its own two poses."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros.bags import BagError, FeatureBagWriter, keypoints_message, typestore
from r2d2_ros.conversions.keypoints_message import DESCRIPTOR_ENCODINGS
from r2d2_ros.evaluation.cache import FeatureCache
from r2d2_ros.evaluation.vo import bag_features_for_sequence, evaluate_vo, relative_pose_errors, score_vo
from r2d2_ros.features import Features
from r2d2_ros.sequences import CameraCalibration, Sequence

K = np.array([[400.0, 0, 320], [0, 400, 240], [0, 0, 1]])


def _poses(count: int) -> np.ndarray:
    """(count, 3, 4) camera-to-world: forward 1 m a frame, turning 2 degrees more each frame."""
    poses = []
    for index in range(count):
        rotation = cv2.Rodrigues(np.array([0.0, np.radians(2.0) * index * (index + 1) / 2, 0.0]))[0]
        poses.append(np.hstack([rotation, [[0.1 * index], [0.0], [1.0 * index]]]))
    return np.array(poses)


def _frames(poses: np.ndarray, extra: list[int], noise_px: float = 0.0) -> list[Features]:
    """Each pose's view of 200 fixed points (descriptor per point) after ``extra[i]`` unrelated detections."""
    rng = np.random.default_rng(0)
    world = np.column_stack([rng.uniform(-8, 8, 200), rng.uniform(-3, 3, 200), rng.uniform(15, 40, 200)])
    descriptors = torch.nn.functional.normalize(torch.randn(200, 32, generator=torch.Generator().manual_seed(0)), dim=1)
    frames = []
    for pose, count in zip(poses, extra):
        camera = (world - pose[:, 3]) @ pose[:, :3]  # world -> camera: R^T (X - t)
        pixels = camera @ K.T
        seen = pixels[:, :2] / pixels[:, 2:] + rng.normal(0, noise_px, (len(pixels), 2))
        points = np.vstack([rng.uniform(0, [640, 480], (count, 2)), seen])
        noise = torch.nn.functional.normalize(torch.randn(count, 32, generator=torch.Generator().manual_seed(count)), dim=1)
        frames.append(Features(torch.from_numpy(np.column_stack([points, np.full(len(points), 8.0)])).float(),
                               torch.cat([noise, descriptors]), torch.linspace(1, 0, len(points)), (640, 480)))
    return frames


def _sequence(poses: np.ndarray | None, calibrated: bool = True) -> Sequence:
    return Sequence("synthetic", [Path(f"{index}.png") for index in range(4)],
                    calibration=CameraCalibration(640, 480, K) if calibrated else None, poses=poses)


def test_exact_matches_score_zero_errors_per_consecutive_pair() -> None:
    poses = _poses(4)
    scores = score_vo(_sequence(poses), _frames(poses, [0, 3, 7, 5]))
    assert scores["pairs"] == 3
    assert scores["rotation_error_median_deg"] == 0.0 and scores["translation_error_median_deg"] == 0.0
    assert scores["translation_error_median_ci95_deg"] == [0.0, 0.0]
    assert scores["inliers_median"] == 200.0  # the unrelated detections match nothing consistent
    assert scores["features_mean"] == round(200 + (0 + 3 + 7 + 5) / 4, 1) == 203.8
    assert set(scores) == {"pairs", "rotation_error_median_deg", "translation_error_median_deg",
                           "translation_error_median_ci95_deg", "inliers_median", "features_mean"}
    # The same features scored against poses that do not belong to them: the turn is off by 2 degrees or more.
    shuffled = poses[[0, 2, 1, 3]]
    assert score_vo(_sequence(shuffled), _frames(poses, [0, 3, 7, 5]))["rotation_error_median_deg"] > 1.5
    # With half a pixel of noise the errors are small and not round: reported to a thousandth of a degree.
    noisy = score_vo(_sequence(poses), _frames(poses, [0, 3, 7, 5], noise_px=0.5))
    errors = [noisy["rotation_error_median_deg"], noisy["translation_error_median_deg"],
              *noisy["translation_error_median_ci95_deg"]]
    assert 0 < noisy["rotation_error_median_deg"] < 0.5 and all(value == round(value, 3) for value in errors)


def test_the_vo_check_needs_poses_and_a_calibration() -> None:
    frames = _frames(_poses(2), [0, 0])
    for sequence in (_sequence(None), _sequence(_poses(2), calibrated=False)):
        with pytest.raises(ValueError, match="synthetic: the VO check needs ground-truth poses and a calibration"):
            score_vo(sequence, frames)


def test_relative_pose_errors_in_degrees() -> None:
    first, second = np.hstack([np.eye(3), np.zeros((3, 1))]), np.hstack([np.eye(3), [[0.0], [0.0], [2.0]]])
    # Camera 2 is 2 m ahead of camera 1: a point x1 in camera 1 is at x1 - (0, 0, 2) in camera 2.
    assert relative_pose_errors(np.eye(3), np.array([0.0, 0, -5]), first, second) == pytest.approx((0.0, 0.0))
    assert relative_pose_errors(np.eye(3), np.array([0.0, 0, 5]), first, second)[1] == pytest.approx(180.0)
    assert relative_pose_errors(np.eye(3), np.array([1.0, 0, 0]), first, second)[1] == pytest.approx(90.0)
    assert relative_pose_errors(np.eye(3), np.array([1.0, 0, -1]), first, second)[1] == pytest.approx(45.0)
    assert relative_pose_errors(np.eye(3), np.zeros(3), first, second)[1] == 180.0  # no direction: the worst
    turned = cv2.Rodrigues(np.array([0.0, 0.0, np.radians(3.0)]))[0]
    assert relative_pose_errors(turned, np.array([0.0, 0, -1]), first, second)[0] == pytest.approx(3.0)
    # A small translation (under a metre) still has a direction.
    near = np.hstack([np.eye(3), [[0.0], [0.0], [0.2]]])
    assert relative_pose_errors(np.eye(3), np.array([0.0, 0, -0.3]), first, near) == pytest.approx((0.0, 0.0))


class _FramesByImage:
    """A method whose features of an image are the synthetic frame that the image's grey value numbers."""

    name, key = "synthetic", "synthetic-v1"

    def __init__(self, frames: list[Features]) -> None:
        self.frames, self.calls = frames, 0

    def extract(self, image: np.ndarray) -> Features:
        self.calls += 1
        return self.frames[int(image[0, 0, 0]) // 10]


def _image_sequence(folder: Path, poses: np.ndarray, frames: int = 4) -> Sequence:
    """``frames`` images numbered by their grey value, the first len(poses) with a pose; 10 Hz."""
    paths = []
    for index in range(frames):
        paths.append(folder / f"{index:06d}.png")
        cv2.imwrite(str(paths[-1]), np.full((8, 8, 3), 10 * index, np.uint8))
    return Sequence("synthetic", paths, calibration=CameraCalibration(640, 480, K), poses=poses, rate_hz=10.0)


def test_evaluate_vo_scores_each_posed_frame_once_and_reports_progress(tmp_path: Path) -> None:
    poses = _poses(3)
    frames = _frames(_poses(4), [0, 3, 7, 5])
    sequence = _image_sequence(tmp_path, poses)  # the last image has no pose: not used
    method, ticks = _FramesByImage(frames), []
    scores = evaluate_vo(sequence, method, FeatureCache(tmp_path / "cache"), progress=lambda: ticks.append(1))
    assert scores == score_vo(sequence, frames[:3]) and scores["pairs"] == 2
    assert len(ticks) == 3 and method.calls == 3
    evaluate_vo(sequence, method, FeatureCache(tmp_path / "cache"))  # cached: nothing extracted again
    assert method.calls == 3
    with pytest.raises(ValueError, match="ground-truth poses"):
        evaluate_vo(_sequence(None), method, FeatureCache(tmp_path / "cache"))


def test_a_feature_bag_gives_the_features_of_each_posed_frame_by_stamp(tmp_path: Path) -> None:
    poses = _poses(3)
    sequence = _image_sequence(tmp_path, poses)
    frames = _frames(_poses(4), [0, 3, 7, 5])
    types = typestore().types

    def write(path: Path, order: list[int]) -> Path:
        with FeatureBagWriter(path, "/cam0/keypoints", {}) as writer:
            for count, index in enumerate(order):
                time_ns = sequence.times_ns()[index]
                header = types["std_msgs/msg/Header"](
                    stamp=types["builtin_interfaces/msg/Time"](sec=time_ns // 10**9, nanosec=time_ns % 10**9),
                    frame_id="cam0")
                writer.write(keypoints_message(frames[index], header, "m", DESCRIPTOR_ENCODINGS["float32"]),
                             time_ns, frames_read=count + 1)
        return path

    # Written out of order and with the unposed frame too: read back by stamp, posed frames only.
    read = bag_features_for_sequence(sequence, write(tmp_path / "all", [3, 1, 0, 2]))
    assert len(read) == 3
    for got, expected in zip(read, frames[:3]):
        torch.testing.assert_close(got.keypoints, expected.keypoints)
    with pytest.raises(BagError, match=r"no features stamped as frame 1 of synthetic \(2 of 3 frames missing\)"):
        bag_features_for_sequence(sequence, write(tmp_path / "some", [0, 3]))
    with pytest.raises(ValueError, match="ground-truth poses"):
        bag_features_for_sequence(_sequence(None), tmp_path / "all")


def test_relative_pose_errors_of_general_poses() -> None:
    # Both cameras turned about every axis and moved along every axis: the exact relative motion scores zero.
    rotation1, rotation2 = (cv2.Rodrigues(np.array(vector))[0] for vector in ([0.3, -0.2, 0.1], [-0.1, 0.4, 0.25]))
    translation1, translation2 = np.array([1.0, -2.0, 0.5]), np.array([-0.5, 1.5, 3.0])
    pose1, pose2 = np.hstack([rotation1, translation1[:, None]]), np.hstack([rotation2, translation2[:, None]])
    rotation, translation = rotation2.T @ rotation1, rotation2.T @ (translation1 - translation2)
    assert relative_pose_errors(rotation, 0.1 * translation, pose1, pose2) == pytest.approx((0.0, 0.0), abs=1e-5)
    assert relative_pose_errors(rotation.T, translation, pose1, pose2)[0] > 10
