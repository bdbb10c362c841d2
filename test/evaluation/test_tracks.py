"""Track evaluation: Sampson errors, track scores against known motion, and the KLT baseline."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros.evaluation.report import tracks_table
from r2d2_ros.evaluation.tracking import (TrackedFrame, _new_corners, camera_model, draw_last_frame, score_tracks,
                                          track_flow, track_klt, track_method)
from r2d2_ros.features import Features
from r2d2_ros.sequences import CameraCalibration, Sequence
from r2d2_ros.image_io import read_rgb
from r2d2_ros.tracking import TrackBook, TrackerConfig, rectify_points, sampson_errors
from r2d2_ros.viz import draw_tracks

K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])


def test_sampson_error_of_a_sideways_motion() -> None:
    """Moving along x, epipolar lines are the image rows: the error is the row offset over sqrt(2)."""
    fundamental = np.linalg.inv(K).T @ np.array([[0, 0, 0], [0, 0, -1], [0, 1, 0.0]]) @ np.linalg.inv(K)
    points1 = np.array([[100.0, 50], [300, 200], [400, 400]])
    points2 = points1 + np.array([[-30.0, 0], [-12, 2], [-5, -0.5]])
    np.testing.assert_allclose(sampson_errors(points1, points2, fundamental), [0, 2 / np.sqrt(2), 0.5 / np.sqrt(2)],
                               atol=1e-9)


def _poses(count: int) -> np.ndarray:
    """Camera-to-world poses of a camera moving 0.5 m along its x axis per frame."""
    return np.stack([np.hstack([np.eye(3), [[0.5 * i], [0], [0]]]) for i in range(count)])


def _project(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    camera = (points - pose[:, 3]) @ pose[:, :3]
    pixels = camera @ K.T
    return pixels[:, :2] / pixels[:, 2:]


def test_scores_of_true_and_broken_tracks(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    scene = np.column_stack([rng.uniform(-8, 8, 200), rng.uniform(-4, 4, 200), rng.uniform(8, 30, 200)])
    poses = _poses(4)
    sequence = Sequence("synthetic", [tmp_path / f"{i}.png" for i in range(4)], None,
                        CameraCalibration(640, 480, K, (0.0,) * 5), poses)
    book, frames = TrackBook(), []
    for index, pose in enumerate(poses):
        points = _project(scene, pose)
        if index == 2:
            points[:20, 1] += 5.0  # 20 tracks jump 5 px off their epipolar line
        matches = np.zeros((0, 2), int) if index == 0 else np.column_stack([np.arange(200), np.arange(200)])
        frames.append(TrackedFrame(points, points, book.update(points, matches), []))
    scores = score_tracks(frames, sequence)
    assert scores["track_length_mean"] == 4 and scores["track_length_median"] == 4 and scores["tracked_share"] == 1
    assert scores["consistent_share"] == pytest.approx(0.9)  # the 20 broken tracks of 200
    assert scores["rotation_error_median_deg"] < 0.1 and scores["translation_error_median_deg"] < 1
    without_poses = score_tracks(frames, Sequence("no poses", sequence.frames, None, sequence.calibration))
    assert "consistent_share" not in without_poses and without_poses["track_length_mean"] == 4


def test_survival_share_counts_the_points_still_tracked_five_frames_later(tmp_path: Path) -> None:
    """100 points; 40 of their tracks end after frame 3 (new points take their place): the points of
    frames 0-3 are 60% alive five frames later, those of frames 4-6 (40 of them new) all; a sequence of five
    frames or fewer has no survival share."""
    points = np.random.default_rng(1).uniform(0, 400, (100, 2))
    book, frames = TrackBook(), []
    for index in range(12):
        continued = np.arange(100) if index != 4 else np.arange(40, 100)
        matches = np.zeros((0, 2), int) if index == 0 else np.column_stack([continued, continued])
        frames.append(TrackedFrame(points, points, book.update(points, matches), []))
    sequence = Sequence("synthetic", [tmp_path / f"{i}.png" for i in range(12)], None,
                        CameraCalibration(640, 480, K, (0.0,) * 5))
    alive = [0.6, 0.6, 0.6, 0.6, 1.0, 1.0, 1.0]  # frame 3's points: 60 alive at frame 8; frame 4's: all 100
    assert score_tracks(frames, sequence)["survival_share"] == pytest.approx(np.mean(alive), abs=1e-3)
    short = Sequence("short", sequence.frames[:5], None, sequence.calibration)
    assert "survival_share" not in score_tracks(frames[:5], short)
    table = tracks_table({"synthetic": {"r2d2": score_tracks(frames, sequence)},
                          "short": {"r2d2": score_tracks(frames[:5], short)}})
    assert "still tracked 5 frames later" in table and "| 0.771 |" in table
    assert table.splitlines()[-1].startswith("| short | r2d2 |") and "| n/a |" in table.splitlines()[-1]


def _pan(folder: Path, textured_image: np.ndarray) -> Sequence:
    """Four views of a scene, each 3 px right of the one before."""
    scene = cv2.GaussianBlur(cv2.resize(textured_image, (480, 240)), (3, 3), 0)
    paths = []
    for index in range(4):
        path = folder / f"{index}.png"
        cv2.imwrite(str(path), scene[:, 3 * index : 3 * index + 320])
        paths.append(path)
    return Sequence("pan", paths, None, CameraCalibration(320, 240, K, (0.0,) * 5))


def test_klt_keeps_ids_on_a_panning_camera(tmp_path: Path, textured_image: np.ndarray) -> None:
    sequence = _pan(tmp_path, textured_image)
    frames = track_klt(sequence, count=150)
    last = frames[-1]
    assert len(frames[0].raw) > 50
    survivors = last.tracks.lengths == 4
    assert survivors.sum() >= 0.5 * len(frames[0].raw)
    first_position = {i: p for i, p in zip(frames[0].tracks.ids.tolist(), frames[0].raw)}
    moved = np.array([first_position[i] - p for i, p in zip(last.tracks.ids[survivors].tolist(), last.raw[survivors])])
    np.testing.assert_allclose(moved, np.broadcast_to([9.0, 0.0], moved.shape), atol=0.3)


class _CornerCache:
    """Stands in for the feature cache: each frame's Shi-Tomasi corners, all with one descriptor."""

    def features(self, method: object, path: Path) -> Features:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        corners = cv2.goodFeaturesToTrack(image, 300, 0.01, 5).reshape(-1, 2)
        keypoints = torch.from_numpy(np.column_stack([corners, np.full(len(corners), 8.0)]).astype(np.float32))
        descriptors = torch.nn.functional.normalize(torch.ones(len(corners), 8), dim=1)
        return Features(keypoints, descriptors, torch.linspace(1, 0.1, len(corners)), image.shape[::-1])


