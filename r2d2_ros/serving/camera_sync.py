"""Pairs the frames of several cameras by stamp, without ROS: the node's synchronised-cameras mode.

A set is complete when every camera has a frame within ``tolerance`` of the newest frame of the
set (0: identical stamps, as hardware-triggered rigs give). Every pair is tried when its later
frame arrives, so each frame is looked at once per arrival of another camera's frame. Frames that
can no longer complete a set are returned as *unpaired*, for the node to count:

- older than a set already emitted for their camera (they arrived too late);
- pushed out of their camera's queue (``queue_size`` frames waiting without a partner);
- left behind when a newer set is emitted, or passed over by every other camera's stream
  (each camera's stamps increase, so a partner can only come from frames already queued);
- stragglers of a replay loop that the other cameras have left (see epochs below).

The tolerance should stay below half the frame period, or a frame may pair with its partner's
neighbour.

Stamps that jump back (a bag replayed in a loop, a simulator restarted) start an *epoch*. Each
camera follows its own stream: a stamp more than ``jump_back_ns`` below the newest stamp of that
camera's stream since its last jump back moves the camera to the next epoch. The cameras do not
loop at the same instant, so for a while some are in the new epoch and others still deliver the
end of the old loop; only frames of the newest epoch pair. The first camera to jump back starts
it: every waiting frame is given up and the pairing starts over (:attr:`SyncResult.restarted`).
Frames of a camera still in an older epoch are unpaired at once and leave the new epoch's pairing
alone (their large stamps would pass over every new frame); when that camera jumps back too, it
joins the newest epoch. A camera that jumps back while already in the newest epoch starts the next
one, and a camera seen for the first time joins the newest.
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["StampSynchronizer", "SyncResult"]

T = TypeVar("T")


@dataclass
class SyncResult(Generic[T]):
    """What one frame's arrival produced: a complete set (by camera, in camera order) and the frames given up."""

    matched: dict[str, T] | None = None
    unpaired: list[T] = field(default_factory=list)
    restarted: bool = False  # a new epoch began (time jumped back): every waiting frame was given up


