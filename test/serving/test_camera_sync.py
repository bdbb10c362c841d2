"""Pairing of several cameras' frames by stamp (the node's synchronised-cameras mode)."""
from __future__ import annotations

import pytest

from r2d2_ros.serving.camera_sync import StampSynchronizer

MS = 1_000_000


def _feed(sync: StampSynchronizer[str], frames: list[tuple[str, int]]) -> tuple[list[dict[str, str]], list[str]]:
    """Adds (camera, stamp in ms) frames named camera@stamp; returns the sets and the unpaired frames."""
    sets, unpaired = [], []
    for camera, stamp in frames:
        result = sync.add(camera, stamp * MS, f"{camera}@{stamp}")
        if result.matched is not None:
            sets.append(result.matched)
        unpaired += result.unpaired
    return sets, unpaired


def test_identical_stamps_pair_whatever_the_arrival_order() -> None:
    sync: StampSynchronizer[str] = StampSynchronizer(["left", "right"])
    sets, unpaired = _feed(sync, [("left", 0), ("right", 0), ("right", 33), ("left", 33), ("left", 66), ("right", 66)])
    assert sets == [{"left": "left@0", "right": "right@0"}, {"left": "left@33", "right": "right@33"},
                    {"left": "left@66", "right": "right@66"}]
    assert list(sets[0]) == ["left", "right"], "sets come in camera order"
    assert unpaired == []


def test_exact_mode_does_not_pair_stamps_one_nanosecond_apart() -> None:
    sync: StampSynchronizer[str] = StampSynchronizer(["left", "right"])
    assert sync.add("left", 1000, "l").matched is None
    assert sync.add("right", 1001, "r").matched is None


def test_a_tolerance_pairs_the_nearest_frames() -> None:
    sync: StampSynchronizer[str] = StampSynchronizer(["left", "right"], tolerance_ns=5 * MS)
    sets, unpaired = _feed(sync, [("left", 100), ("right", 103), ("left", 133), ("right", 131), ("right", 164),
                                  ("left", 170)])
    assert sets == [{"left": "left@100", "right": "right@103"}, {"left": "left@133", "right": "right@131"}]
    # right@164 and left@170 are 6 ms apart: above the tolerance, and each passed the other.
    assert unpaired == ["right@164"]


def test_a_lost_frame_leaves_its_partner_unpaired_and_the_next_pair_still_forms() -> None:
    sync: StampSynchronizer[str] = StampSynchronizer(["left", "right"], tolerance_ns=2 * MS)
    sets, unpaired = _feed(sync, [("left", 0), ("left", 33), ("right", 33), ("left", 66), ("right", 66)])
    assert sets == [{"left": "left@33", "right": "right@33"}, {"left": "left@66", "right": "right@66"}]
    assert unpaired == ["left@0"]


def test_a_late_frame_is_unpaired_at_once() -> None:
    sync: StampSynchronizer[str] = StampSynchronizer(["left", "right"])
    sets, unpaired = _feed(sync, [("left", 33), ("right", 33), ("right", 0)])
    assert len(sets) == 1 and unpaired == ["right@0"]


def test_a_silent_camera_bounds_the_other_queue() -> None:
    sync: StampSynchronizer[str] = StampSynchronizer(["left", "right"], queue_size=3)
    sets, unpaired = _feed(sync, [("left", 33 * i) for i in range(10)])
    assert sets == [] and unpaired == [f"left@{33 * i}" for i in range(7)]
    sets, _ = _feed(sync, [("right", 33 * 9)])
    assert sets == [{"left": "left@297", "right": "right@297"}]


def test_three_cameras_wait_for_the_last() -> None:
    sync: StampSynchronizer[str] = StampSynchronizer(["a", "b", "c"], tolerance_ns=1 * MS)
    sets, unpaired = _feed(sync, [("a", 10), ("b", 10), ("a", 20), ("c", 10), ("b", 20), ("c", 21)])
    assert sets == [{"a": "a@10", "b": "b@10", "c": "c@10"}, {"a": "a@20", "b": "b@20", "c": "c@21"}]
    assert unpaired == []


def test_an_out_of_order_frame_is_queued_in_stamp_order() -> None:
    sync: StampSynchronizer[str] = StampSynchronizer(["left", "right"])
    sets, unpaired = _feed(sync, [("left", 66), ("left", 33), ("right", 33), ("right", 66)])
    assert sets == [{"left": "left@33", "right": "right@33"}, {"left": "left@66", "right": "right@66"}]
    assert unpaired == []


def test_a_replay_loop_starts_the_pairing_over() -> None:
    sync: StampSynchronizer[str] = StampSynchronizer(["left", "right"])
    _feed(sync, [("left", 5000), ("right", 5000), ("left", 5033)])
    restart = sync.add("right", 0, "right@0")  # the bag starts again: 5 s back
    assert restart.restarted and restart.unpaired == ["left@5033"] and restart.matched is None
    sets, unpaired = _feed(sync, [("left", 0), ("left", 33), ("right", 33)])
    assert sets == [{"left": "left@0", "right": "right@0"}, {"left": "left@33", "right": "right@33"}]
    assert unpaired == []


@pytest.mark.parametrize(("cameras", "tolerance", "queue"), [(["left"], 0, 4), (["a", "a"], 0, 4),
                                                             (["a", "b"], -1, 4), (["a", "b"], 0, 0)])
def test_bad_settings_are_refused(cameras: list[str], tolerance: int, queue: int) -> None:
    with pytest.raises(ValueError):
        StampSynchronizer(cameras, tolerance, queue)


def test_an_unknown_camera_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        StampSynchronizer(["left", "right"]).add("middle", 0, "m")