def test_flow_tracking_keeps_ids_on_a_panning_camera(tmp_path: Path, textured_image: np.ndarray) -> None:
    sequence = _pan(tmp_path, textured_image)
    frames = track_flow(sequence, None, _CornerCache())  # type: ignore[arg-type]
    last = frames[-1]
    survivors = last.tracks.lengths == 4
    assert len(frames[0].raw) > 50 and survivors.sum() >= 0.5 * len(frames[0].raw)
    first_position = {i: p for i, p in zip(frames[0].tracks.ids.tolist(), frames[0].raw)}
    moved = np.array([first_position[i] - p for i, p in zip(last.tracks.ids[survivors].tolist(), last.raw[survivors])])
    np.testing.assert_allclose(moved, np.broadcast_to([9.0, 0.0], moved.shape), atol=0.3)
    np.testing.assert_allclose(last.rectified, last.raw, atol=1e-3)  # no distortion: the same pixels


def test_scores_of_a_camera_turning_and_moving_along_every_axis(tmp_path: Path) -> None:
    """A camera on a curve (its positions on no line through the world origin, so that no term of the
    relative pose cancels) with 0.12 px of noise; 20 tracks step 2 px across their true epipolar line in
    the last frame: a Sampson error of about 1.4 px, inconsistent at 1 px."""
    rng = np.random.default_rng(2)
    scene = np.column_stack([rng.uniform(-6, 6, 200), rng.uniform(-4, 4, 200), rng.uniform(10, 30, 200)])
    poses = np.stack([np.hstack([cv2.Rodrigues(np.array([0.02, 0.03, -0.01]) * i)[0],
                                 [[0.3 * i + 0.4], [-0.2 * i + 0.1 * i * i], [0.5 * i]]]) for i in range(4)])
    sequence = Sequence("turning", [tmp_path / f"{i}.png" for i in range(4)], None,
                        CameraCalibration(640, 480, K, (0.0,) * 5), poses)
    book, frames = TrackBook(), []
    for index, pose in enumerate(poses):
        points = _project(scene, pose) + rng.normal(0, 0.12, (200, 2))
        if index == 3:
            relative = np.linalg.inv(np.vstack([poses[3], [0, 0, 0, 1]])) @ np.vstack([poses[2], [0, 0, 0, 1]])
            t = relative[:3, 3]
            essential = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]]) @ relative[:3, :3]
            lines = np.column_stack([_project(scene[:20], poses[2]), np.ones(20)]) @ (
                np.linalg.inv(K).T @ essential @ np.linalg.inv(K)).T
            points[:20] += 2 * lines[:, :2] / np.linalg.norm(lines[:, :2], axis=1, keepdims=True)
        # Points 190-199 lose their tracks after frame 1 and start new ones in frame 2: tracks of two frames.
        continued = np.arange(200) if index != 2 else np.arange(190)
        matches = np.zeros((0, 2), int) if index == 0 else np.column_stack([continued, continued])
        frames.append(TrackedFrame(points, points, book.update(points, matches), []))
    scores = score_tracks(frames, sequence)
    assert scores["frames"] == 4 and scores["features_mean"] == 200.0
    assert scores["track_length_mean"] == round((190 * 4 + 20 * 2) / 210, 2) and scores["track_length_median"] == 4
    assert scores["tracked_share"] == round((1 + 0.95 + 1) / 3, 3)  # frames 1-3; frame 2's new points are untracked
    assert scores["consistent_share"] == round(1 - 20 / 210, 3)  # the 20 broken tracks of the 210 seen twice
    for name in ("rotation_error_median_deg", "translation_error_median_deg"):  # the noise's errors, to 0.001 deg
        assert 0 < scores[name] < 1 and scores[name] == round(scores[name], 3)