class StampSynchronizer(Generic[T]):
    """Collects frames per camera and emits sets with one frame of every camera, stamps within a tolerance.

    Not thread-safe: the node calls it from one callback group that runs one callback at a time.
    """

    def __init__(self, cameras: Sequence[str], tolerance_ns: int = 0, queue_size: int = 8,
                 jump_back_ns: int = 1_000_000_000) -> None:
        if len(cameras) < 2 or len(set(cameras)) != len(cameras):
            raise ValueError(f"synchronisation needs two or more distinct cameras, got {list(cameras)}")
        if tolerance_ns < 0 or queue_size < 1:
            raise ValueError(f"tolerance_ns must be >= 0 and queue_size >= 1, got {tolerance_ns}, {queue_size}")
        self.cameras = tuple(cameras)
        self.tolerance_ns = tolerance_ns
        self._queue_size = queue_size
        self._jump_back_ns = jump_back_ns
        self._items: dict[str, list[T]] = {camera: [] for camera in self.cameras}
        # Each camera's own stream, apart from pairing: its newest stamp since it last jumped back and its epoch.
        self._stream_newest: dict[str, int | None] = {camera: None for camera in self.cameras}
        self._epoch = {camera: 0 for camera in self.cameras}
        self._newest_epoch = 0
        self._start_over()

    def _start_over(self) -> list[T]:
        """Forgets every stamp of the pairing (not the streams' epochs); returns the frames that were waiting."""
        waiting = [item for items in self._items.values() for item in items]
        self._stamps: dict[str, list[int]] = {camera: [] for camera in self.cameras}  # ascending
        self._items = {camera: [] for camera in self.cameras}
        self._newest: dict[str, int | None] = {camera: None for camera in self.cameras}
        self._emitted: dict[str, int | None] = {camera: None for camera in self.cameras}
        return waiting

    def add(self, camera: str, stamp_ns: int, item: T) -> SyncResult[T]:
        """Adds one camera's frame; returns the set it completes, if any, and every frame given up.

        Raises:
            KeyError: ``camera`` is not one of :attr:`cameras`.
        """
        result: SyncResult[T] = SyncResult()
        if self._follow_stream(camera, stamp_ns):
            # The frames waiting belong to older epochs. Cameras left in those queue nothing until they join this
            # one, so each enters it with its pairing state fresh.
            result.unpaired, result.restarted = self._start_over(), True
        elif self._epoch[camera] < self._newest_epoch or self._too_late(camera, stamp_ns):
            # A straggler of a loop the other cameras have left cannot pair, and its stamp, far ahead of the
            # newest epoch's, would pass over every frame of it.
            result.unpaired.append(item)
            return result
        stamps, items = self._stamps[camera], self._items[camera]
        position = bisect.bisect_right(stamps, stamp_ns)
        stamps.insert(position, stamp_ns)
        items.insert(position, item)
        newest = self._newest[camera]
        self._newest[camera] = stamp_ns if newest is None else max(newest, stamp_ns)
        if len(stamps) > self._queue_size:
            del stamps[0]
            result.unpaired.append(items.pop(0))
        chosen = self._partners(camera, stamp_ns)
        if chosen is not None:
            result.matched = {name: self._items[name][index] for name, index in chosen.items()}
            for name, index in chosen.items():
                self._emitted[name] = self._stamps[name][index]
                result.unpaired.extend(self._items[name][:index])
                del self._stamps[name][: index + 1], self._items[name][: index + 1]
        result.unpaired.extend(self._drop_hopeless())
        return result

    def _follow_stream(self, camera: str, stamp_ns: int) -> bool:
        """Moves ``camera`` to the epoch of its new stamp; returns whether that stamp starts a new newest epoch.

        A camera that jumps back from the newest epoch starts the next one; from an older epoch (it is catching
        up with a loop that another camera began) it joins the newest, as does a camera seen for the first time.
        Joining rather than counting its own jumps keeps a camera that missed a whole loop from lagging forever.
        """
        newest = self._stream_newest[camera]
        jumped_back = newest is not None and stamp_ns < newest - self._jump_back_ns
        self._stream_newest[camera] = stamp_ns if newest is None or jumped_back else max(newest, stamp_ns)
        starts_epoch = jumped_back and self._epoch[camera] == self._newest_epoch
        if starts_epoch:
            self._newest_epoch += 1
        if newest is None or jumped_back:
            self._epoch[camera] = self._newest_epoch
        return starts_epoch

    def _too_late(self, camera: str, stamp_ns: int) -> bool:
        """Whether a set with a frame of ``camera`` as new as ``stamp_ns`` or newer was already emitted."""
        emitted = self._emitted[camera]
        return emitted is not None and stamp_ns <= emitted

    def _partners(self, camera: str, stamp_ns: int) -> dict[str, int] | None:
        """Queue index of each camera's frame nearest to ``stamp_ns``, when all are within tolerance."""
        chosen = {}
        for name in self.cameras:
            stamps = self._stamps[name]
            if not stamps:
                return None
            index = min(range(len(stamps)), key=lambda i: abs(stamps[i] - stamp_ns))
            if abs(stamps[index] - stamp_ns) > self.tolerance_ns:
                return None
            chosen[name] = index
        return chosen

    def _drop_hopeless(self) -> list[T]:
        """Frames that no frame still to come can complete: another camera has moved past them."""
        dropped = []
        for camera in self.cameras:
            stamps = self._stamps[camera]
            while stamps and any(self._passed_over(stamps[0], other) for other in self.cameras if other != camera):
                del stamps[0]
                dropped.append(self._items[camera].pop(0))
        return dropped

    def _passed_over(self, stamp_ns: int, camera: str) -> bool:
        """Whether ``camera`` can no longer give a partner for ``stamp_ns``: its stream is beyond it and
        none of its waiting frames is close enough."""
        newest = self._newest[camera]
        if newest is None or newest <= stamp_ns + self.tolerance_ns:
            return False
        return all(abs(stamp - stamp_ns) > self.tolerance_ns for stamp in self._stamps[camera])
