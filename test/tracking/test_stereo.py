"""Stereo ids (ROS-free): partners on the same rectified row with a disparity take the left id, for good."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros.features import Features
from r2d2_ros.tracking import CameraModel, TrackerConfig, TrackIdSequence, TrackingFrontEnd
from r2d2_ros.tracking.stereo import StereoConfig, StereoView, ids_to_adopt, rig_problem, stereo_matches

K = np.array([[400.0, 0, 320], [0, 400, 240], [0, 0, 1]])
BASELINE = 0.5


def _camera(baseline: float = 0.0, rotation: np.ndarray = np.eye(3)) -> CameraModel:
    projection = np.hstack([K, [[-K[0, 0] * baseline], [0], [0]]])
    return CameraModel(640, 480, K, np.zeros(5), rotation, projection)


def _descriptors(count: int, seed: int) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.from_numpy(np.random.default_rng(seed).normal(size=(count, 32))).float(),
                                         dim=1)


def _view(points: np.ndarray, descriptors: torch.Tensor, camera: CameraModel | None, rectified: bool = True
          ) -> StereoView:
    return StereoView(np.asarray(points, np.float32), descriptors, camera, rectified)


def test_partners_pair_by_row_and_disparity_and_others_do_not() -> None:
    rng = np.random.default_rng(0)
    left = np.column_stack([rng.uniform(100, 600, 40), rng.uniform(20, 460, 40)])
    right = left - [[25.0, 0]]  # disparity 25 px
    right[:10, 1] += 0.6  # within the 1 px row tolerance
    right[10:15, 1] += 1.5  # off the row
    right[15:20, 0] = left[15:20, 0] + 3  # negative disparity
    descriptors = _descriptors(40, 1)
    right_extra = rng.uniform(0, 640, (8, 2))  # points only the right camera sees
    right_descriptors = torch.cat([descriptors, _descriptors(8, 2)])
    matches = stereo_matches(_view(left, descriptors, _camera()),
                             _view(np.vstack([right, right_extra]), right_descriptors, _camera(BASELINE)))
    assert matches.skipped == ""
    paired = {tuple(pair) for pair in matches.pairs.tolist()}
    assert {(index, index) for index in [*range(10), *range(20, 40)]} <= paired
    assert not any(left_index in range(10, 20) and left_index == right_index for left_index, right_index in paired)
    assert all(left_index == right_index for left_index, right_index in paired), "only true partners"


def test_raw_points_are_checked_on_the_rows_of_the_rectified_rig() -> None:
    rng = np.random.default_rng(3)
    rotation = cv2.Rodrigues(np.array([0.02, 0.01, 0.01]))[0]
    scene = np.column_stack([rng.uniform(-3, 3, 30), rng.uniform(-2, 2, 30), rng.uniform(5, 15, 30)])
    left = scene @ K.T
    right = (scene - [BASELINE, 0, 0]) @ K.T
    left, right = left[:, :2] / left[:, 2:], right[:, :2] / right[:, 2:]
    # The right camera's raw image is turned against the rectified one by R: raw = K R^T K^-1 rectified.
    raw_right = np.column_stack([right, np.ones(30)]) @ (K @ rotation.T @ np.linalg.inv(K)).T
    raw_right = raw_right[:, :2] / raw_right[:, 2:]
    descriptors = _descriptors(30, 4)
    left_view = _view(left, descriptors, _camera(), rectified=False)
    matches = stereo_matches(left_view, _view(raw_right, descriptors, _camera(BASELINE, rotation), rectified=False))
    assert sorted(matches.pairs.tolist()) == [[index, index] for index in range(30)]
    # Taken as rectified, the turned points are off their rows (about 8 px): none finds its partner.
    unrectified = stereo_matches(left_view, _view(raw_right, descriptors, _camera(BASELINE), rectified=False))
    assert len(unrectified.pairs) == 0


def test_without_a_rectified_rig_nothing_is_searched_and_the_reason_is_given() -> None:
    descriptors = _descriptors(3, 5)
    view = _view(np.zeros((3, 2)), descriptors, None)
    assert "no usable camera_info for both" in stereo_matches(view, view).skipped
    assert "baseline" in rig_problem(_camera(), _camera())
    assert "baseline" in rig_problem(_camera(), _camera(-BASELINE)), "the second camera left of the first"
    other = CameraModel(640, 480, K, np.zeros(5), np.eye(3), np.hstack([K * [[1.1], [1.1], [1]], [[-200], [0], [0]]]))
    assert "intrinsics" in rig_problem(_camera(), other)
    assert rig_problem(_camera(), _camera(BASELINE)) == ""


def test_a_right_track_adopts_once_and_never_an_id_another_right_track_has() -> None:
    left_ids = np.array([100, 101, 102, 103])
    right_ids = np.array([7, 8, 101, 9])
    pairs = np.array([[0, 0], [1, 1], [2, 2], [3, 3]])
    indices, ids = ids_to_adopt(left_ids, right_ids, pairs, adopted={101, 9})
    # 0 takes 100; 1 would take 101, which right point 2 carries; 2 and 3 adopted before and keep theirs.
    assert indices.tolist() == [0] and ids.tolist() == [100]


def _features(points: np.ndarray, descriptors: torch.Tensor) -> Features:
    keypoints = torch.from_numpy(np.column_stack([points, np.full(len(points), 32.0)]).astype(np.float32))
    return Features(keypoints, descriptors, torch.linspace(1, 0.5, len(points)), (640, 480))


def _project(scene: np.ndarray, camera_x: float, camera_z: float) -> np.ndarray:
    pixels = (scene - [camera_x, 0, camera_z]) @ K.T
    return pixels[:, :2] / pixels[:, 2:]


def test_ids_of_stereo_partners_are_the_left_ones_and_stay_over_frames() -> None:
    rng = np.random.default_rng(6)
    count = 120
    scene = np.column_stack([rng.uniform(-3, 3, count), rng.uniform(-2, 2, count), rng.uniform(6, 15, count)])
    descriptors = _descriptors(count, 7)
    # Points 0..79 both cameras see, 80..99 only the left one, 100..119 only the right one.
    in_left, in_right = np.arange(100), np.r_[0:80, 100:120]
    ids = TrackIdSequence()
    left_end, right_end = TrackingFrontEnd(ids), TrackingFrontEnd(ids)
    left_camera, right_camera = _camera(), _camera(BASELINE)
    config = TrackerConfig()
    published = []
    for camera_z in (0.0, 0.3):
        left = left_end.process(_features(_project(scene[in_left], 0, camera_z), descriptors[in_left]),
                                left_camera, True, config)
        right = right_end.process(_features(_project(scene[in_right], BASELINE, camera_z), descriptors[in_right]),
                                  right_camera, True, config)
        matches = stereo_matches(_view(left.features.keypoints[:, :2].numpy(), left.features.descriptors, left_camera),
                                 _view(right.features.keypoints[:, :2].numpy(), right.features.descriptors,
                                       right_camera))
        assert sorted(matches.pairs.tolist()) == [[index, index] for index in range(80)]
        indices, new_ids = ids_to_adopt(left.tracks.ids, right.tracks.ids, matches.pairs, set())
        if len(indices):
            right = right_end.adopt_ids(right, indices, new_ids)
        published.append((left.tracks.ids, right.tracks.ids))
    for left_ids, right_ids in published:
        assert (right_ids[:80] == left_ids[:80]).all()
        assert len(set(right_ids[80:]) | set(left_ids)) == 20 + 100, "unmatched right points keep their own ids"
    (first_left, first_right), (second_left, second_right) = published
    assert (second_right == first_right).all() and (second_left == first_left).all(), "ids stay over frames"
    assert len(set(first_right.tolist())) == len(first_right)


def test_a_book_refuses_an_id_one_of_its_live_tracks_has() -> None:
    end = TrackingFrontEnd()
    result = end.process(_features(np.array([[10.0, 10], [50, 50]]), _descriptors(2, 8)), None, True, TrackerConfig())
    with pytest.raises(ValueError, match="already names"):
        end.adopt_ids(result, np.array([0]), result.tracks.ids[1:])


def test_stereo_config_limits_on_both_sides() -> None:
    StereoConfig(row_tolerance_px=0.0, max_disparity_px=0.0, max_descriptor_distance=2.0)  # the extremes allowed
    for bad in ({"row_tolerance_px": -0.1}, {"max_disparity_px": -0.1}, {"max_descriptor_distance": 0.0},
                {"max_descriptor_distance": 2.01}):
        with pytest.raises(ValueError):
            StereoConfig(**bad)


def test_the_reason_names_the_camera_without_a_model_and_a_vertical_offset() -> None:
    assert rig_problem(None, _camera(BASELINE)) == "no usable camera_info for the first camera"
    assert rig_problem(_camera(), None) == "no usable camera_info for the second camera"
    lifted = CameraModel(640, 480, K, np.zeros(5), np.eye(3), np.hstack([K, [[-200.0], [5.0], [0]]]))
    assert rig_problem(_camera(), lifted).endswith("got -200, 5)")
    view = _view(np.zeros((3, 2)), _descriptors(3, 5), None)
    assert stereo_matches(view, view).pairs.shape == (0, 2)
    empty = _view(np.zeros((0, 2)), _descriptors(0, 5), _camera())
    assert stereo_matches(empty, _view(np.zeros((3, 2)), _descriptors(3, 5), _camera(BASELINE))).pairs.shape == (0, 2)


def test_a_single_point_pairs_at_exactly_the_row_tolerance_and_the_largest_disparity() -> None:
    descriptors = _descriptors(1, 6)
    left = _view([[300.0, 200.0]], descriptors, _camera())
    config = StereoConfig(row_tolerance_px=1.0, max_disparity_px=20.0)
    for right_point, paired in (([280.0, 201.0], True), ([280.0, 201.01], False), ([279.99, 201.0], False)):
        matches = stereo_matches(left, _view([right_point], descriptors, _camera(BASELINE)), config)
        assert matches.pairs.tolist() == ([[0, 0]] if paired else [])