def test_scores_of_a_few_hand_made_tracks(tmp_path: Path) -> None:
    """Six frames of two or three points, whose tracks are spelled out: every score as the report rounds it."""
    points = np.array([[100.0, 100], [200, 150], [300, 200]])
    # Matches (previous index, index) into each frame; the tracks: A (index 0) in all six frames, B (1) in
    # frames 0-2, B' (1) in frames 3-4, one-frame tracks otherwise.
    steps = [[], [(0, 0), (1, 1)], [(0, 0), (1, 1)], [(0, 0)], [(0, 0), (1, 1)], [(0, 0)]]
    book, frames = TrackBook(), []
    for index, step in enumerate(steps):
        here = points if index < 5 else points[:2]
        frames.append(TrackedFrame(here, here, book.update(here, np.array(step, int).reshape(-1, 2)), []))
    sequence = Sequence("hand-made", [tmp_path / f"{i}.png" for i in range(6)], None,
                        CameraCalibration(640, 480, K, (0.0,) * 5))
    scores = score_tracks(frames, sequence)
    assert scores["features_mean"] == 2.8  # 17 points over 6 frames, to one decimal
    assert scores["track_length_mean"] == 3.67 and scores["track_length_median"] == 3  # lengths 6, 3 and 2
    assert scores["tracked_share"] == round((2 / 3 + 2 / 3 + 1 / 3 + 2 / 3 + 1 / 2) / 5, 3)
    assert scores["survival_share"] == 0.333  # of frame 0's three points, A alone is in frame 5
    unmatched = [TrackedFrame(points, points, TrackBook().update(points, np.zeros((0, 2), int)), [])] * 2
    untracked = score_tracks(unmatched, sequence)
    assert untracked["track_length_mean"] == 0.0 and untracked["track_length_median"] == 0.0  # no track seen twice


def test_consistent_share_of_a_single_broken_track(tmp_path: Path) -> None:
    """Two frames and one track, 3 px off its epipolar line: nothing is consistent (and no pose is found)."""
    poses = _poses(2)
    sequence = Sequence("one track", [tmp_path / f"{i}.png" for i in range(2)], None,
                        CameraCalibration(640, 480, K, (0.0,) * 5), poses)
    point = np.array([[0.5, 0.2, 10.0]])
    book, frames = TrackBook(), []
    for index, pose in enumerate(poses):
        pixels = _project(point, pose) + [0.0, 3.0 * index]  # a sideways motion: its epipolar lines are rows
        matches = np.zeros((0, 2), int) if index == 0 else np.array([[0, 0]])
        frames.append(TrackedFrame(pixels, pixels, book.update(pixels, matches), []))
    assert score_tracks(frames, sequence)["consistent_share"] == 0.0


