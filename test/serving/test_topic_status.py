"""Topic statuses in diagnostic_updater's format: rates over a window of updates, stamp delays, levels."""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus

from r2d2_ros.serving.topic_status import TopicStatus


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def _values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def test_no_events_is_an_error_and_a_met_rate_is_ok() -> None:
    clock = FakeClock()
    topic = TopicStatus(min_rate_hz=5.0, stamp_delay_s=None, clock=clock)
    clock.now += 1.0
    status = topic.status("/n: /keypoints topic status", "cpu")
    assert (status.level, status.message, status.hardware_id) == (DiagnosticStatus.ERROR, "No events recorded.", "cpu")
    for _ in range(10):
        topic.tick()
    clock.now += 1.0
    status = topic.status("s")
    values = _values(status)
    assert (status.level, status.message) == (DiagnosticStatus.OK, "Desired frequency met")
    assert values["Events in window"] == "10" and values["Events since startup"] == "10"
    assert float(values["Actual frequency (Hz)"]) == 5.0, "10 events over the 2 s window of updates"
    assert float(values["Minimum acceptable frequency (Hz)"]) == 4.5


def test_too_low_and_too_high_rates_warn() -> None:
    clock = FakeClock()
    topic = TopicStatus(min_rate_hz=10.0, max_rate_hz=20.0, window=1, stamp_delay_s=None, clock=clock)
    for events, message in ((5, "Frequency too low."), (30, "Frequency too high."), (15, "Desired frequency met")):
        for _ in range(events):
            topic.tick()
        clock.now += 1.0
        status = topic.status("s")
        assert status.message == message
        assert status.level == (DiagnosticStatus.OK if events == 15 else DiagnosticStatus.WARN)


def test_stamps_too_old_in_the_future_or_zero_are_errors_and_counted() -> None:
    clock = FakeClock()
    topic = TopicStatus(clock=clock)
    topic.tick(stamp_s=99.5, now_s=100.0)
    clock.now += 1.0
    status = topic.status("s")
    assert (status.level, status.message) == (DiagnosticStatus.OK, "Desired frequency met; Timestamps are reasonable.")
    assert float(_values(status)["Latest timestamp delay:"]) == 0.5
    for stamp, message, counter in ((90.0, "Timestamps too far in past seen.", "Late diagnostic update count:"),
                                    (102.0, "Timestamps too far in future seen.", "Early diagnostic update count:"),
                                    (0.0, "Zero timestamp seen.", "Zero seen diagnostic update count:")):
        topic.tick(stamp_s=stamp, now_s=100.0 if stamp else 1.0)
        clock.now += 1.0
        status = topic.status("s")
        assert (status.level, status.message) == (DiagnosticStatus.ERROR, message)
        assert _values(status)[counter] == "1"


def test_no_message_since_the_last_update_warns_about_stamps() -> None:
    clock = FakeClock()
    topic = TopicStatus(window=3, clock=clock)
    topic.tick(stamp_s=1.0, now_s=1.1)
    clock.now += 1.0
    topic.status("s")
    clock.now += 1.0
    status = topic.status("s")
    assert status.level == DiagnosticStatus.WARN and status.message == "No data since last update."


def test_the_keys_and_values_are_diagnostic_updaters() -> None:
    clock = FakeClock()
    topic = TopicStatus(min_rate_hz=0.5, max_rate_hz=20.0, clock=clock)
    for second in range(10):  # one message per second, stamps 0.25 s behind the clock
        topic.tick(stamp_s=second - 0.25, now_s=float(second))
        clock.now += 1.0
        status = topic.status("s")
    assert status.hardware_id == ""
    assert _values(status) == {
        "Events in window": "5", "Events since startup": "10", "Duration of window (s)": "5.000000",
        "Actual frequency (Hz)": "1.000000", "Minimum acceptable frequency (Hz)": "0.450000",
        "Maximum acceptable frequency (Hz)": "22.000000",
        "Earliest timestamp delay:": "0.250000", "Latest timestamp delay:": "0.250000",
        "Earliest acceptable timestamp delay:": "-1.000000", "Latest acceptable timestamp delay:": "5.000000",
        "Late diagnostic update count:": "0", "Early diagnostic update count:": "0",
        "Zero seen diagnostic update count:": "0",
    }


def test_limits_are_inclusive_and_no_minimum_means_no_key() -> None:
    clock = FakeClock()
    topic = TopicStatus(min_rate_hz=10.0, max_rate_hz=10.0, tolerance=0.5, window=1, clock=clock)
    for events in (5, 15):  # exactly min * (1 - tolerance) Hz, then exactly max * (1 + tolerance) Hz
        for _ in range(events - 1):
            topic.tick(stamp_s=95.0, now_s=100.0)  # exactly the latest acceptable delay
        topic.tick(stamp_s=101.0, now_s=100.0)  # exactly the earliest
        clock.now += 1.0
        status = topic.status("s")
        assert status.message == "Desired frequency met; Timestamps are reasonable.", status.message
    status = TopicStatus(clock=clock).status("s")
    assert "Minimum acceptable frequency (Hz)" not in _values(status)
    assert "Maximum acceptable frequency (Hz)" not in _values(status)


def test_default_delays_a_zero_stamp_among_others_and_a_stamp_without_a_clock() -> None:
    clock = FakeClock()
    topic = TopicStatus(clock=clock)
    topic.tick(stamp_s=94.5, now_s=100.0)  # 5.5 s behind: past the default 5 s
    clock.now += 1.0
    assert topic.status("s").message == "Timestamps too far in past seen."
    topic.tick(stamp_s=0.0, now_s=0.5)
    topic.tick(stamp_s=100.0, now_s=100.1)  # a later good stamp does not clear the zero
    clock.now += 1.0
    assert topic.status("s").message == "Zero timestamp seen."
    topic.tick(stamp_s=100.0)  # no clock reading: counted, no delay
    clock.now += 1.0
    assert topic.status("s").message == "No data since last update."


def test_a_status_at_the_same_instant_reports_no_rate_instead_of_dividing_by_zero() -> None:
    clock = FakeClock()
    topic = TopicStatus(window=1, stamp_delay_s=None, clock=clock)
    topic.status("s")
    topic.tick()
    status = topic.status("s")
    assert _values(status)["Actual frequency (Hz)"] == "0.000000" and _values(status)["Events in window"] == "1"
