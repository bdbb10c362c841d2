"""The HPatches protocol on features whose answers are known: matches, MMA, repeatability, homography.

Image k sees image 1 through an asymmetric homography (its inverse is far from it) and has another
size than image 1, so that using the inverse homography or swapping the two sizes changes the scores.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from r2d2_ros.evaluation.hpatches import HPatchesSequence
from r2d2_ros.evaluation.protocol import evaluate_hpatches, evaluate_pair, summarise
from r2d2_ros.features import Features
from r2d2_ros.geometry import warp_points

SIZE1, SIZE2 = (320, 240), (400, 300)  # (width, height)
N = 200


def _homography(k: int) -> np.ndarray:
    """Zoom by 1.1 and shift right and down: the inverse shifts the other way."""
    return np.array([[1.1, 0.02, 20.0 + k], [0.0, 1.1, 15.0], [0.0, 0.0, 1.0]])


def _descriptors(seed: int = 0) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(N, 64, generator=torch.Generator().manual_seed(seed)), dim=1)


def _points() -> np.ndarray:
    """A jittered 20 x 10 grid, 14 px by 20 px apart: no two points within 3 px of each other."""
    ys, xs = np.mgrid[0:10, 0:20]
    grid = np.stack([10 + 14.0 * xs.ravel(), 15 + 20.0 * ys.ravel()], axis=1)
    return grid + np.random.default_rng(0).uniform(-2, 2, (N, 2))


def _features(points: np.ndarray, descriptors: torch.Tensor, size: tuple[int, int]) -> Features:
    keypoints = torch.from_numpy(np.hstack([points, np.full((len(points), 1), 32.0)])).float()
    return Features(keypoints, descriptors, torch.linspace(1, 0, len(points)), size)


def _pair(k: int, shifted_share: float = 0.25) -> tuple[Features, Features]:
    """Image 1's features, and image k's: the same descriptors (shuffled) at H(x), a share moved by 2.5 px."""
    points1, descriptors = _points(), _descriptors()
    points2 = warp_points(_homography(k), points1)
    # Every 4th point (for a share of 1/4), in turn 2.5 px right and left: the RANSAC fit stays unbiased.
    every = round(1 / shifted_share) if shifted_share else N + 1
    points2[np.arange(N) % (2 * every) == 0, 0] += 2.5
    points2[np.arange(N) % (2 * every) == every, 0] -= 2.5
    order = np.random.default_rng(k).permutation(N)
    return (_features(points1, descriptors, SIZE1),
            _features(points2[order], descriptors[order], SIZE2))


def test_a_pair_scores_the_known_answer() -> None:
    first, other = _pair(2)
    matches, mma, repeatability, corner, correct = evaluate_pair(first, other, _homography(2), SIZE1, SIZE2)
    assert matches == N
    # 3/4 of the matches are exact, 1/4 are 2.5 px off: within 3 px and beyond, not within 2.
    np.testing.assert_allclose(mma, [0.75, 0.75] + [1.0] * 8, atol=1e-9)
    assert repeatability == pytest.approx(1.0)
    assert corner < 1.0 and correct == [True, True, True]


def test_repeatability_counts_only_what_both_images_see() -> None:
    """Image 2 is smaller than the warped image 1 here: points warped beyond it are not counted."""
    first, other = _pair(2, shifted_share=0.0)
    small = (250, 200)
    visible = warp_points(_homography(2), _points())
    inside = (visible[:, 0] <= small[0] - 1) & (visible[:, 1] <= small[1] - 1)
    assert 0.2 < inside.mean() < 0.9  # the crop makes a difference
    # Image k's own points beyond the small frame are not "seen" by image 1 either: drop them too.
    kept = other.keypoints[:, 0].numpy() <= small[0] - 1
    kept &= other.keypoints[:, 1].numpy() <= small[1] - 1
    cropped = Features(other.keypoints[kept], other.descriptors[kept], other.scores[kept], small)
    _, _, repeatability, _, _ = evaluate_pair(first, cropped, _homography(2), SIZE1, small)
    assert repeatability == pytest.approx(1.0)
    # With image 1's size where image 2's belongs, points beyond the crop count as lost.
    _, _, swapped, _, _ = evaluate_pair(first, cropped, _homography(2), small, SIZE1)
    assert swapped < 0.95


class _Cache:
    """Stands in for FeatureCache: fixed features per image path."""

    def __init__(self, features: dict[Path, Features]) -> None:
        self._features = features

    def features(self, _method: object, image: Path) -> Features:
        return self._features[image]


def test_hpatches_over_sequences_and_categories() -> None:
    images = tuple(Path(f"v_zoom/{k}.png") for k in range(1, 7))
    pairs = {k: _pair(k) for k in range(2, 7)}
    features = {images[0]: pairs[2][0], **{images[k - 1]: pairs[k][1] for k in range(2, 7)}}
    # An illumination sequence: identity homographies, image k detects only the first half of the points.
    light = tuple(Path(f"i_light/{k}.png") for k in range(1, 7))
    first = _features(_points(), _descriptors(1), SIZE1)
    half = _features(_points()[: N // 2], _descriptors(1)[: N // 2], SIZE1)
    features.update({light[0]: first, **{light[k - 1]: half for k in range(2, 7)}})
    sequences = [HPatchesSequence("v_zoom", "viewpoint", images, tuple(_homography(k) for k in range(2, 7))),
                 HPatchesSequence("i_light", "illumination", light, (np.eye(3),) * 5)]
    results = evaluate_hpatches(sequences, method=None, cache=_Cache(features))
    assert [(r.sequence, r.target) for r in results] == [(s, k) for s in ("v_zoom", "i_light") for k in range(2, 7)]
    summary = summarise(results)
    assert summary["viewpoint"]["pairs"] == 5 and summary["illumination"]["pairs"] == 5
    np.testing.assert_allclose(summary["viewpoint"]["mma"], [0.75, 0.75] + [1.0] * 8, atol=1e-4)
    np.testing.assert_allclose(summary["illumination"]["mma"], [1.0] * 10)
    assert summary["viewpoint"]["matches"] == N and summary["illumination"]["matches"] == N // 2
    assert summary["illumination"]["features"] == (N + N // 2) / 2
    # Half of image 1's points and all of image k's have a counterpart: (100 + 100) / (200 + 100).
    assert summary["illumination"]["repeatability"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["overall"]["pairs"] == 10
    np.testing.assert_allclose(summary["overall"]["mma"][0], (0.75 + 1.0) / 2, atol=1e-4)
    assert summary["viewpoint"]["homography_accuracy"] == {"1": 1.0, "3": 1.0, "5": 1.0}


def test_summary_means_and_their_rounding() -> None:
    """Three hand-made pairs whose means have many digits: each is rounded as the report prints it."""
    from r2d2_ros.evaluation.protocol import PairResult

    def pair(features: tuple[int, int], matches: int, mma: float, repeatability: float, correct: list[bool]):
        return PairResult("v_x", "viewpoint", 2, features, matches, [mma] * 10, repeatability, 1.0, correct)

    results = [pair((100, 101), 10, 1 / 3, 1 / 3, [True, False, False]),
               pair((100, 100), 11, 1 / 3, 1 / 3, [True, True, False]),
               pair((100, 100), 11, 1 / 3, 1 / 3, [False, False, False])]
    summary = summarise(results)["viewpoint"]
    assert summary == {
        "pairs": 3,
        "mma": [0.3333] * 10,
        "thresholds": list(range(1, 11)),
        "features": 100.2,  # 601 / 6
        "matches": 10.7,  # 32 / 3
        "repeatability": 0.3333,
        "homography_accuracy": {"1": 0.6667, "3": 0.3333, "5": 0.0},
    }
