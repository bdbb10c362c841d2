"""Thread-safe pieces of the node that need no ROS: the latest-frame slot and the statistics."""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["LatestFrameSlot", "NodeStats", "StatsSnapshot"]

T = TypeVar("T")


class LatestFrameSlot(Generic[T]):
    """Holds at most one pending item: a newer one replaces it, so a busy consumer never falls behind."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._closed = False
        self._ready = threading.Condition()

    def put(self, item: T) -> bool:
        """Stores ``item``; returns True when it replaced one that was never taken (a dropped frame)."""
        with self._ready:
            replaced = self._item is not None
            self._item = item
            self._ready.notify()
        return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """Waits for an item and removes it; None on timeout or once closed."""
        with self._ready:
            self._ready.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
        return item

    def close(self) -> None:
        """Wakes every waiting consumer; later ``take`` calls return at once."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()


@dataclass(frozen=True)
class StatsSnapshot:
    """Figures over the last window, plus counts since start."""

    input_rate_hz: float
    output_rate_hz: float
    latency_mean_ms: float
    latency_max_ms: float
    received: int
    published: int
    dropped: dict[str, int]


class NodeStats:
    """Counts frames in, out and dropped (by cause) and the latency of published frames."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window_s = window_s
        self._lock = threading.Lock()
        self._inputs: deque[float] = deque()
        self._outputs: deque[tuple[float, float]] = deque()  # (time, latency seconds)
        self._received = 0
        self._published = 0
        self._dropped: Counter[str] = Counter()

    def _trim(self, now: float) -> None:
        while self._inputs and self._inputs[0] < now - self._window_s:
            self._inputs.popleft()
        while self._outputs and self._outputs[0][0] < now - self._window_s:
            self._outputs.popleft()

    def frame_received(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._received += 1
            self._inputs.append(now)
            self._trim(now)

    def frame_published(self, latency_s: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._published += 1
            self._outputs.append((now, latency_s))
            self._trim(now)

    def frame_dropped(self, cause: str) -> None:
        with self._lock:
            self._dropped[cause] += 1

    def snapshot(self) -> StatsSnapshot:
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            latencies = [latency for _, latency in self._outputs]
            return StatsSnapshot(
                input_rate_hz=len(self._inputs) / self._window_s,
                output_rate_hz=len(self._outputs) / self._window_s,
                latency_mean_ms=1e3 * sum(latencies) / len(latencies) if latencies else 0.0,
                latency_max_ms=1e3 * max(latencies, default=0.0),
                received=self._received,
                published=self._published,
                dropped=dict(self._dropped),
            )
