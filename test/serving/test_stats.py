"""The latest-set slot, stage faults and the node's statistics, at the values a caller reads back."""
from __future__ import annotations

import threading

import pytest

from r2d2_ros.serving.stats import FrameDropped, LatestFrameSlot, NodeStats, frame_stage


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _take_in_a_thread(slot: LatestFrameSlot[int]) -> tuple[threading.Thread, list[int | None]]:
    """A consumer blocked in ``take()`` (no timeout); a daemon, so that a take that never returns cannot hang pytest."""
    result: list[int | None] = []
    consumer = threading.Thread(target=lambda: result.append(slot.take()), daemon=True)
    consumer.start()
    return consumer, result


def test_a_waiting_take_gets_the_item_put_later() -> None:
    slot: LatestFrameSlot[int] = LatestFrameSlot()
    consumer, result = _take_in_a_thread(slot)
    slot.put(7)
    consumer.join(10)
    assert result == [7], "an open, empty slot waits for an item instead of returning None"


def test_after_close_take_returns_none_at_once() -> None:
    slot: LatestFrameSlot[int] = LatestFrameSlot()
    consumer, result = _take_in_a_thread(slot)
    slot.close()
    consumer.join(10)
    later, later_result = _take_in_a_thread(slot)
    later.join(10)
    assert result == [None] and later_result == [None]


def test_a_stage_fault_names_the_stage_and_the_exception() -> None:
    with pytest.raises(FrameDropped) as drop:
        with frame_stage("overlay_error"):
            raise ValueError("no pixels")
    assert drop.value.reason == "overlay_error"
    assert str(drop.value) == "overlay_error: ValueError: no pixels"


def test_defaults_one_unnamed_camera_and_a_five_second_window() -> None:
    """The node builds its NodeStats with the default window; rates are counts over it."""
    clock = FakeClock()
    stats = NodeStats(clock=clock)
    for _ in range(10):
        stats.set_received()
    stats.camera_frame("")
    snapshot = stats.snapshot()
    assert snapshot.input_rate_hz == pytest.approx(10 / 5.0)
    assert snapshot.camera_frames == {"": 1} and snapshot.camera_rates_hz == {"": pytest.approx(1 / 5.0)}


def test_a_fresh_node_has_no_failure_and_no_unpaired_frames() -> None:
    snapshot = NodeStats(clock=FakeClock()).snapshot()
    assert snapshot.last_failure == "" and snapshot.failure_streak == 0
    assert (snapshot.unpaired_frames, snapshot.recent_unpaired_frames) == (0, 0)
    assert (snapshot.latency_mean_ms, snapshot.latency_max_ms) == (0.0, 0.0), "no published set: no latency"


def test_counts_add_up_over_repeated_events() -> None:
    clock = FakeClock()
    stats = NodeStats(clock=clock)
    for _ in range(3):
        stats.set_published(stats.set_received())
        stats.set_superseded()
        stats.set_dropped("size", stats.set_received())
        stats.frame_unpaired()
    snapshot = stats.snapshot()
    assert (snapshot.received, snapshot.published) == (6, 3)
    assert snapshot.dropped == {"superseded": 3, "size": 3}
    assert (snapshot.unpaired_frames, snapshot.recent_unpaired_frames) == (3, 3)


def test_a_published_set_clears_the_last_failure() -> None:
    stats = NodeStats(clock=FakeClock())
    stats.set_dropped("decode", stats.set_received())
    assert stats.snapshot().last_failure == "decode"
    stats.set_published(stats.set_received())
    assert (stats.snapshot().last_failure, stats.snapshot().failure_streak) == ("", 0)


def test_latency_mean_and_max_over_several_sets() -> None:
    clock = FakeClock()
    stats = NodeStats(clock=clock)
    for latency_s in (0.010, 0.030):
        received_at = stats.set_received()
        clock.now += latency_s
        stats.set_published(received_at)
    snapshot = stats.snapshot()
    assert snapshot.latency_mean_ms == pytest.approx(20.0, rel=1e-9)
    assert snapshot.latency_max_ms == pytest.approx(30.0, rel=1e-9)


@pytest.mark.parametrize(("age_s", "in_window"), [(5.0, True), (5.001, False)])
def test_an_event_exactly_one_window_old_still_counts(age_s: float, in_window: bool) -> None:
    """Both sides of the window's edge, for every kind of event the window holds."""
    clock = FakeClock()
    stats = NodeStats(["left"], window_s=5.0, clock=clock)
    stats.camera_frame("left")
    stats.frame_unpaired()
    stats.set_published(stats.set_received())
    stats.set_dropped("decode", stats.set_received())
    clock.now += age_s
    snapshot = stats.snapshot()
    rate = 1 / 5.0 if in_window else 0.0
    assert snapshot.camera_rates_hz == {"left": pytest.approx(rate)}
    assert snapshot.recent_unpaired_frames == int(in_window)
    assert snapshot.input_rate_hz == pytest.approx(2 * rate)
    assert snapshot.output_rate_hz == pytest.approx(rate)
    assert snapshot.recent_dropped == ({"decode": 1} if in_window else {})
