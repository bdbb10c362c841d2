"""Re-identification of lost flow tracks: a point that flow lost (occluded, blurred, its check failed) is
searched for among a later frame's detections by its R2D2 descriptor, and goes on under its old id.

Flow follows a point only while it stays visible from one frame to the next; R2D2's descriptor still
recognises it after a pole or a passing car has hidden it for a frame or two. A lost track is searched
near where the motion of its neighbours since it was last seen puts it, among the detections no
tracked point has taken: the most similar detection within the descriptor limit wins, and the pair must
agree with the camera's motion over that span (the epipolar geometry of the tracks seen both then and
now), so a look-alike elsewhere in the scene cannot take the id.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from .rectification import CameraModel, rectify_points
from .tracker import GUIDE_NEIGHBOURS, NEW_POINT_SPACING_PX, _pixel_distances, _spaced_in_order
from .verification import MIN_MATCHES, epipolar_model, sampson_errors

__all__ = ["LostTracks", "REIDENTIFY_FRAMES", "REIDENTIFY_RADIUS_PX"]

# Frames a lost track may go unseen and still be found again. At KITTI's 10 Hz a pole, a passing car or
# a blurred frame hides a point for a frame or two; the longer it stays hidden, the worse its neighbours'
# motion predicts it (their depths differ from its own) and the more its look changes with scale, while a
# sliding-window back end (about five frames) gains little from a track that comes back after leaving it.
REIDENTIFY_FRAMES = 3
# Radius around a lost track's predicted position searched for it: as the descriptor tracker's guided
# search on KITTI (--track-guided-radius 10). Most points there lie within 2 px of where their
# neighbours' motion puts them over a frame; the rest of the radius allows for parallax over a few.
REIDENTIFY_RADIUS_PX = 10.0


@dataclass(frozen=True)
class _FramePoints:
    """One frame's tracked points: what the motion since a track was lost is measured from."""

    index: int
    ids: np.ndarray  # (N,) int64
    positions: np.ndarray  # (N, 2) raw pixels


@dataclass(frozen=True)
class _Candidate:
    """A lost track and a detection that could be it."""

    track: int  # index among the lost tracks
    detection: int
    similarity: float


