"""Metrics on synthetic cases whose answers are known."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros.evaluation.metrics import (bootstrap_interval, homography_accuracy, keypoint_repeatability, match_errors,
                                         mean_matching_accuracy, mutual_nearest_neighbours)
from r2d2_ros.evaluation.vo import pose_errors_from_correspondences, relative_pose_errors
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


def _driving_pair(seed: int) -> tuple[np.ndarray, ...]:
    """A KITTI-like frame pair: 1 m forward with a slight turn, 0.3 px noise, 20% wrong matches."""
    rng = np.random.default_rng(seed)
    camera = np.array([[700.0, 0, 600], [0, 700, 180], [0, 0, 1]])
    scene = np.column_stack([rng.uniform(-15, 15, 600), rng.uniform(-3, 2, 600), rng.uniform(5, 30, 600)])
    pose1 = np.hstack([np.eye(3), np.zeros((3, 1))])
    pose2 = np.hstack([cv2.Rodrigues(np.array([0.0, 0.01, 0.0]))[0], [[0.02], [0.0], [1.0]]])

    def project(pose: np.ndarray) -> np.ndarray:  # camera-to-world pose
        pixels = ((scene - pose[:, 3]) @ pose[:, :3]) @ camera.T
        return pixels[:, :2] / pixels[:, 2:] + rng.normal(0, 0.3, (len(scene), 2))

    points1, points2 = project(pose1), project(pose2)
    points2[:120] = rng.uniform([0, 0], [1200, 370], (120, 2))
    return points1, points2, camera, pose1, pose2


def test_lo_ransac_finds_the_translation_direction_that_plain_ransac_misses() -> None:
    # Plain RANSAC keeps its best minimal sample's model, whose direction the pixel noise tilts by
    # degrees; LO-RANSAC refits on the inliers. Medians over 12 draws: about 1.5 and 0.3 degrees.
    errors = {estimator: np.median([pose_errors_from_correspondences(*_driving_pair(seed), estimator)[1]
                                    for seed in range(12)]) for estimator in ("ransac", "lo-ransac")}
    assert errors["lo-ransac"] < 0.6
    assert errors["lo-ransac"] < errors["ransac"] / 2
    points1, points2, camera, pose1, pose2 = _driving_pair(0)
    assert pose_errors_from_correspondences(points1[:7], points2[:7], camera, pose1, pose2) == (180.0, 180.0, 0), \
        "too few matches for a pose: counted as failed"
    with pytest.raises(ValueError, match="unknown estimator"):
        pose_errors_from_correspondences(points1, points2, camera, pose1, pose2, "magic")


def test_an_error_equal_to_the_threshold_counts_as_correct() -> None:
    errors = np.array([0.5, 1.0, 2.0, 3.0, np.inf])  # an infinite error: a point warped to infinity
    np.testing.assert_allclose(mean_matching_accuracy(errors, (1, 2, 3)), [0.4, 0.6, 0.8])


def test_repeatability_counts_a_counterpart_exactly_at_the_threshold() -> None:
    points1 = np.array([[10.0, 10.0], [50.0, 50.0]])
    points2 = np.array([[13.0, 10.0], [50.0, 54.0]])  # 3 px (found at 3 px) and 4 px (not found) away
    assert keypoint_repeatability(points1, points2, np.eye(3), SIZE, SIZE, threshold=3.0) == pytest.approx(0.5)


def test_match_errors_one_per_match_and_none_without_matches() -> None:
    points = np.array([[10.0, 20.0], [30.0, 40.0]])
    assert match_errors(points, points, np.zeros((0, 2), int), np.eye(3)).shape == (0,)
    np.testing.assert_allclose(match_errors(points, points + [3.0, 4.0], np.array([[1, 1]]), np.eye(3)), [5.0])


def test_repeatability_default_threshold_is_3_pixels() -> None:
    points1 = np.array([[10.0, 10.0], [50.0, 50.0]])
    points2 = np.array([[13.0, 10.0], [50.0, 53.5]])
    assert keypoint_repeatability(points1, points2, np.eye(3), SIZE, SIZE) == pytest.approx(0.5)


@pytest.mark.parametrize("side", ["image 1 seen in image 2", "image 2 seen in image 1"])
def test_repeatability_counts_border_pixels_as_seen_and_beyond_them_as_unseen(side: str) -> None:
    """Only the point at (100, 100) has a counterpart; every other point counts when it is in the frame.

    Image 2 is 320x240 and image 1 is 200x150, so each frame's edges are tested with its own size.
    """
    width, height = (320, 240) if side == "image 1 seen in image 2" else (200, 150)
    inside = [[0, 50], [width - 1, 60], [70, 0], [80, height - 1]]
    beyond = [[-0.5, 90], [width - 0.5, 95], [110, -0.5], [120, height - 0.5]]
    lonely = np.array([[100.0, 100.0], *inside, *beyond])
    partner = np.array([[100.0, 100.0]])
    points1, points2 = (lonely, partner) if side == "image 1 seen in image 2" else (partner, lonely)
    found = keypoint_repeatability(points1, points2, np.eye(3), (320, 240), (200, 150))
    assert found == pytest.approx(2 / (2 + len(inside)))  # the pair, out of it and the 4 seen lonely points


def test_repeatability_of_one_shared_point_and_of_none() -> None:
    one = np.array([[10.0, 10.0]])
    assert keypoint_repeatability(one, one, np.eye(3), SIZE, SIZE) == pytest.approx(1.0)
    outside = np.array([[-50.0, 10.0]])  # image 1's only point falls outside image 2
    assert keypoint_repeatability(outside, one, np.eye(3), SIZE, SIZE) == 0.0
    assert keypoint_repeatability(one, outside, np.eye(3), SIZE, SIZE) == 0.0


def test_repeatability_is_counted_from_both_sides() -> None:
    points1 = np.array([[10.0, 10.0], [11.0, 10.0]])  # both have a counterpart
    points2 = np.array([[10.0, 10.0], [100.0, 100.0]])  # one has
    assert keypoint_repeatability(points1, points2, np.eye(3), SIZE, SIZE) == pytest.approx(3 / 4)


@pytest.mark.parametrize(("shift", "expected"), [(0.0, [True, True, True]), (2.0, [False, True, True]),
                                                 (3.5, [False, False, True]), (5.5, [False, False, False])])
def test_homography_accuracy_default_thresholds_are_1_3_5_pixels(shift: float, expected: list[bool]) -> None:
    points = np.random.default_rng(0).uniform(0, 200, (50, 2))
    matches = np.stack([np.arange(50), np.arange(50)], axis=1)
    truth = np.array([[1, 0, shift], [0, 1, 0], [0, 0, 1.0]])  # the estimate is the identity: error = shift
    error, correct = homography_accuracy(points, points, matches, truth, SIZE)
    assert error == pytest.approx(shift, abs=1e-6) and correct.tolist() == expected


def test_homography_accuracy_needs_four_matches_and_a_non_degenerate_set() -> None:
    points = np.array([[10.0, 10.0], [200.0, 20.0], [190.0, 150.0], [20.0, 170.0]])
    four = np.stack([np.arange(4), np.arange(4)], axis=1)
    assert homography_accuracy(points, points, four, np.eye(3), SIZE)[0] < 1e-6
    on_a_line = np.stack([np.linspace(0, 100, 6), np.linspace(0, 50, 6)], axis=1)  # no homography fits
    error, correct = homography_accuracy(on_a_line, on_a_line, np.stack([np.arange(6)] * 2, axis=1), np.eye(3), SIZE)
    assert error == float("inf") and not correct.any()


def test_bootstrap_interval_brackets_the_statistic_and_narrows_with_more_pairs() -> None:
    rng = np.random.default_rng(1)
    few, many = rng.normal(1.0, 0.3, 50), rng.normal(1.0, 0.3, 800)
    low, high = bootstrap_interval(few)
    assert low < np.median(few) < high
    many_low, many_high = bootstrap_interval(many)
    assert (high - low) > 2 * (many_high - many_low)  # about sqrt(16) = 4 times narrower
    assert bootstrap_interval(few) == (low, high), "a fixed seed: reruns report the same interval"
    assert bootstrap_interval(few, level=0.5)[1] - bootstrap_interval(few, level=0.5)[0] < high - low
    assert bootstrap_interval([0.7] * 10) == (0.7, 0.7)
    assert all(np.isnan(bootstrap_interval([])))
    mean_low, mean_high = bootstrap_interval(few, statistic=np.mean)
    assert mean_low < few.mean() < mean_high and (mean_low, mean_high) != (low, high)
