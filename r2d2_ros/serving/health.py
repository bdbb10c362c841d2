"""What the node's /diagnostics status says, decided without ROS from the statistics and the worker.

The levels follow diagnostic_msgs/DiagnosticStatus (OK 0, WARN 1, ERROR 2):

- ERROR: the inference worker is gone or hung on one frame (the node then exits so that a launch
  file's respawn restarts it), every frame fails (:data:`FAILING_STREAK` drops in a row with nothing
  published), or input has waited longer than the stale timeout with no answer;
- WARN: frames were dropped for a reason other than being superseded within the recent window;
  it clears once a window passes without such drops (the totals stay in the status values);
- OK otherwise. Superseded frames are the normal way of keeping latency bounded, not a fault.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .stats import SUPERSEDED, StatsSnapshot

__all__ = ["FAILING_STREAK", "Health", "Level", "assess_health", "worker_hang"]

# Consecutive dropped frames (nothing published between them) that make the node "failing".
FAILING_STREAK = 3


class Level(IntEnum):
    """diagnostic_msgs/DiagnosticStatus levels."""

    OK = 0
    WARN = 1
    ERROR = 2


@dataclass(frozen=True)
class Health:
    """A diagnostics level and the sentence that explains it."""

    level: Level
    message: str


def worker_hang(frame_started: float | None, now: float, timeout_s: float) -> str | None:
    """Why the worker counts as hung (one frame running longer than ``timeout_s``; 0 = never), or None.

    A worker stuck in a driver call (a GPU that stopped answering) is alive but serves nothing; only
    a new process recovers it, so it is treated as gone.
    """
    if frame_started is None or timeout_s <= 0 or now - frame_started <= timeout_s:
        return None
    return f"hung: one frame has run for {now - frame_started:.1f} s (hang_timeout {timeout_s:g} s)"


def _drop_summary(drops: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in sorted(drops.items()))


def assess_health(stats: StatsSnapshot, stale_timeout_s: float, worker_failure: str | None) -> Health:
    """The node's health.

    Args:
        stats: the latest statistics.
        stale_timeout_s: input unanswered for longer than this is an error.
        worker_failure: why the inference worker stopped, or None while it runs.
    """
    rates = f"{stats.output_rate_hz:.1f} Hz out of {stats.input_rate_hz:.1f} Hz in"
    errors = []
    if worker_failure is not None:
        errors.append(f"inference worker stopped ({worker_failure})")
    if stats.failure_streak >= FAILING_STREAK:
        errors.append(f"every frame fails: the last {stats.failure_streak} were dropped ({stats.last_failure})")
    if stats.unanswered_s > stale_timeout_s:
        errors.append(f"stale: input unanswered for {stats.unanswered_s:.1f} s (timeout {stale_timeout_s:g} s)")
    if errors:
        return Health(Level.ERROR, f"{'; '.join(errors)}; {rates}")
    faults = {reason: count for reason, count in stats.recent_dropped.items() if reason != SUPERSEDED}
    if faults:
        return Health(Level.WARN, f"dropped frames recently ({_drop_summary(faults)}); {rates}")
    return Health(Level.OK, rates)
