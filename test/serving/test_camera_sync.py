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


PERIOD = 1_000_000_000 // 30  # 30 Hz, in ns
FRAMES = 100  # frames in one loop of the replayed bag
LAST = FRAMES - 1
Arrival = tuple[str, int, int]  # camera, loop of the bag, frame index in the loop
# Identical stamps, and stamps 2 ms apart from one camera to the next under a 5 ms tolerance.
STAMPINGS = [pytest.param(0, 0, id="identical"), pytest.param(5 * MS, 2 * MS, id="2ms-apart")]


def _replay(sync: StampSynchronizer[str], arrivals: list[Arrival],
            offset_ns: int = 0) -> tuple[list[dict[str, str]], list[str], list[str]]:
    """Adds the frames of a looped bag, named camera<loop>.<index>, the i-th camera's stamped ``i * offset_ns``
    after the frame's time in the bag; returns the sets, the unpaired frames and the frames that restarted."""
    sets, unpaired, restarts = [], [], []
    for camera, loop, index in arrivals:
        name = f"{camera}{loop}.{index}"
        result = sync.add(camera, index * PERIOD + sync.cameras.index(camera) * offset_ns, name)
        if result.matched is not None:
            sets.append(result.matched)
        unpaired += result.unpaired
        if result.restarted:
            restarts.append(name)
    return sets, unpaired, restarts


def _in_step(cameras: list[str], loop: int, indices: range) -> list[Arrival]:
    """The frames ``indices`` of one loop, arriving one camera after the other."""
    return [(camera, loop, index) for index in indices for camera in cameras]


def _sets(cameras: list[str], loop: int, indices: range) -> list[dict[str, str]]:
    """The sets of the frames ``indices`` of one loop."""
    return [{camera: f"{camera}{loop}.{index}" for camera in cameras} for index in indices]


@pytest.mark.parametrize(("leader", "straggler"), [("a", "b"), ("b", "a")])
@pytest.mark.parametrize("lead", [1, 4], ids=["straggler-next", "straggler-after-4"])
@pytest.mark.parametrize(("tolerance", "offset"), STAMPINGS)
def test_a_straggler_of_the_old_loop_does_not_stall_the_new_loop(leader: str, straggler: str, lead: int,
                                                                    tolerance: int, offset: int) -> None:
    """At the loop point the leader's first ``lead`` frames of the new loop come before the straggler's last
    frame of the old one (the bug: its stamp, 3.3 s ahead, passed over every new frame of the leader)."""
    cameras = ["a", "b"]
    sync: StampSynchronizer[str] = StampSynchronizer(cameras, tolerance_ns=tolerance)
    loop_point = ([(leader, 1, LAST)] + [(leader, 2, index) for index in range(lead)] + [(straggler, 1, LAST)]
                  + [(straggler, 2, index) for index in range(lead)])
    sets, unpaired, restarts = _replay(
        sync, _in_step(cameras, 1, range(LAST)) + loop_point + _in_step(cameras, 2, range(lead, FRAMES)), offset)
    assert sets == _sets(cameras, 1, range(LAST)) + _sets(cameras, 2, range(FRAMES))
    # The leader's last old frame is given up when its new loop starts; the straggler's comes too late.
    assert unpaired == [f"{leader}1.{LAST}", f"{straggler}1.{LAST}"]
    assert restarts == [f"{leader}2.0"]


@pytest.mark.parametrize(("tolerance", "offset"), STAMPINGS)
def test_three_cameras_looping_one_after_the_other_pair_every_set_of_the_new_loop(tolerance: int,
                                                                                    offset: int) -> None:
    cameras = ["a", "b", "c"]
    sync: StampSynchronizer[str] = StampSynchronizer(cameras, tolerance_ns=tolerance)
    # a loops first, b next, and c's last old frame comes after new frames of both.
    loop_point = [("a", 1, LAST), ("b", 1, LAST), ("a", 2, 0), ("a", 2, 1), ("b", 2, 0), ("c", 1, LAST),
                  ("a", 2, 2), ("b", 2, 1), ("c", 2, 0), ("c", 2, 1), ("b", 2, 2), ("c", 2, 2)]
    sets, unpaired, restarts = _replay(
        sync, _in_step(cameras, 1, range(LAST)) + loop_point + _in_step(cameras, 2, range(3, FRAMES)), offset)
    assert sets == _sets(cameras, 1, range(LAST)) + _sets(cameras, 2, range(FRAMES))
    assert unpaired == [f"a1.{LAST}", f"b1.{LAST}", f"c1.{LAST}"]
    assert restarts == ["a2.0"]


def test_a_camera_silent_for_a_whole_loop_pairs_again_in_the_next() -> None:
    """b jumps back once for two loops of a: it joins a's newest loop rather than the one after its last frame."""
    cameras = ["a", "b"]
    sync: StampSynchronizer[str] = StampSynchronizer(cameras)
    _replay(sync, _in_step(cameras, 1, range(FRAMES)) + [("a", 2, index) for index in range(FRAMES)])
    sets, unpaired, restarts = _replay(sync, _in_step(cameras, 3, range(FRAMES)))
    assert sets == _sets(cameras, 3, range(FRAMES))
    assert unpaired == [f"a2.{index}" for index in range(FRAMES - 8, FRAMES)], "a's queue, given up"
    assert restarts == ["a3.0"]


