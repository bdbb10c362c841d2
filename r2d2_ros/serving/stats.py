"""Thread-safe pieces of the node that need no ROS: the latest-set slot, set faults and statistics."""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..conversions.image_codec import ImageDecodeError

__all__ = ["FrameDropped", "LatestFrameSlot", "NodeStats", "StatsSnapshot", "SUPERSEDED", "frame_stage"]

T = TypeVar("T")

SUPERSEDED = "superseded"


class FrameDropped(Exception):
    """A frame that cannot be answered; ``reason`` is the short name of its drop counter."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@contextmanager
def frame_stage(reason: str) -> Iterator[None]:
    """Turns any exception raised inside into :class:`FrameDropped` with ``reason``.

    A frame's stages (decode, extraction, publishing, pictures) run inside one of these so that
    whatever a frame carries, and whatever OpenCV, torch or rclpy raise on it, costs that frame
    only: the worker thread counts the drop and goes on. A :class:`FrameDropped` raised inside
    keeps its own, more precise reason, and so does an :class:`ImageDecodeError`.
    """
    try:
        yield
    except FrameDropped:
        raise
    except ImageDecodeError as error:
        raise FrameDropped(error.reason, str(error)) from error
    except Exception as error:
        raise FrameDropped(reason, f"{reason}: {type(error).__name__}: {error}") from error


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
    """Figures over the last window, counts since start, and what the health checks need.

    Units: a *set* is what the worker answers at once (one frame per camera; with one camera, a
    frame); ``received``, ``published`` and ``dropped`` count sets, ``unpaired_frames`` and the
    per-camera figures count frames.
    """

    input_rate_hz: float  # sets handed to the worker
    output_rate_hz: float  # sets published
    latency_mean_ms: float
    latency_max_ms: float
    received: int
    published: int
    dropped: dict[str, int]  # sets, since start, by cause
    recent_dropped: dict[str, int]  # sets within the window, by cause
    unpaired_frames: int  # frames without a partner camera, since start
    recent_unpaired_frames: int  # within the window
    failure_streak: int  # sets the worker dropped in a row since its last published one
    last_failure: str  # reason of the latest such drop ("" when none)
    unanswered_s: float  # how long input has waited with no answer (0 when nothing waits)
    camera_frames: dict[str, int]  # frames received per camera, since start
    camera_rates_hz: dict[str, float]  # frames per second per camera, over the window
    camera_silent_s: dict[str, float]  # seconds since each camera's last frame (or since start)
    tracks_restarted: int  # times a camera's tracker started over (stamps back, calibration, ...)


class NodeStats:
    """Counts sets in, out and dropped (by cause), the latency of published sets, unanswered input,
    and each camera's frames.

    A set is *answered* when the worker publishes it or drops it; a superseded set is not
    answered but replaced. ``unanswered_s`` measures from the later of the last answer and the
    first input after it, so that an idle camera that starts again is not stale at once. All
    times come from ``clock`` (monotonic: a paused simulation clock does not stop them).
    """

    def __init__(self, cameras: Sequence[str] = ("",), window_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._inputs: deque[float] = deque()
        self._outputs: deque[tuple[float, float]] = deque()  # (time, latency seconds)
        self._drops: deque[tuple[float, str]] = deque()
        self._unpaired: deque[float] = deque()
        self._received = 0
        self._published = 0
        self._dropped: Counter[str] = Counter()
        self._unpaired_total = 0
        self._failure_streak = 0
        self._last_failure = ""
        self._last_input_at: float | None = None
        self._waiting_since: float | None = None
        self._tracks_restarted = 0
        now = clock()
        self._camera_arrivals: dict[str, deque[float]] = {camera: deque() for camera in cameras}
        self._camera_frames: Counter[str] = Counter()
        self._camera_last: dict[str, float] = {camera: now for camera in cameras}

    def _trim(self, now: float) -> None:
        start = now - self._window_s
        for times in (self._inputs, self._unpaired, *self._camera_arrivals.values()):
            while times and times[0] < start:
                times.popleft()
        while self._outputs and self._outputs[0][0] < start:
            self._outputs.popleft()
        while self._drops and self._drops[0][0] < start:
            self._drops.popleft()

    def _answered(self, now: float, received_at: float) -> None:
        # Input newer than the answered set is still waiting, from now on.
        newer_waiting = self._last_input_at is not None and self._last_input_at > received_at
        self._waiting_since = now if newer_waiting else None

    def restart_silence(self) -> None:
        """Measures each camera's silence from now (the node starts listening: activation)."""
        now = self._clock()
        with self._lock:
            self._camera_last = {camera: now for camera in self._camera_last}

    def camera_frame(self, camera: str) -> None:
        """Counts one frame from ``camera`` (before pairing or decoding)."""
        now = self._clock()
        with self._lock:
            self._camera_frames[camera] += 1
            self._camera_arrivals[camera].append(now)
            self._camera_last[camera] = now
            self._trim(now)

    def set_received(self) -> float:
        """Counts a set handed to the worker; returns its arrival time, to hand back when it is answered."""
        now = self._clock()
        with self._lock:
            self._received += 1
            self._inputs.append(now)
            self._last_input_at = now
            if self._waiting_since is None:
                self._waiting_since = now
            self._trim(now)
        return now

    def set_published(self, received_at: float) -> None:
        """Counts an answered set and its latency."""
        now = self._clock()
        with self._lock:
            self._published += 1
            self._outputs.append((now, now - received_at))
            self._failure_streak, self._last_failure = 0, ""
            self._answered(now, received_at)
            self._trim(now)

    def set_superseded(self) -> None:
        """Counts a set replaced by a newer one before the worker took it (normal under load)."""
        now = self._clock()
        with self._lock:
            self._dropped[SUPERSEDED] += 1
            self._drops.append((now, SUPERSEDED))
            self._trim(now)

    def frame_unpaired(self) -> None:
        """Counts a camera frame left without a partner (synchronised cameras)."""
        now = self._clock()
        with self._lock:
            self._unpaired_total += 1
            self._unpaired.append(now)
            self._trim(now)

    def set_dropped(self, reason: str, received_at: float) -> None:
        """Counts a set that the worker could not answer (bad input or a failed stage)."""
        now = self._clock()
        with self._lock:
            self._dropped[reason] += 1
            self._drops.append((now, reason))
            self._failure_streak += 1
            self._last_failure = reason
            self._answered(now, received_at)
            self._trim(now)

    def tracks_restarted(self, count: int = 1) -> None:
        """Counts trackers that started over."""
        with self._lock:
            self._tracks_restarted += count

    def snapshot(self) -> StatsSnapshot:
        now = self._clock()
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
                recent_dropped=dict(Counter(reason for _, reason in self._drops)),
                unpaired_frames=self._unpaired_total,
                recent_unpaired_frames=len(self._unpaired),
                failure_streak=self._failure_streak,
                last_failure=self._last_failure,
                unanswered_s=now - self._waiting_since if self._waiting_since is not None else 0.0,
                camera_frames={camera: self._camera_frames[camera] for camera in self._camera_arrivals},
                camera_rates_hz={camera: len(times) / self._window_s for camera, times in self._camera_arrivals.items()},
                camera_silent_s={camera: now - last for camera, last in self._camera_last.items()},
                tracks_restarted=self._tracks_restarted,
            )