class LostTracks:
    """The tracks lost during the last :data:`REIDENTIFY_FRAMES` frames, and the frames' points they were
    lost from.

    Frames are numbered by the caller, one after the other. Each frame: :meth:`search` the frame's free
    detections for the tracks lost before, :meth:`lose` the previous frame's points that did not go on,
    then :meth:`remember` the frame's points (which forgets the tracks lost too long ago).
    """

    def __init__(self) -> None:
        self._frames: deque[_FramePoints] = deque(maxlen=REIDENTIFY_FRAMES + 1)
        self.ids = np.zeros(0, np.int64)  # (L,) of the lost tracks
        self._positions = np.zeros((0, 2), np.float32)  # where each was last seen, raw pixels
        self._descriptors = torch.zeros(0, 0)  # (L, D) as last described
        self._last_seen = np.zeros(0, np.int64)  # frame index

    def lose(self, ids: np.ndarray, positions: np.ndarray, descriptors: torch.Tensor, frame: int) -> None:
        """Adds tracks last seen in ``frame`` at ``positions`` (raw pixels) with ``descriptors`` (K, D)."""
        descriptors = descriptors.detach().float().cpu()
        self._descriptors = torch.cat([self._descriptors, descriptors]) if len(self.ids) else descriptors
        self.ids = np.concatenate([self.ids, ids])
        self._positions = np.vstack([self._positions, positions]).astype(np.float32)
        self._last_seen = np.concatenate([self._last_seen, np.full(len(ids), frame, np.int64)])

    def renamed_last_frame(self, ids: np.ndarray) -> None:
        """The last remembered frame's points go by ``ids`` from now on (a stereo partner adopted them)."""
        if self._frames and len(self._frames[-1].ids) == len(ids):
            self._frames[-1] = _FramePoints(self._frames[-1].index, ids, self._frames[-1].positions)

    def remember(self, frame: int, ids: np.ndarray, positions: np.ndarray, resumed: np.ndarray) -> None:
        """Keeps ``frame``'s points (ids, raw positions) and forgets the ``resumed`` ids and the tracks that
        the next frame could no longer find (missed more than :data:`REIDENTIFY_FRAMES` frames by then)."""
        self._frames.append(_FramePoints(frame, ids, positions))
        self._keep(~np.isin(self.ids, resumed) & (frame - self._last_seen <= REIDENTIFY_FRAMES))

    def _keep(self, mask: np.ndarray) -> None:
        index = np.flatnonzero(mask)
        self.ids, self._positions, self._last_seen = self.ids[index], self._positions[index], self._last_seen[index]
        self._descriptors = self._descriptors[torch.from_numpy(index)]

    def search(self, eligible: np.ndarray, tracked_ids: np.ndarray, tracked_positions: np.ndarray,
               detections: np.ndarray, descriptors: torch.Tensor, free: np.ndarray, camera: CameraModel | None,
               max_descriptor_distance: float, threshold_px: float, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """The lost tracks found among this frame's free detections.

        Args:
            eligible: (L,) bool, which lost tracks may resume (those whose id nothing else took).
            tracked_ids, tracked_positions: the points flow carried into this frame, raw pixels.
            detections, descriptors: the frame's detections, (M, 2) raw pixels and (M, D).
            free: (M,) bool, the detections no tracked point has taken.
            camera: verification on rectified pixels with the essential matrix; None: raw pixels.
            max_descriptor_distance: the largest Euclidean distance between unit descriptors of one point.
            threshold_px: the largest Sampson distance to the motion since the track was lost.
            limit: the most tracks found.

        Returns:
            The found tracks' ids (R,) and their detections (R,), most similar first; no detection twice,
            none within NEW_POINT_SPACING_PX of another.
        """
        candidates: list[_Candidate] = []
        for points_then in self._frames:
            lost = np.flatnonzero(eligible & (self._last_seen == points_then.index))
            if len(lost) and free.any():
                candidates += self._candidates(lost, points_then, tracked_ids, tracked_positions, detections,
                                               descriptors, free, camera, max_descriptor_distance, threshold_px)
        candidates.sort(key=lambda candidate: -candidate.similarity)
        taken: set[int] = set()
        tracks: dict[int, int] = {}  # lost track -> its detection, in the order they were found
        for candidate in candidates:  # the most similar pairs first, each track and detection once
            if candidate.track not in tracks and candidate.detection not in taken:
                tracks[candidate.track] = candidate.detection
                taken.add(candidate.detection)
        found, detections_found = np.array(list(tracks), np.int64), np.array(list(tracks.values()), np.int64)
        spaced = _spaced_in_order(detections[detections_found].tolist(), NEW_POINT_SPACING_PX, limit)
        return self.ids[found[spaced]], detections_found[spaced]

    def _candidates(self, lost: np.ndarray, points_then: _FramePoints, tracked_ids: np.ndarray,
                    tracked_positions: np.ndarray, detections: np.ndarray, descriptors: torch.Tensor,
                    free: np.ndarray, camera: CameraModel | None, max_descriptor_distance: float,
                    threshold_px: float) -> list[_Candidate]:
        """The free detections that could be the ``lost`` tracks (all last seen in ``points_then``): near
        where the motion of their neighbours since then puts them, on their epipolar lines and alike."""
        _, then_index, now_index = np.intersect1d(points_then.ids, tracked_ids, return_indices=True)
        if len(then_index) < MIN_MATCHES:
            return []
        anchors_then, anchors_now = points_then.positions[then_index], tracked_positions[now_index]
        rectified_then, rectified_now = anchors_then, anchors_now
        if camera is not None:
            rectified_then, rectified_now = rectify_points(anchors_then, camera), rectify_points(anchors_now, camera)
        _, fundamental = epipolar_model(rectified_then, rectified_now,
                                        camera.rectified_matrix if camera is not None else None, threshold_px)
        if fundamental is None:
            return []
        neighbours = _pixel_distances(torch.from_numpy(self._positions[lost]), torch.from_numpy(anchors_then)).topk(
            min(GUIDE_NEIGHBOURS, len(anchors_then)), dim=1, largest=False).indices.numpy()
        predicted = self._positions[lost] + np.median((anchors_now - anchors_then)[neighbours], axis=1)
        searched = np.flatnonzero(free)
        gap = _pixel_distances(torch.from_numpy(predicted.astype(np.float32)),
                               torch.from_numpy(detections[searched]))
        rows, columns = (index.numpy() for index in (gap <= REIDENTIFY_RADIUS_PX).nonzero(as_tuple=True))
        tracks, found = lost[rows], searched[columns]
        then, now = self._positions[tracks], detections[found]
        if camera is not None:
            then, now = rectify_points(then, camera), rectify_points(now, camera)
        on_line = sampson_errors(then, now, fundamental) <= threshold_px
        tracks, found = tracks[on_line], found[on_line]
        similarity = (self._descriptors[torch.from_numpy(tracks)] *
                      descriptors[torch.from_numpy(found)].detach().float().cpu()).sum(dim=1)
        # Unit descriptors: |a - b| = sqrt(2 - 2 a.b), as the trackers' limit is stated.
        alike = ((2 - 2 * similarity).clamp(min=0).sqrt() <= max_descriptor_distance).numpy()
        return [_Candidate(int(track), int(detection), float(value)) for track, detection, value
                in zip(tracks[alike], found[alike], similarity.numpy()[alike])]
