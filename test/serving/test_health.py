"""The node's health without ROS: frame faults, recent-window drops, failure streaks, staleness."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from r2d2_ros.serving.health import FAILING_STREAK, Health, Level, assess_health, worker_hang
from r2d2_ros.conversions.image_codec import ImageDecodeError
from r2d2_ros.serving.stats import FrameDropped, NodeStats, frame_stage


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stats(clock: FakeClock) -> NodeStats:
    return NodeStats(window_s=5.0, clock=clock)


def _health(stats: NodeStats, worker_failure: str | None = None, stale_timeout_s: float = 10.0):
    return assess_health(stats.snapshot(), stale_timeout_s, worker_failure)


class TestFrameStage:
    def test_any_exception_becomes_a_drop_with_the_stage_reason(self) -> None:
        with pytest.raises(FrameDropped) as drop:
            with frame_stage("decode"):
                cv2.cvtColor(np.zeros((2, 5, 2), np.uint8), cv2.COLOR_YUV2RGB_UYVY)  # cv2.error
        assert drop.value.reason == "decode" and "error" in str(drop.value)

    def test_a_drop_raised_inside_keeps_its_own_reason(self) -> None:
        with pytest.raises(FrameDropped) as drop:
            with frame_stage("decode"):
                raise ImageDecodeError("size", "too short")
        assert drop.value.reason == "size"

    def test_base_exceptions_are_not_swallowed(self) -> None:
        with pytest.raises(KeyboardInterrupt):
            with frame_stage("inference_error"):
                raise KeyboardInterrupt


class TestHealth:
    def test_ok_when_frames_are_answered_even_if_superseded(self, stats: NodeStats) -> None:
        for _ in range(5):
            stats.set_received()
            stats.set_superseded()
        stats.set_published(stats.set_received())
        assert _health(stats).level == Level.OK

    def test_unpaired_camera_frames_warn_without_answering_input(self, stats: NodeStats) -> None:
        stats.set_published(stats.set_received())
        stats.frame_unpaired()
        health = _health(stats)
        assert health.level == Level.WARN and "unpaired frames 1" in health.message
        assert stats.snapshot().failure_streak == 0, "a lost partner frame is not a failing frame"

    def test_warn_follows_recent_drops_and_clears_when_they_stop(self, stats: NodeStats, clock: FakeClock) -> None:
        stats.set_dropped("size", stats.set_received())
        stats.set_published(stats.set_received())
        health = _health(stats)
        assert health.level == Level.WARN and "size 1" in health.message
        clock.now += 6.0  # one window later, with good frames only
        stats.set_published(stats.set_received())
        assert _health(stats).level == Level.OK
        assert stats.snapshot().dropped == {"size": 1}, "totals stay"

    def test_error_when_every_frame_fails_and_recovery(self, stats: NodeStats) -> None:
        for _ in range(FAILING_STREAK):
            stats.set_dropped("inference_error", stats.set_received())
        health = _health(stats)
        assert health.level == Level.ERROR and "every frame fails" in health.message
        assert "inference_error" in health.message
        stats.set_published(stats.set_received())
        assert _health(stats).level == Level.WARN

    def test_error_when_the_worker_is_gone(self, stats: NodeStats) -> None:
        health = _health(stats, worker_failure="RuntimeError: boom")
        assert health.level == Level.ERROR and "inference worker stopped (RuntimeError: boom)" in health.message

    def test_a_worker_hung_on_one_frame_counts_as_gone(self, stats: NodeStats) -> None:
        assert worker_hang(None, now=1000.0, timeout_s=5.0) is None  # waiting for a frame is not hanging
        assert worker_hang(100.0, now=105.0, timeout_s=5.0) is None
        reason = worker_hang(100.0, now=105.5, timeout_s=5.0)
        assert reason == "hung: one frame has run for 5.5 s (hang_timeout 5 s)"
        assert worker_hang(100.0, now=1e6, timeout_s=0.0) is None  # 0 = never
        health = _health(stats, worker_failure=reason)
        assert health.level == Level.ERROR and f"inference worker stopped ({reason})" in health.message

    def test_stale_when_input_waits_too_long(self, stats: NodeStats, clock: FakeClock) -> None:
        first = stats.set_received()
        clock.now += 3.0
        stats.set_received()  # a newer frame arrives while the first one is processed
        stats.set_published(first)
        clock.now += 2.0
        assert stats.snapshot().unanswered_s == pytest.approx(2.0), "measured from the last answer"
        assert _health(stats, stale_timeout_s=2.5).level == Level.OK
        clock.now += 1.0
        health = _health(stats, stale_timeout_s=2.5)
        assert health.level == Level.ERROR and "stale" in health.message

    def test_an_idle_camera_is_not_stale(self, stats: NodeStats, clock: FakeClock) -> None:
        stats.set_published(stats.set_received())
        clock.now += 100.0
        assert _health(stats, stale_timeout_s=1.0).level == Level.OK
        stats.set_received()  # the camera starts again: not stale at once
        assert stats.snapshot().unanswered_s == 0.0
        clock.now += 0.5
        assert _health(stats, stale_timeout_s=1.0).level == Level.OK

    def test_a_dropped_frame_is_answered(self, stats: NodeStats, clock: FakeClock) -> None:
        stats.set_dropped("encoding", stats.set_received())
        clock.now += 100.0
        assert stats.snapshot().unanswered_s == 0.0


class TestCameraSilence:
    def test_a_silent_camera_warns_then_errors_while_the_other_sends(self, clock: FakeClock) -> None:
        stats = NodeStats(["left", "right"], window_s=5.0, clock=clock)
        for _ in range(4):
            clock.now += 1.0
            stats.camera_frame("left")
        snapshot = stats.snapshot()
        assert snapshot.camera_frames == {"left": 4, "right": 0}
        assert snapshot.camera_rates_hz == {"left": pytest.approx(0.8), "right": 0.0}
        assert snapshot.camera_silent_s == {"left": 0.0, "right": pytest.approx(4.0)}, "silence since start"
        assert assess_health(snapshot, 30.0, None, silence_warn_s=5.0, silence_error_s=10.0).level == Level.OK
        clock.now += 2.0
        health = assess_health(stats.snapshot(), 30.0, None, silence_warn_s=5.0, silence_error_s=10.0)
        assert health.level == Level.WARN and "no input from right 6.0 s" in health.message
        assert "left" not in health.message.split(";")[0]
        clock.now += 5.0
        health = assess_health(stats.snapshot(), 30.0, None, silence_warn_s=5.0, silence_error_s=10.0)
        assert health.level == Level.ERROR and health.message.startswith("no input from right 11.0 s (silence_error 10 s)")

    def test_silence_limits_of_zero_are_off_and_activation_restarts_the_count(self, clock: FakeClock) -> None:
        stats = NodeStats(["front"], clock=clock)
        clock.now += 1000.0
        assert assess_health(stats.snapshot(), 30.0, None).level == Level.OK
        stats.restart_silence()
        clock.now += 1.0
        assert stats.snapshot().camera_silent_s == {"front": pytest.approx(1.0)}

    def test_a_note_such_as_a_cpu_fallback_is_a_warning(self, stats: NodeStats) -> None:
        stats.set_published(stats.set_received())
        health = assess_health(stats.snapshot(), 30.0, None, notes=("device auto found no CUDA GPU",))
        assert health.level == Level.WARN and health.message.startswith("device auto found no CUDA GPU; ")

    def test_restarted_tracks_are_counted(self, stats: NodeStats) -> None:
        stats.tracks_restarted(2)
        stats.tracks_restarted()
        assert stats.snapshot().tracks_restarted == 3


class TestMessages:
    """The exact sentences: operators read them in rqt_robot_monitor, and tests over DDS match them."""

    def test_every_error_at_once_in_order(self, clock: FakeClock) -> None:
        stats = NodeStats(["", "rear"], window_s=5.0, clock=clock)
        for _ in range(FAILING_STREAK):
            stats.set_dropped("decode", stats.set_received())
        stats.set_received()
        clock.now += 12.0
        health = assess_health(stats.snapshot(), 10.0, "RuntimeError: boom", 2.0, 11.0)
        assert health == Health(Level.ERROR,
                                "inference worker stopped (RuntimeError: boom); every frame fails: the last 3 were "
                                "dropped (decode); stale: input unanswered for 12.0 s (timeout 10 s); no input from "
                                "image 12.0 s, rear 12.0 s (silence_error 11 s); 0.0 Hz out of 0.0 Hz in")

    def test_every_warning_at_once_in_order(self, clock: FakeClock) -> None:
        stats = NodeStats(["left", "right"], window_s=5.0, clock=clock)
        clock.now += 3.0
        stats.camera_frame("left")
        stats.set_dropped("size", stats.set_received())
        stats.set_dropped("encoding", stats.set_received())
        stats.set_published(stats.set_received())
        stats.frame_unpaired()
        health = assess_health(stats.snapshot(), 30.0, None, 2.5, 0.0, ("a note",))
        assert health == Health(Level.WARN, "a note; dropped recently (encoding 1, size 1, unpaired frames 1); "
                                            "no input from right 3.0 s (silence_warn 2.5 s); 0.2 Hz out of 0.6 Hz in")

    def test_levels_are_diagnostic_msgs_levels(self) -> None:
        from diagnostic_msgs.msg import DiagnosticStatus

        assert [bytes([level]) for level in (Level.OK, Level.WARN, Level.ERROR)] == [
            DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR]


class TestLimits:
    def test_two_failures_in_a_row_are_a_warning_three_an_error(self, stats: NodeStats) -> None:
        for _ in range(FAILING_STREAK - 1):
            stats.set_dropped("decode", stats.set_received())
        assert _health(stats).level == Level.WARN
        stats.set_dropped("decode", stats.set_received())
        assert FAILING_STREAK == 3 and _health(stats).level == Level.ERROR

    def test_a_one_second_hang_timeout_counts(self) -> None:
        assert worker_hang(100.0, now=101.5, timeout_s=1.0) is not None
        assert worker_hang(100.0, now=101.0, timeout_s=1.0) is None, "exactly the timeout is not yet a hang"

    def test_limits_are_exclusive_and_short_silences_count(self, clock: FakeClock) -> None:
        stats = NodeStats([""], clock=clock)
        clock.now += 0.5
        assert assess_health(stats.snapshot(), 30.0, None, 0.5, 0.0).level == Level.OK, "exactly the limit"
        clock.now += 0.1
        health = assess_health(stats.snapshot(), 30.0, None, 0.5, 0.0)
        assert health.level == Level.WARN and "no input from image 0.6 s" in health.message
        stats.set_received()
        clock.now += 2.0
        assert assess_health(stats.snapshot(), 2.0, None).level == Level.OK, "unanswered exactly the stale timeout"


def test_two_silent_cameras_are_named_in_one_warning(clock: FakeClock) -> None:
    stats = NodeStats(["left", "right"], clock=clock)
    clock.now += 3.0
    health = assess_health(stats.snapshot(), 30.0, None, 2.0, 0.0)
    assert health.message == "no input from left 3.0 s, right 3.0 s (silence_warn 2 s); 0.0 Hz out of 0.0 Hz in"