def test_a_forward_jump_still_pairs() -> None:
    """Every camera pauses, then resumes with stamps 10 s later, one camera's first frame before the other's last."""
    cameras = ["a", "b"]
    sync: StampSynchronizer[str] = StampSynchronizer(cameras)
    resumed = 300  # frames in 10 s
    arrivals = (_in_step(cameras, 1, range(9)) + [("a", 1, 9), ("a", 1, resumed), ("b", 1, 9), ("b", 1, resumed)]
                + _in_step(cameras, 1, range(resumed + 1, resumed + 10)))
    sets, unpaired, restarts = _replay(sync, arrivals)
    assert sets == _sets(cameras, 1, range(10)) + _sets(cameras, 1, range(resumed, resumed + 10))
    assert unpaired == [] and restarts == []


@pytest.mark.parametrize(("cameras", "tolerance", "queue"), [(["left"], 0, 4), (["a", "a"], 0, 4),
                                                             (["a", "b"], -1, 4), (["a", "b"], 0, 0)])
def test_bad_settings_are_refused(cameras: list[str], tolerance: int, queue: int) -> None:
    with pytest.raises(ValueError):
        StampSynchronizer(cameras, tolerance, queue)


def test_an_unknown_camera_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        StampSynchronizer(["left", "right"]).add("middle", 0, "m")


def test_a_result_without_news_says_nothing_restarted() -> None:
    result = StampSynchronizer(["left", "right"]).add("left", 0, "left@0")
    assert result.matched is None and result.unpaired == [] and result.restarted is False


def test_a_jump_back_of_exactly_one_second_is_late_and_one_more_nanosecond_restarts() -> None:
    sync: StampSynchronizer[str] = StampSynchronizer(["left", "right"])
    _feed(sync, [("left", 2000), ("right", 2000)])
    late = sync.add("left", 1000 * MS, "left@1000")
    assert late.unpaired == ["left@1000"] and not late.restarted
    restart = sync.add("right", 1000 * MS - 1, "right@999.999999")
    assert restart.restarted


def test_a_full_queue_gives_up_its_oldest_frame() -> None:
    sync: StampSynchronizer[str] = StampSynchronizer(["left", "right"], queue_size=2)
    sets, unpaired = _feed(sync, [("left", 0), ("left", 33), ("left", 66)])
    assert unpaired == ["left@0"]
    sets, _ = _feed(sync, [("right", 33)])
    assert sets == [{"left": "left@33", "right": "right@33"}]


def test_a_frame_no_newer_than_an_emitted_one_is_unpaired_at_once() -> None:
    sync: StampSynchronizer[str] = StampSynchronizer(["left", "right"])
    _feed(sync, [("left", 33), ("right", 33)])
    assert sync.add("left", 33 * MS, "left@33 again").unpaired == ["left@33 again"], "a duplicate stamp"
    assert sync.add("right", 20 * MS, "right@20").unpaired == ["right@20"], "older than the emitted set"


def test_an_out_of_order_frame_does_not_pull_its_camera_s_stream_back() -> None:
    """The newest stamp of a camera is its maximum: a frame of 50 after one of 100 leaves the stream at 100,
    so the other camera's frame of 70 is passed over at once."""
    sync: StampSynchronizer[str] = StampSynchronizer(["left", "right"], tolerance_ns=5 * MS)
    _, unpaired = _feed(sync, [("left", 100), ("left", 50), ("right", 70)])
    assert unpaired == ["left@50", "right@70"]


def test_three_loops_pair_every_set_whose_frames_both_arrive() -> None:
    """Each loop's last right frame arrives after the next loop's first left frame (a straggler): every
    other set of every loop pairs, also after the second loop point."""
    sync: StampSynchronizer[str] = StampSynchronizer(["left", "right"])
    sets, unpaired, held = [], [], None
    for loop in range(3):
        frames = [(camera, stamp) for stamp in range(0, 3000, 100) for camera in ("left", "right")]
        for index, (camera, stamp) in enumerate(frames[:-1]):
            result = sync.add(camera, stamp * MS, f"{camera}@{loop}:{stamp}")
            sets += [result.matched] if result.matched else []
            unpaired += result.unpaired
            if index == 0 and held is not None:
                unpaired += sync.add("right", 2900 * MS, held).unpaired
        held = f"right@{loop}:2900"
    assert len(sets) == 3 * 29
    assert unpaired == ["left@0:2900", "right@0:2900", "left@1:2900", "right@1:2900"]


def test_a_queue_of_one_frame_is_allowed() -> None:
    sync: StampSynchronizer[str] = StampSynchronizer(["left", "right"], queue_size=1)
    sets, unpaired = _feed(sync, [("left", 0), ("left", 33), ("right", 33)])
    assert unpaired == ["left@0"] and sets == [{"left": "left@33", "right": "right@33"}]
