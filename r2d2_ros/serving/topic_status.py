"""Per-topic rate and stamp checks in diagnostic_updater's format, without rclpy.

diagnostic_updater (not on PyPI) is what ROS tools and rqt_robot_monitor expect: a status named
``<node>: <topic> topic status`` merging a *frequency status* (events over the last few updates)
and a *timestamp status* (how far message stamps lag the clock). :class:`TopicStatus` keeps the
same keys, messages and levels, so that aggregator configurations written for other drivers read it.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

__all__ = ["TopicStatus"]

_OK, _WARN, _ERROR = 0, 1, 2  # DiagnosticStatus levels (the message holds them as one byte)


class TopicStatus:
    """Counts one topic's messages and checks their rate and (optionally) their stamps.

    Args:
        min_rate_hz: below ``min_rate_hz * (1 - tolerance)`` is "Frequency too low." (WARN); 0 = no minimum.
        max_rate_hz: above ``max_rate_hz * (1 + tolerance)`` is "Frequency too high." (WARN).
        window: the rate is measured over this many status updates (diagnostic_updater's window_size).
        stamp_delay_s: (earliest, latest) acceptable delay of a stamp behind the clock; None = no stamp check.
        clock: a monotonic clock (rates keep being measured while a simulation clock is paused).
    """

    def __init__(self, min_rate_hz: float = 0.0, max_rate_hz: float = math.inf, tolerance: float = 0.1,
                 window: int = 5, stamp_delay_s: tuple[float, float] | None = (-1.0, 5.0),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._min_rate, self._max_rate, self._tolerance = min_rate_hz, max_rate_hz, tolerance
        self._stamp_delay = stamp_delay_s
        self._clock = clock
        self._lock = threading.Lock()
        self._count = 0
        # window + 1 samples span ``window`` updates, as diagnostic_updater's window_size does.
        self._updates: deque[tuple[float, int]] = deque([(clock(), 0)], maxlen=window + 1)
        self._delays: list[float] = []
        self._zero_seen = False
        self._late = self._early = self._zero = 0

    def tick(self, stamp_s: float | None = None, now_s: float | None = None) -> None:
        """Counts a message; with ``stamp_s`` and ``now_s`` (ROS time, seconds) also its stamp's delay."""
        with self._lock:
            self._count += 1
            if stamp_s is not None and now_s is not None:
                self._zero_seen |= stamp_s == 0.0
                self._delays.append(now_s - stamp_s)

    def status(self, name: str, hardware_id: str = "") -> DiagnosticStatus:
        """The merged status since the previous call (as diagnostic_updater's TopicDiagnostic reports it)."""
        with self._lock:
            now = self._clock()
            self._updates.append((now, self._count))
            (start, first), (_, last) = self._updates[0], self._updates[-1]
            events, window_s = last - first, now - start
            rate = events / window_s if window_s > 0 else 0.0
            results = [self._frequency(events, rate)]
            values = {"Events in window": f"{events}", "Events since startup": f"{self._count}",
                      "Duration of window (s)": f"{window_s:f}", "Actual frequency (Hz)": f"{rate:f}"}
            if self._min_rate > 0:
                values["Minimum acceptable frequency (Hz)"] = f"{self._min_rate * (1 - self._tolerance):f}"
            if math.isfinite(self._max_rate):
                values["Maximum acceptable frequency (Hz)"] = f"{self._max_rate * (1 + self._tolerance):f}"
            if self._stamp_delay is not None:
                results.append(self._timestamps(values))
            self._delays, self._zero_seen = [], False
        level = max(result[0] for result in results)
        message = "; ".join(text for result_level, text in results if result_level == level)
        return DiagnosticStatus(level=bytes([level]), name=name,
                                message=message, hardware_id=hardware_id,
                                values=[KeyValue(key=key, value=value) for key, value in values.items()])

    def _frequency(self, events: int, rate: float) -> tuple[int, str]:
        if events == 0:
            return _ERROR, "No events recorded."
        if rate < self._min_rate * (1 - self._tolerance):
            return _WARN, "Frequency too low."
        if rate > self._max_rate * (1 + self._tolerance):
            return _WARN, "Frequency too high."
        return _OK, "Desired frequency met"

    def _timestamps(self, values: dict[str, str]) -> tuple[int, str]:
        earliest_ok, latest_ok = self._stamp_delay
        result = (_OK, "Timestamps are reasonable.")
        earliest = min(self._delays, default=math.nan)
        latest = max(self._delays, default=math.nan)
        if not self._delays:
            result = (_WARN, "No data since last update.")
        else:
            if earliest < earliest_ok:
                result, self._early = (_ERROR, "Timestamps too far in future seen."), self._early + 1
            if latest > latest_ok:
                result, self._late = (_ERROR, "Timestamps too far in past seen."), self._late + 1
            if self._zero_seen:
                result, self._zero = (_ERROR, "Zero timestamp seen."), self._zero + 1
        values.update({
            "Earliest timestamp delay:": f"{earliest:f}", "Latest timestamp delay:": f"{latest:f}",
            "Earliest acceptable timestamp delay:": f"{earliest_ok:f}",
            "Latest acceptable timestamp delay:": f"{latest_ok:f}",
            "Late diagnostic update count:": f"{self._late}", "Early diagnostic update count:": f"{self._early}",
            "Zero seen diagnostic update count:": f"{self._zero}",
        })
        return result
