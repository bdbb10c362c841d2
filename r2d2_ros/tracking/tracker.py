"""R2D2 feature tracking: each frame matched to the previous one, verified, with persistent track ids.

Descriptors are matched on their device (mutual nearest neighbours within a distance limit), so a
GPU pipeline copies nothing extra; only the matched positions go to the host for RANSAC. Matching
by descriptor, not by position, is what keeps tracks through frames dropped under load: only the
appearance change, not the distance moved, limits a match.

With ``guided_radius_px`` a point that mutual nearest neighbours missed is searched again near where
its verified neighbours moved in the same frame pair, so a dropped frame does not break that either.
There the position decides, not the descriptor: R2D2's descriptors of detections a few pixels apart
are nearly the same (on KITTI, of the lost points that optical flow could follow and that were
detected again within 2 px of where the flow went, the re-detection was the most similar detection
within 10 px for only a quarter), while the neighbours' motion puts most points within 2 px of
where the flow went.

With ``max_points`` the tracker also chooses which detections a frame keeps, as classic front ends
(VINS) do: the tracked points first, wherever they rank among the detections, then the best new
ones away from them and from each other. Without it, a point leaves its track as soon as it drops out
of the best N.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..features import Features
from ..matching import mutual_nearest_neighbours
from .tracks import TrackBook, TrackIdSequence, Tracks
from .verification import epipolar_model, sampson_errors

__all__ = ["TrackerConfig", "FeatureTracker", "TrackingMode", "TRACKING_MODES"]

# "descriptor": each frame's detections matched to the previous frame's (FeatureTracker); "flow": tracked
# points carried by optical flow, detections only verify them and start new tracks (FlowTracker).
TrackingMode = Literal["descriptor", "flow"]
TRACKING_MODES: tuple[TrackingMode, ...] = ("descriptor", "flow")

# Closest a new point may lie to a tracked one or to another new one: nearer, it is most likely the same
# point re-detected (a track the matcher missed) or found again at another pyramid level (multi-scale
# extraction keeps each level's peak), and two ids for one point would count it twice in a VO back end.
NEW_POINT_SPACING_PX = 4.0
# Verified neighbours whose median motion predicts where an unmatched point went (guided search).
GUIDE_NEIGHBOURS = 5
# Share of the RANSAC threshold (a Sampson distance) a guided match may have: chosen by position,
# a match must agree with the motion more closely than one that two descriptors chose.
GUIDED_EPIPOLAR_SHARE = 0.5


@dataclass(frozen=True)
class TrackerConfig:
    """How frames are matched and verified."""

    max_descriptor_distance: float = 1.0  # Euclidean, between unit descriptors (cosine >= 0.5)
    ransac_threshold_px: float = 1.0  # Sampson distance to the epipolar geometry, px
    trail_length: int = 20  # positions kept per track for drawing
    # 0: every detection is kept and tracked. N > 0: the detections are candidates (extract more than
    # N); a frame keeps its tracked points, then new detections, best first, up to N, each more than
    # NEW_POINT_SPACING_PX from the tracked points and from the other new ones.
    max_points: int = 0
    # > 0: after RANSAC, a previous point without a match takes the unmatched detection nearest to where
    # its verified neighbours' motion puts it, within this radius, on its epipolar line and within the
    # descriptor limit.
    guided_radius_px: float = 0.0
    # Which tracker the front end runs; the guided search is the descriptor mode's only.
    mode: TrackingMode = "descriptor"

    def __post_init__(self) -> None:
        if self.mode not in TRACKING_MODES:
            raise ValueError(f"mode must be one of {', '.join(TRACKING_MODES)}, got {self.mode!r}")
        if not 0 < self.max_descriptor_distance <= 2:
            raise ValueError(f"max_descriptor_distance must be in (0, 2], got {self.max_descriptor_distance}")
        if self.ransac_threshold_px <= 0 or self.trail_length < 2:
            raise ValueError(f"need ransac_threshold_px > 0 and trail_length >= 2: {self}")
        if self.guided_radius_px < 0:
            raise ValueError(f"guided_radius_px must be 0 (off) or positive, got {self.guided_radius_px}")
        if self.max_points < 0:
            raise ValueError(f"max_points must be 0 (keep every detection) or positive, got {self.max_points}")


class FeatureTracker:
    """Gives each keypoint of a stream of frames a persistent track id (one camera)."""

    def __init__(self, config: TrackerConfig = TrackerConfig(), ids: TrackIdSequence | None = None) -> None:
        """``ids``: where new track ids come from (shared by the trackers of one node); default: its own."""
        self.config = config
        self.book = TrackBook(config.trail_length, ids)
        self._previous: Features | None = None

    def reset(self) -> None:
        """Starts over (e.g. the camera changed); ids are never reused."""
        self.book.reset()
        self._previous = None

    def match(self, previous: Features, current: Features, camera_matrix: np.ndarray | None = None) -> np.ndarray:
        """Verified matches (index in ``previous``, index in ``current``), (K, 2) int64."""
        candidates = mutual_nearest_neighbours(previous.descriptors, current.descriptors,
                                               self.config.max_descriptor_distance).cpu().numpy()
        if len(candidates) == 0:
            return candidates
        points1 = previous.keypoints[:, :2].float().cpu().numpy()
        points2 = current.keypoints[:, :2].float().cpu().numpy()
        inliers, fundamental = epipolar_model(points1[candidates[:, 0]], points2[candidates[:, 1]], camera_matrix,
                                              self.config.ransac_threshold_px)
        verified = candidates[inliers]
        if self.config.guided_radius_px == 0 or fundamental is None:
            return verified
        return np.vstack([verified, self._guided_matches(previous, current, points1, points2, verified, fundamental)])

    def _guided_matches(self, previous: Features, current: Features, points1: np.ndarray, points2: np.ndarray,
                        verified: np.ndarray, fundamental: np.ndarray) -> np.ndarray:
        """Matches for the previous points that mutual nearest neighbours missed, (K, 2) int64.

        A point whose nearest neighbour over the whole frame was another one (repeated texture, or a
        detection a few pixels away), or whose match preferred another point, is searched again among
        the unmatched detections near its predicted position (moved as its nearest verified neighbours
        moved): the one nearest to the prediction within ``guided_radius_px``, within
        :data:`GUIDED_EPIPOLAR_SHARE` of the RANSAC threshold of its epipolar line and within the
        descriptor limit wins, one detection per point (a detection claimed twice goes to the point
        predicted nearer).
        """
        unmatched1 = np.setdiff1d(np.arange(len(points1)), verified[:, 0])
        unmatched2 = np.setdiff1d(np.arange(len(points2)), verified[:, 1])
        if len(verified) == 0 or len(unmatched1) == 0 or len(unmatched2) == 0:
            return np.zeros((0, 2), np.int64)
        anchors = torch.from_numpy(points1[verified[:, 0]])
        flow = torch.from_numpy(points2[verified[:, 1]]) - anchors
        neighbours = _pixel_distances(torch.from_numpy(points1[unmatched1]), anchors).topk(
            min(GUIDE_NEIGHBOURS, len(anchors)), dim=1, largest=False).indices
        predicted = points1[unmatched1] + flow[neighbours].median(dim=1).values.numpy()
        gap = _pixel_distances(torch.from_numpy(predicted), torch.from_numpy(points2[unmatched2]))
        rows, columns = (index.numpy() for index in (gap <= self.config.guided_radius_px).nonzero(as_tuple=True))
        pairs, gap = np.column_stack([unmatched1[rows], unmatched2[columns]]), gap[rows, columns].numpy()
        on_line = sampson_errors(points1[pairs[:, 0]], points2[pairs[:, 1]], fundamental) <= \
            GUIDED_EPIPOLAR_SHARE * self.config.ransac_threshold_px
        pairs, gap = pairs[on_line], gap[on_line]
        if len(pairs) == 0:
            return pairs
        index1, index2 = (torch.from_numpy(column).to(previous.descriptors.device) for column in pairs.T)
        similarity = (previous.descriptors[index1].float() * current.descriptors[index2].float()).sum(dim=1)
        alike = ((2 - 2 * similarity).clamp(min=0).sqrt() <= self.config.max_descriptor_distance).cpu().numpy()
        pairs, gap = pairs[alike], gap[alike]
        order = np.lexsort((gap, pairs[:, 0]))  # grouped by previous point, nearest to its prediction first
        pairs, gap = pairs[order], gap[order]
        first = np.unique(pairs[:, 0], return_index=True)[1]
        pairs, gap = pairs[first], gap[first]
        order = np.argsort(gap, kind="stable")
        return pairs[order][np.unique(pairs[order, 1], return_index=True)[1]]

    def update(self, features: Features, camera_matrix: np.ndarray | None = None) -> tuple[np.ndarray, Tracks]:
        """Tracks of a new frame.

        Args:
            features: the frame's keypoints, best first (coordinates as RANSAC should see them:
                rectified pixels when ``camera_matrix`` is given).
            camera_matrix: (3, 3) intrinsics of those coordinates, for the essential-matrix check.

        Returns:
            The indices of the keypoints the frame keeps, ascending (all of them when ``max_points``
            is 0), and the tracks of those keypoints.
        """
        matches = np.zeros((0, 2), np.int64) if self._previous is None else \
            self.match(self._previous, features, camera_matrix)
        points = features.keypoints[:, :2].float().cpu().numpy()
        if self.config.max_points == 0:
            self._previous = features
            return np.arange(len(features)), self.book.update(points, matches)
        kept = self._keep(points, matches[:, 1])
        position_in_kept = np.full(len(features), -1, np.int64)
        position_in_kept[kept] = np.arange(len(kept))
        matches = np.column_stack([matches[:, 0], position_in_kept[matches[:, 1]]])
        self._previous = features.select(kept)
        return kept, self.book.update(points[kept], matches)

    def _keep(self, points: np.ndarray, tracked: np.ndarray) -> np.ndarray:
        """Indices of the tracked detections and of the best others, ascending: each new one farther than
        NEW_POINT_SPACING_PX from the tracked ones and from the new ones before it.

        ``points`` are best first, as extraction returns them; ``tracked`` are at most ``max_points``
        (the previous frame kept no more).
        """
        others = np.setdiff1d(np.arange(len(points)), tracked)
        if len(tracked) and len(others):  # one vectorised step for the many detections on tracked points
            distance = _pixel_distances(torch.from_numpy(points[others]), torch.from_numpy(points[tracked]))
            others = others[(distance.min(dim=1).values > NEW_POINT_SPACING_PX).numpy()]
        new = _spaced_in_order(points[others].tolist(), NEW_POINT_SPACING_PX, self.config.max_points - len(tracked))
        return np.sort(np.concatenate([tracked, others[new]]))


def _pixel_distances(points1: torch.Tensor, points2: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between two sets of pixel positions, (N, M), computed from the differences.

    ``torch.cdist`` by default expands |a - b|^2 into |a|^2 + |b|^2 - 2ab for more than 25 points, which in
    float32 at coordinates of a thousand pixels is off by up to a fifth of a pixel: enough to flip a
    4 px spacing or which of two detections is the nearer.
    """
    return torch.cdist(points1, points2, compute_mode="donot_use_mm_for_euclid_dist")


def _spaced_in_order(points: list[list[float]], spacing: float, limit: int) -> np.ndarray:
    """Indices of the first ``limit`` points, in their order, farther than ``spacing`` from every point
    taken before them (greedy, as a corner detector's minimum distance), (K,) int64.

    Points are hashed into cells of ``spacing`` pixels, so each is compared with the taken points of its
    3x3 cells only; plain floats, because numpy's per-element overhead would dominate this loop.
    """
    cells: dict[tuple[int, int], list[tuple[float, float]]] = {}
    taken: list[int] = []
    for index, (x, y) in enumerate(points):
        if len(taken) >= limit:
            break
        column, row = math.floor(x / spacing), math.floor(y / spacing)
        if all(math.hypot(x - u, y - v) > spacing for dx in (-1, 0, 1) for dy in (-1, 0, 1)
               for u, v in cells.get((column + dx, row + dy), ())):
            taken.append(index)
            cells.setdefault((column, row), []).append((x, y))
    return np.array(taken, np.int64)
