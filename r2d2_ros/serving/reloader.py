"""Model reloads on their own thread (no rclpy), so that a parameter change never waits for a load.

A load can take minutes (a TensorRT engine build). Requests made while one is loading, or within
``settle_s`` of each other, are merged: only the newest is loaded next, so several parameter
changes in a row load once.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from .inference import ModelLoadError

__all__ = ["ModelReloader"]

R = TypeVar("R")  # what to load (the parameter values)
M = TypeVar("M")  # what a load gives (the model)


class ModelReloader(Generic[R, M]):
    """Loads the newest requested model on a thread and reports each outcome.

    Args:
        load: builds the model a request asks for; raises :class:`ModelLoadError` with the reason.
        done: told ``(request, model, "")`` after a load, or ``(request, None, reason)`` after a failure;
            runs on the reload thread.
        settle_s: how long a request waits for more requests before its load starts.
    """

    def __init__(self, load: Callable[[R], M], done: Callable[[R, M | None, str], None], settle_s: float = 0.3,
                 name: str = "r2d2_reload") -> None:
        self._load = load
        self._done = done
        self._settle_s = settle_s
        self._pending: R | None = None
        self._loading = False
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def request(self, request: R) -> None:
        """Asks for a load of ``request``, replacing any request that has not started loading."""
        with self._changed:
            self._pending = request
            self._changed.notify()

    @property
    def busy(self) -> bool:
        """Whether a load is waiting or running."""
        with self._changed:
            return self._loading or self._pending is not None

    def _next(self) -> R | None:
        """The newest request once no other came for ``settle_s``; None when stopping."""
        with self._changed:
            while not self._stopping:
                if self._pending is not None:
                    request = self._pending
                    # Wait for the settle time; a newer request restarts it.
                    if not self._changed.wait_for(lambda: self._pending is not request or self._stopping, self._settle_s):
                        self._pending, self._loading = None, True
                        return request
                else:
                    self._changed.wait()
        return None

    def _run(self) -> None:
        while (request := self._next()) is not None:
            try:
                model, reason = self._load(request), ""
            except ModelLoadError as error:
                model, reason = None, str(error)
            try:
                self._done(request, model, reason)
            finally:
                with self._changed:
                    self._loading = False

    def stop(self, timeout_s: float = 0.0) -> None:
        """Stops taking requests; waits up to ``timeout_s`` for a load in progress."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(max(0.0, timeout_s))
