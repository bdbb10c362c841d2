"""What the node's /diagnostics status says, decided without ROS from the statistics and the worker.

The levels follow diagnostic_msgs/DiagnosticStatus (OK 0, WARN 1, ERROR 2):

- ERROR: the inference worker is gone or hung on one set (the node then exits so that a launch
  file's respawn restarts it), every set fails (:data:`FAILING_STREAK` drops in a row with nothing
  published), input has waited longer than the stale timeout with no answer, or a camera has sent
  nothing for longer than the silence error limit;
- WARN: sets were dropped for a reason other than being superseded, or camera frames were left
  without a partner, within the recent window (it clears once a window passes without them; the
  totals stay in the status values); a camera silent for longer than the silence warning limit;
  the device is not what was asked for (a CPU fallback); a model reload that failed;
- OK otherwise. Superseded sets are the normal way of keeping latency bounded, not a fault.
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


def _silence(silent_s: dict[str, float], limit_s: float, limit_name: str) -> list[str]:
    """The sentence naming the cameras silent for longer than ``limit_s`` (0 = never counts), or []."""
    if limit_s <= 0:
        return []
    silent = [f"{camera or 'image'} {seconds:.1f} s" for camera, seconds in sorted(silent_s.items()) if seconds > limit_s]
    return [f"no input from {', '.join(silent)} ({limit_name} {limit_s:g} s)"] if silent else []


def assess_health(stats: StatsSnapshot, stale_timeout_s: float, worker_failure: str | None,
                  silence_warn_s: float = 0.0, silence_error_s: float = 0.0, notes: tuple[str, ...] = ()) -> Health:
    """The node's health.

    Args:
        stats: the latest statistics.
        stale_timeout_s: input unanswered for longer than this is an error.
        worker_failure: why the inference worker stopped, or None while it runs.
        silence_warn_s: a camera that sent nothing for longer than this is a warning (0 = off).
        silence_error_s: ... and for longer than this an error (0 = off).
        notes: conditions that are a warning by themselves (a CPU fallback, a failed reload).
    """
    rates = f"{stats.output_rate_hz:.1f} Hz out of {stats.input_rate_hz:.1f} Hz in"
    errors = []
    if worker_failure is not None:
        errors.append(f"inference worker stopped ({worker_failure})")
    if stats.failure_streak >= FAILING_STREAK:
        errors.append(f"every frame fails: the last {stats.failure_streak} were dropped ({stats.last_failure})")
    if stats.unanswered_s > stale_timeout_s:
        errors.append(f"stale: input unanswered for {stats.unanswered_s:.1f} s (timeout {stale_timeout_s:g} s)")
    errors += _silence(stats.camera_silent_s, silence_error_s, "silence_error")
    if errors:
        return Health(Level.ERROR, f"{'; '.join(errors)}; {rates}")
    warnings = list(notes)
    faults = {reason: count for reason, count in stats.recent_dropped.items() if reason != SUPERSEDED}
    if stats.recent_unpaired_frames:
        faults["unpaired frames"] = stats.recent_unpaired_frames
    if faults:
        warnings.append(f"dropped recently ({_drop_summary(faults)})")
    warnings += _silence(stats.camera_silent_s, silence_warn_s, "silence_warn")
    if warnings:
        return Health(Level.WARN, f"{'; '.join(warnings)}; {rates}")
    return Health(Level.OK, rates)
