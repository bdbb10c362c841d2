"""Persistent track ids from frame-to-frame matches, whatever produced the matches.

The bookkeeping is shared by the R2D2 tracker and the evaluation's baselines (KLT, ORB), so
their track statistics mean the same thing.
"""
from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

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


class _EndedTrack(NamedTuple):
    """A track missing from the latest frames, kept while it may still resume."""

    length: int
    trail: deque[tuple[float, float]]
    last_frame: int  # index of the last frame it was seen in


class TrackBook:
    """Assigns track ids frame by frame and keeps a short trail of positions per live track.

    Args:
        trail_length: positions kept per track for drawing (the overlay's trails).
        ids: where new ids come from; shared by several books, no two of them give one id. Default:
            a sequence of this book's own, starting at 0.
        resume_frames: frames a track may go unseen and still resume under its id (``update``'s
            ``resumed``, a tracker that re-identifies lost points); 0: a track missing from one frame
            has ended, except to be resumed in that very frame.
    """

    def __init__(self, trail_length: int = 20, ids: TrackIdSequence | None = None, resume_frames: int = 0) -> None:
        self.trail_length = trail_length
        self.resume_frames = resume_frames
        self._id_sequence = ids if ids is not None else TrackIdSequence()
        self.reset()

    def reset(self) -> None:
        """Forgets every track (a new sequence); ids keep increasing, so they are never reused."""
        self._ids = np.zeros(0, np.int64)
        self._lengths = np.zeros(0, np.int32)
        self._trails: dict[int, deque[tuple[float, float]]] = {}
        self._ended: dict[int, _EndedTrack] = {}
        self._frame = -1  # index of the last frame

    @property
    def ids(self) -> np.ndarray:
        """The track ids of the last frame's points (as :meth:`adopt` left them), (N,) int64."""
        return self._ids.copy()

    def resumable(self, ids: np.ndarray) -> np.ndarray:
        """(K,) bool: which ``ids`` name tracks missing from the last frame that the next :meth:`update` may
        still resume (last seen at most ``resume_frames`` frames before it, and the id no live track's)."""
        return np.isin(ids, np.fromiter(self._ended, np.int64, len(self._ended)))

    def update(self, points: np.ndarray, matches: np.ndarray, resumed: np.ndarray | None = None) -> Tracks:
        """The tracks of a new frame.

        Args:
            points: (N, 2) x, y of the new frame's keypoints.
            matches: (K, 2) (index in the previous frame, index in this frame) of verified matches.
            resumed: (R, 2) (track id, index in this frame) of tracks found again: each :meth:`resumable`,
                or a track of the last frame that ``matches`` do not continue. A resumed track's length
                counts the frames it was seen in.

        Raises:
            ValueError: a resumed id that is not resumable, given twice, or for a matched keypoint.
        """
        count = len(points)
        ids = np.full(count, -1, np.int64)
        lengths = np.ones(count, np.int32)
        if len(matches):
            previous, current = matches[:, 0], matches[:, 1]
            ids[current] = self._ids[previous]
            lengths[current] = self._lengths[previous] + 1
        ended = self._ended | self._unmatched(matches)
        resumed = np.zeros((0, 2), np.int64) if resumed is None else np.asarray(resumed, np.int64).reshape(-1, 2)
        if (not np.isin(resumed[:, 0], np.fromiter(ended, np.int64, len(ended))).all()
                or len(np.unique(resumed[:, 0])) < len(resumed) or len(np.unique(resumed[:, 1])) < len(resumed)
                or (ids[resumed[:, 1]] >= 0).any()):
            raise ValueError("a resumed track must have ended lately, and resume once, on an unmatched keypoint")
        trails = {}
        for track_id, index in resumed.tolist():
            track = ended.pop(track_id)
            ids[index], lengths[index], trails[track_id] = track_id, track.length + 1, track.trail
        new = ids < 0
        ids[new] = self._id_sequence.take(int(new.sum()))
        for track_id, (x, y) in zip(ids.tolist(), points[:, :2].tolist()):
            trail = trails.get(track_id) or self._trails.get(track_id) or deque(maxlen=self.trail_length)
            trail.append((x, y))
            trails[track_id] = trail
        self._frame += 1
        # Kept while the next frame may resume it: missed in at most resume_frames frames by then.
        self._ended = {track_id: track for track_id, track in ended.items()
                       if self._frame - track.last_frame <= self.resume_frames}
        self._trails, self._ids, self._lengths = trails, ids, lengths
        return Tracks(ids.copy(), lengths.copy())

    def _unmatched(self, matches: np.ndarray) -> dict[int, _EndedTrack]:
        """The last frame's tracks that ``matches`` do not continue, by id."""
        unmatched = np.setdiff1d(np.arange(len(self._ids)), matches[:, 0] if len(matches) else [])
        return {track_id: _EndedTrack(int(self._lengths[index]), self._trails[track_id], self._frame)
                for track_id, index in zip(self._ids[unmatched].tolist(), unmatched.tolist())}

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
        for track_id in ids.tolist():  # the id names a live track now: no ended one may resume under it
            self._ended.pop(track_id, None)
        return Tracks(renamed.copy(), self._lengths.copy())

    def trails(self) -> list[np.ndarray]:
        """(L, 2) positions of each live track seen in at least two frames, oldest first."""
        return [np.array(trail) for trail in self._trails.values() if len(trail) > 1]
