"""Metrics on synthetic cases whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from r2d2_ros.evaluation.metrics import (homography_accuracy, keypoint_repeatability, match_errors,
                                         mean_matching_accuracy, mutual_nearest_neighbours)
from r2d2_ros.evaluation.vo import relative_pose_errors
from r2d2_ros.geometry import corner_error, homography_flow, warp_points

HOMOGRAPHY = np.array([[0.9, 0.1, 12.0], [-0.05, 1.1, -4.0], [1e-4, -2e-4, 1.0]])
SIZE = (320, 240)


def _perfect_pair(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    points1 = rng.uniform([40, 40], [280, 200], (n, 2))
    points2 = warp_points(HOMOGRAPHY, points1)
    descriptors = torch.nn.functional.normalize(torch.randn(n, 128, generator=torch.Generator().manual_seed(seed)), dim=1)
    return points1, points2, descriptors


def test_known_homography_and_perfect_keypoints_give_mma_one_at_one_pixel() -> None:
    points1, points2, descriptors = _perfect_pair()
    order = np.random.default_rng(1).permutation(len(points2))  # storage order does not matter
    matches = mutual_nearest_neighbours(descriptors, descriptors[order]).numpy()
    errors = match_errors(points1, points2[order], matches, HOMOGRAPHY)
    assert len(matches) == 300
    np.testing.assert_allclose(mean_matching_accuracy(errors, (1, 3)), [1.0, 1.0])


def test_shuffled_descriptors_give_about_zero() -> None:
    points1, points2, descriptors = _perfect_pair(n=2000)
    shuffled = descriptors[torch.randperm(2000, generator=torch.Generator().manual_seed(2))]
    matches = mutual_nearest_neighbours(descriptors, shuffled).numpy()
    assert mean_matching_accuracy(match_errors(points1, points2, matches, HOMOGRAPHY), (3,))[0] < 0.02


def test_mutual_check_drops_one_sided_matches() -> None:
    a = torch.tensor([[1.0, 0.0], [0.9, 0.436]])
    b = torch.tensor([[1.0, 0.0]])
    assert mutual_nearest_neighbours(a, b).tolist() == [[0, 0]]
    assert mutual_nearest_neighbours(torch.zeros(0, 2), b).shape == (0, 2)
    assert mean_matching_accuracy(np.zeros(0), (1, 2)).tolist() == [0.0, 0.0]


def test_repeatability_is_one_for_perfect_and_low_for_random_keypoints() -> None:
    points1, points2, _ = _perfect_pair()
    assert keypoint_repeatability(points1, points2, HOMOGRAPHY, SIZE, SIZE) == pytest.approx(1.0)
    random2 = np.random.default_rng(5).uniform(0, 240, (300, 2))
    assert keypoint_repeatability(points1, random2, HOMOGRAPHY, SIZE, SIZE) < 0.5


def test_homography_accuracy_of_perfect_matches() -> None:
    points1, points2, _ = _perfect_pair()
    matches = np.stack([np.arange(300), np.arange(300)], axis=1)
    error, correct = homography_accuracy(points1, points2, matches, HOMOGRAPHY, SIZE)
    assert error < 0.01 and correct.all()
    assert homography_accuracy(points1, points2, matches[:3], HOMOGRAPHY, SIZE)[0] == float("inf")


def test_corner_error_and_flow() -> None:
    shifted = np.array([[1, 0, 3.0], [0, 1, 4.0], [0, 0, 1]])
    assert corner_error(shifted, np.eye(3), 10, 10) == pytest.approx(5.0)
    flow = homography_flow(shifted, 4, 3)
    assert flow.shape == (3, 4, 2) and tuple(flow[2, 1]) == (4.0, 6.0)


def test_relative_pose_errors() -> None:
    angle = np.deg2rad(10)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    pose1 = np.hstack([np.eye(3), np.zeros((3, 1))])
    pose2 = np.hstack([rotation, [[0.0], [0.0], [1.0]]])  # camera 2: rotated and 1 m forward
    truth = np.linalg.inv(np.vstack([pose2, [0, 0, 0, 1]])) @ np.vstack([pose1, [0, 0, 0, 1]])
    assert relative_pose_errors(truth[:3, :3], truth[:3, 3] * 7, pose1, pose2) == pytest.approx((0, 0), abs=1e-5)
    rotation_error, translation_error = relative_pose_errors(np.eye(3), -truth[:3, 3], pose1, pose2)
    assert rotation_error == pytest.approx(10, abs=1e-4) and translation_error == pytest.approx(180, abs=1e-4)