class _PatchCache:
    """Stands in for the feature cache: each frame's Shi-Tomasi corners described by their 9x9 patch."""

    def features(self, method: object, path: Path) -> Features:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        corners = cv2.goodFeaturesToTrack(image, 200, 0.01, 6).reshape(-1, 2)
        corners = corners[((corners >= 5) & (corners < np.array(image.shape[::-1]) - 5)).all(axis=1)]
        patches = np.stack([image[int(y) - 4:int(y) + 5, int(x) - 4:int(x) + 5].ravel() for x, y in corners])
        descriptors = torch.nn.functional.normalize(torch.from_numpy(patches - patches.mean(axis=1, keepdims=True)), dim=1)
        keypoints = torch.from_numpy(np.column_stack([corners, np.full(len(corners), 8.0)]).astype(np.float32))
        return Features(keypoints, descriptors, torch.linspace(1, 0.1, len(corners)), image.shape[::-1])


def test_descriptor_tracking_of_a_method_on_rectified_pixels(tmp_path: Path, textured_image: np.ndarray) -> None:
    pan = _pan(tmp_path, textured_image)
    # A lens with distortion: the tracker sees rectified pixels, the frames keep both.
    sequence = Sequence("pan", pan.frames, None, CameraCalibration(320, 240, K, (-0.05, 0.0, 0.0, 0.0, 0.0)))
    ticks: list[int] = []
    cache = _PatchCache()
    frames = track_method(sequence, None, cache, progress=lambda: ticks.append(1),  # type: ignore[arg-type]
                          config=TrackerConfig(max_descriptor_distance=0.5))
    assert len(frames) == 4 and len(ticks) == 4
    camera = camera_model(sequence)
    for frame, path in zip(frames, sequence.frames):
        features = cache.features(None, path)
        kept = [int(np.flatnonzero((features.keypoints[:, :2].numpy() == point).all(axis=1))[0]) for point in frame.raw]
        assert frame.descriptors is not None and torch.equal(frame.descriptors, features.descriptors[kept])
        np.testing.assert_allclose(frame.rectified, rectify_points(frame.raw, camera), atol=1e-4)
        assert np.abs(frame.rectified - frame.raw).max() > 0.5  # the lens moved them
    survivors = frames[-1].tracks.lengths == 4
    assert survivors.sum() >= 0.5 * len(frames[0].raw)
    first_position = {i: p for i, p in zip(frames[0].tracks.ids.tolist(), frames[0].raw)}
    moved = np.array([first_position[i] - p for i, p in
                      zip(frames[-1].tracks.ids[survivors].tolist(), frames[-1].raw[survivors])])
    np.testing.assert_allclose(moved, np.broadcast_to([9.0, 0.0], moved.shape), atol=0.5)
    assert draw_last_frame(sequence, frames).shape == (240, 320, 3)
    np.testing.assert_array_equal(draw_last_frame(sequence, frames),
                                  draw_tracks(read_rgb(sequence.frames[-1]), frames[-1].trails))


def test_klt_keeps_at_most_count_points_and_new_corners_away_from_tracked_ones(tmp_path: Path,
                                                                              textured_image: np.ndarray) -> None:
    sequence = _pan(tmp_path, textured_image)
    ticks: list[int] = []
    frames = track_klt(sequence, count=60, progress=lambda: ticks.append(1))
    assert len(ticks) == 4 and all(len(frame.raw) <= 60 for frame in frames) and len(frames[0].raw) == 60
    for frame in frames[1:]:
        new, old = frame.raw[frame.tracks.lengths == 1], frame.raw[frame.tracks.lengths > 1]
        if len(new) and len(old):
            assert np.linalg.norm(new[:, None] - old[None], axis=2).min() >= 8 - 1e-3
    assert all(frame.descriptors is None for frame in frames)  # KLT's points have no descriptors
    assert not (np.abs(frames[0].raw) < 0.5).all(axis=1).any(), "the first frame holds corners only"
    image = cv2.cvtColor(read_rgb(sequence.frames[0]), cv2.COLOR_RGB2GRAY)
    best = _new_corners(image, np.zeros((0, 2)), 10)
    others = _new_corners(image, best, 30)  # the best corners are taken: the next ones, 8 px or more from them
    assert len(others) == 30 and np.linalg.norm(others[:, None] - best[None], axis=2).min() >= 8 - 1e-3
    beside = _new_corners(image, best[:1] + [9.0, 0.0], 10)  # a tracked point 9 px away leaves the best corner free
    assert (beside == best[0]).all(axis=1).any()
    assert _new_corners(image, np.zeros((0, 2)), 0).shape == (0, 2)
    assert _new_corners(image, np.zeros((0, 2)), 1).shape == (1, 2)
    assert _new_corners(np.full((50, 50), 7, np.uint8), np.zeros((0, 2)), 5).shape == (0, 2)  # a flat image
