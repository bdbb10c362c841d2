"""The camera front end (ROS-free): one id sequence for many trackers, and tracks that start over
whenever earlier ones would describe other points or other coordinates."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from r2d2_ros.features import Features
from r2d2_ros.tracking import CameraModel, TrackerConfig, TrackIdSequence, TrackingFrontEnd

CONFIG = TrackerConfig(max_descriptor_distance=0.6)


def _features(seed: int = 0, count: int = 60, size: tuple[int, int] = (160, 120)) -> Features:
    """The same scene every call (one seed): every point matches itself in the next frame."""
    generator = torch.Generator().manual_seed(seed)
    points = torch.rand(count, 2, generator=generator) * torch.tensor([size[0] - 20.0, size[1] - 20.0]) + 10
    descriptors = torch.nn.functional.normalize(torch.randn(count, 32, generator=generator), dim=1)
    keypoints = torch.cat([points, torch.full((count, 1), 32.0)], dim=1)
    return Features(keypoints, descriptors, torch.linspace(1, 0.5, count), size)


def _camera(fx: float = 150.0) -> CameraModel:
    info = SimpleNamespace(width=160, height=120, k=[fx, 0, 80, 0, fx, 60, 0, 0, 1], d=[0.0] * 5,
                           r=[1.0, 0, 0, 0, 1, 0, 0, 0, 1], p=[fx, 0, 80, 0, 0, fx, 60, 0, 0, 0, 1, 0],
                           distortion_model="plumb_bob")
    return CameraModel.from_camera_info(info)


def test_an_id_sequence_never_gives_one_id_twice_across_threads() -> None:
    sequence = TrackIdSequence()
    taken: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: taken.extend(sequence.take(7) for _ in range(200))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = np.concatenate(taken)
    assert len(ids) == 4 * 200 * 7 and len(np.unique(ids)) == len(ids)
    assert sequence.take(0).dtype == np.int64


def test_two_cameras_sharing_a_sequence_never_share_an_id() -> None:
    ids = TrackIdSequence()
    left, right = TrackingFrontEnd(ids), TrackingFrontEnd(ids)
    seen = {"left": set(), "right": set()}
    for stamp in range(3):
        seen["left"] |= set(left.process(_features(0), None, True, CONFIG, stamp).tracks.ids.tolist())
        seen["right"] |= set(right.process(_features(1), None, True, CONFIG, stamp).tracks.ids.tolist())
    assert seen["left"] and seen["right"] and not seen["left"] & seen["right"]


def test_tracks_go_on_while_nothing_changes() -> None:
    front_end = TrackingFrontEnd()
    first = front_end.process(_features(), _camera(), True, CONFIG, 10)
    second = front_end.process(_features(), _camera(), True, CONFIG, 11)
    assert first.restart == second.restart == ""
    assert set(second.tracks.ids.tolist()) == set(first.tracks.ids.tolist()) and (second.tracks.lengths == 2).all()


@pytest.mark.parametrize(("change", "reason"), [
    ({"stamp": 9}, "stamps jumped back"),
    ({"camera": None}, "rectification switched off"),
    ({"camera": _camera(160.0)}, "calibration changed"),
    ({"features": _features(size=(200, 120))}, "image size changed"),
    ({"config": TrackerConfig(max_descriptor_distance=0.5)}, "tracking settings changed"),
])
def test_tracks_start_over_with_new_ids_when_their_points_or_coordinates_change(change: dict, reason: str) -> None:
    front_end = TrackingFrontEnd()
    first = front_end.process(_features(), _camera(), True, CONFIG, 10)
    frame = {"features": _features(), "camera": _camera(), "config": CONFIG, "stamp": 11, **change}
    after = front_end.process(frame["features"], frame["camera"], True, frame["config"], frame["stamp"])
    assert after.restart == reason
    assert (after.tracks.lengths == 1).all()
    assert not set(after.tracks.ids.tolist()) & set(first.tracks.ids.tolist()), "ids are never reused"


def test_switching_rectification_on_restarts_and_rectified_is_said() -> None:
    front_end = TrackingFrontEnd()
    raw = front_end.process(_features(), None, True, CONFIG, 1)
    rectified = front_end.process(_features(), _camera(), True, CONFIG, 2)
    assert not raw.rectified and rectified.rectified and rectified.restart == "rectification switched on"


def test_an_equal_stamp_is_not_a_jump_back_and_tracking_off_forgets() -> None:
    front_end = TrackingFrontEnd()
    front_end.process(_features(), None, True, CONFIG, 5)
    assert front_end.process(_features(), None, True, CONFIG, 5).restart == ""
    assert front_end.process(_features(), None, False, CONFIG, 6).tracks is None
    assert front_end.process(_features(), None, True, CONFIG, 7).restart == "", "a first frame is not a restart"


@pytest.mark.parametrize("camera", [None, _camera()], ids=["raw", "rectified"])
def test_without_tracking_the_features_are_published_as_rectified_as_asked(camera: CameraModel | None) -> None:
    front_end = TrackingFrontEnd()
    result = front_end.process(_features(), camera, False, CONFIG, 1)
    assert result.rectified == (camera is not None) and result.tracks is None
    assert result.restart == "" and result.kept is None and front_end.trails() == []


@pytest.mark.parametrize("camera", [None, _camera()], ids=["raw", "rectified"])
def test_max_points_keeps_a_subset_and_says_which(camera: CameraModel | None) -> None:
    front_end = TrackingFrontEnd()
    every = front_end.process(_features(), camera, True, CONFIG, 1)
    assert every.kept is None and len(every.features) == 60
    limited = TrackerConfig(max_descriptor_distance=0.6, max_points=20)
    subset = TrackingFrontEnd().process(_features(), camera, True, limited, 1)
    assert subset.kept is not None and len(subset.kept) == len(subset.features) == 20
    assert subset.rectified == (camera is not None)
    assert len(subset.tracks.ids) == 20


def test_trails_follow_the_tracked_points() -> None:
    front_end = TrackingFrontEnd()
    front_end.process(_features(), None, True, CONFIG, 1)
    front_end.process(_features(), None, True, CONFIG, 2)
    trails = front_end.trails()
    assert len(trails) == 60 and all(trail.shape == (2, 2) for trail in trails)


def test_flow_mode_needs_the_image_and_publishes_flowed_points_in_image_pixels() -> None:
    flow = TrackerConfig(max_descriptor_distance=0.6, mode="flow")
    front_end = TrackingFrontEnd()
    with pytest.raises(ValueError, match="image"):
        front_end.process(_features(), None, True, flow, 1)
    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    first = front_end.process(_features(), _camera(), True, flow, 2, image)
    assert first.image_features is not None and first.rectified and first.kept is None
    assert len(first.image_features) == len(first.features) == len(first.tracks.ids)
    second = front_end.process(_features(), _camera(), True, flow, 3, image)
    assert second.restart == "" and (second.tracks.lengths >= 2).any()
    switched = front_end.process(_features(), _camera(), True, CONFIG, 4)
    assert switched.restart == "tracking settings changed" and switched.image_features is None
