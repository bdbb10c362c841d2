"""The inference worker: one thread that answers the newest set, and what its watchdog checks (no rclpy).

Sets are offered through a :class:`~.stats.LatestFrameSlot`, so a slow device drops sets instead
of queueing them. Whatever goes wrong inside one set costs that set only: a
:class:`~.stats.FrameDropped` keeps its cause, any other exception counts as ``internal_error``,
and the thread takes the next set. Only an exception that is not an ``Exception``
(``SystemExit``, ``KeyboardInterrupt``) ends it; :meth:`InferenceWorker.failure` then says why,
and also when one set has run for longer than the hang timeout (a driver that stopped answering).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from .health import worker_hang
from .stats import FrameDropped, LatestFrameSlot

__all__ = ["InferenceWorker", "INTERNAL_ERROR"]

T = TypeVar("T")

INTERNAL_ERROR = "internal_error"


class InferenceWorker(Generic[T]):
    """Runs ``answer`` on the newest offered item, on its own thread.

    Args:
        answer: does the work of one item; may raise anything.
        dropped: told of each item that ``answer`` could not finish, with why.
        clock: a monotonic clock (for the hang check).
    """

    def __init__(self, answer: Callable[[T], None], dropped: Callable[[T, FrameDropped], None],
                 name: str = "r2d2_inference", clock: Callable[[], float] = time.monotonic) -> None:
        self._answer = answer
        self._dropped = dropped
        self._clock = clock
        self._slot: LatestFrameSlot[T] = LatestFrameSlot()
        self._stopping = threading.Event()
        self._failure = ""  # why the thread ended, when an exception ended it
        self._started_at: float | None = None  # when the item in progress started
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, item: T) -> bool:
        """Hands over ``item``; True when it replaced one the thread had not taken yet (a superseded set)."""
        return self._slot.put(item)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                item = self._slot.take(timeout=0.2)
                if item is not None:
                    self._answer_one(item)
        except BaseException as error:
            self._failure = f"{type(error).__name__}: {error}"
            raise  # threading's excepthook prints the traceback

    def _answer_one(self, item: T) -> None:
        self._started_at = self._clock()
        try:
            self._answer(item)
        except FrameDropped as drop:
            self._dropped(item, drop)
        except Exception as error:  # a fault outside every stage still costs this item only
            self._dropped(item, FrameDropped(INTERNAL_ERROR, f"{INTERNAL_ERROR}: {type(error).__name__}: {error}"))
        finally:
            self._started_at = None

    def failure(self, hang_timeout_s: float) -> str | None:
        """Why the worker is gone or hung (one item running longer than ``hang_timeout_s``; 0 = never), or
        None while it serves or stops because it was asked to."""
        if self._stopping.is_set() or not self._thread.ident:
            return None
        if self._thread.is_alive():
            return worker_hang(self._started_at, self._clock(), hang_timeout_s)
        return self._failure or "it returned"

    @property
    def busy(self) -> bool:
        """Whether an item is in progress."""
        return self._started_at is not None

    def stop(self, timeout_s: float) -> bool:
        """Asks the thread to stop and waits up to ``timeout_s`` for the item in progress.

        Returns:
            True when the thread has finished (or never started); False when it is still inside an item.
        """
        self._stopping.set()
        self._slot.close()
        if self._thread.ident:
            self._thread.join(max(0.0, timeout_s))
        return not self._thread.is_alive()
