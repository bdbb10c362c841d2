"""Persistent track ids from frame-to-frame matches, whatever produced the matches.

The bookkeeping is shared by the R2D2 tracker and the evaluation's baselines (KLT, ORB), so
their track statistics mean the same thing.
"""
from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["TrackIdSequence", "Tracks", "TrackBook"]


@dataclass(frozen=True)
class Tracks:
    """Track of each keypoint of one frame.

    Attributes:
        ids: (N,) int64, persistent over frames; a new id for a keypoint seen for the first time.
        lengths: (N,) int32, frames this track has been seen in, this one included (1 = new).
    """

    ids: np.ndarray
    lengths: np.ndarray


class TrackIdSequence:
    """Hands out track ids that are never given twice, to any number of track books (thread-safe).

    One node serving several cameras gives each camera's tracker the same sequence, so that two
    cameras never give one id to different points, and a tracker that starts over never reuses one.
    """

    def __init__(self, start: int = 0) -> None:
        self._counter = itertools.count(start)
        self._lock = threading.Lock()

    def take(self, count: int) -> np.ndarray:
        """``count`` new ids, ascending, as an int64 array."""
        with self._lock:
            return np.fromiter((next(self._counter) for _ in range(count)), np.int64, count)


class TrackBook:
    """Assigns track ids frame by frame and keeps a short trail of positions per live track.

    Args:
        trail_length: positions kept per track for drawing (the overlay's trails).
        ids: where new ids come from; shared by several books, no two of them give one id. Default:
            a sequence of this book's own, starting at 0.
    """

    def __init__(self, trail_length: int = 20, ids: TrackIdSequence | None = None) -> None:
        self.trail_length = trail_length
        self._id_sequence = ids if ids is not None else TrackIdSequence()
        self.reset()

    def reset(self) -> None:
        """Forgets every track (a new sequence); ids keep increasing, so they are never reused."""
        self._ids = np.zeros(0, np.int64)
        self._lengths = np.zeros(0, np.int32)
        self._trails: dict[int, deque[tuple[float, float]]] = {}

    def update(self, points: np.ndarray, matches: np.ndarray) -> Tracks:
        """The tracks of a new frame.

        Args:
            points: (N, 2) x, y of the new frame's keypoints.
            matches: (K, 2) (index in the previous frame, index in this frame) of verified matches.
        """
        count = len(points)
        ids = np.full(count, -1, np.int64)
        lengths = np.ones(count, np.int32)
        if len(matches):
            previous, current = matches[:, 0], matches[:, 1]
            ids[current] = self._ids[previous]
            lengths[current] = self._lengths[previous] + 1
        new = ids < 0
        ids[new] = self._id_sequence.take(int(new.sum()))
        trails = {}
        for track_id, (x, y) in zip(ids.tolist(), points[:, :2].tolist()):
            trail = self._trails.get(track_id) or deque(maxlen=self.trail_length)
            trail.append((x, y))
            trails[track_id] = trail
        self._trails, self._ids, self._lengths = trails, ids, lengths
        return Tracks(ids.copy(), lengths.copy())

    def adopt(self, indices: np.ndarray, ids: np.ndarray) -> Tracks:
        """Renames the tracks of the last frame's points ``indices`` to ``ids`` for good, and returns that frame's tracks.

        Later frames go on with the new ids (a stereo partner takes its point's id from the other
        camera); lengths and trails stay, as the track's history does.

        Raises:
            ValueError: an id would name two of this book's live tracks.
        """
        renamed = self._ids.copy()
        renamed[indices] = ids
        if len(np.unique(renamed)) != len(renamed):
            raise ValueError("an adopted id already names another live track")
        self._trails = {new: self._trails[old] for old, new in zip(self._ids.tolist(), renamed.tolist())}
        self._ids = renamed
        return Tracks(renamed.copy(), self._lengths.copy())

    def trails(self) -> list[np.ndarray]:
        """(L, 2) positions of each live track seen in at least two frames, oldest first."""
        return [np.array(trail) for trail in self._trails.values() if len(trail) > 1]
