"""Tie-tolerant comparison of keypoint sets, for parity tests that must hold on any CPU.

NMS keeps a pixel whose repeatability equals its 3x3 maximum and that passes both 0.7 thresholds.
Maps that agree to about 1e-5 (other kernels, instruction sets or thread counts, batch norm folded
into the convolutions) flip that decision where two neighbours are equal (a plateau) or where a
value sits on a threshold. So two implementations may differ by a few detections; a difference is
accepted only when it is such a near-tie, and only for a small share of the detections. Anything
else (a wrong NMS window, a wrong threshold, a shifted level) leaves detections unexplained.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from r2d2_ros import ExtractionConfig
from r2d2_ros.extraction import image_to_tensor, pyramid_images
from r2d2_ros.model import R2D2Net

# The parity tests' map tolerance (raw maps match the original to 1e-4; they differ by ~1e-5
# between CPUs and after batch-norm folding): a detection this close to a tie is a tie.
TIE_TOLERANCE = 1e-4
# At most this share of detections may differ, even when every difference is a tie.
MAX_TIED_SHARE = 0.01


@dataclass(frozen=True)
class LevelMaps:
    """Score maps of one pyramid level, and the factor from input pixels to level pixels."""

    patch_diameter: float  # keypoint scale of this level's detections (32 / level scale)
    to_level: tuple[float, float]  # (x, y) factors from input pixels to level pixels
    reliability: np.ndarray  # (h, w)
    repeatability: np.ndarray  # (h, w)


@torch.inference_mode()
def pyramid_maps(model: R2D2Net, image: np.ndarray, config: ExtractionConfig) -> list[LevelMaps]:
    """The fp32 score maps of every used pyramid level, from the extraction's own pyramid."""
    tensor = image_to_tensor(image)
    height, width = tensor.shape[-2:]
    levels = []
    for level, level_image in pyramid_images(tensor, config):
        output = model(level_image)
        levels.append(LevelMaps(32.0 / level.scale, (level.width / width, level.height / height),
                                output.reliability[0, 0].numpy(), output.repeatability[0, 0].numpy()))
    return levels


def _neighbour_maximum(values: np.ndarray) -> np.ndarray:
    """The maximum of each pixel's 8 neighbours (-inf outside the map)."""
    padded = np.pad(values, 1, constant_values=-np.inf)
    height, width = values.shape
    shifted = [padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
               for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    return np.max(shifted, axis=0)


def near_tie(maps: LevelMaps, keypoints: np.ndarray, config: ExtractionConfig,
             tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """Which keypoints of this level sit within ``tolerance`` of an NMS or threshold decision.

    A keypoint is a near-tie when its repeatability is that close to the largest of its 8
    neighbours (a plateau: which pixel is the maximum is a matter of rounding), or its
    repeatability or reliability is that close to its threshold.

    Args:
        keypoints: (N, 3) x, y in input pixels, scale, all of this level.

    Returns:
        (N,) bool.
    """
    xs = np.rint(keypoints[:, 0] * maps.to_level[0]).astype(int)
    ys = np.rint(keypoints[:, 1] * maps.to_level[1]).astype(int)
    repeatability = maps.repeatability[ys, xs]
    reliability = maps.reliability[ys, xs]
    plateau = np.abs(repeatability - _neighbour_maximum(maps.repeatability)[ys, xs]) <= tolerance
    on_threshold = (np.abs(repeatability - config.repeatability_threshold) <= tolerance) | (
        np.abs(reliability - config.reliability_threshold) <= tolerance)
    return plateau | on_threshold


def match_keypoints(expected: np.ndarray, actual: np.ndarray, tolerance: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Pairs rows of two (N, 3) keypoint arrays with the same scale and x, y within ``tolerance``.

    Returns the indices into ``expected`` and into ``actual`` of the matched pairs.
    """
    matched_expected, matched_actual = [np.zeros(0, int)], [np.zeros(0, int)]
    for scale in np.unique(expected[:, 2]):
        a = np.flatnonzero(np.abs(expected[:, 2] - scale) < 1e-3)
        b = np.flatnonzero(np.abs(actual[:, 2] - scale) < 1e-3)
        if len(b) == 0:
            continue
        distance = np.linalg.norm(expected[a, None, :2] - actual[None, b, :2], axis=2)
        nearest = distance.argmin(axis=1)
        close = distance[np.arange(len(a)), nearest] <= tolerance
        matched_expected.append(a[close])
        matched_actual.append(b[nearest[close]])
    return np.concatenate(matched_expected), np.concatenate(matched_actual)


def assert_matched_features_agree(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray],
                                  matched_expected: np.ndarray, matched_actual: np.ndarray) -> None:
    """Matched keypoints have unit descriptors pointing the same way (cosine >= 0.9999) and scores to 1e-4."""
    for name, descriptors in (("expected", expected["descriptors"]), ("actual", actual["descriptors"])):
        norms = np.linalg.norm(descriptors.astype(np.float64), axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-3, err_msg=f"{name} descriptors are not unit vectors")
    e = expected["descriptors"][matched_expected].astype(np.float64)
    a = actual["descriptors"][matched_actual].astype(np.float64)
    cosine = (e * a).sum(axis=1) / (np.linalg.norm(e, axis=1) * np.linalg.norm(a, axis=1))
    assert cosine.min() >= 0.9999, f"descriptor cosine down to {cosine.min():.6f}"
    np.testing.assert_allclose(actual["scores"][matched_actual], expected["scores"][matched_expected], atol=1e-4, rtol=0)


def assert_same_detections(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], maps: list[LevelMaps],
                           config: ExtractionConfig) -> None:
    """Every detection of either side is on the other, or is a near-tie; ties stay under 1%.

    Args:
        expected, actual: ``keypoints`` (N, 3), ``descriptors``, ``scores`` of all detections (no top-k cut).
        maps: the score maps of ``actual``'s pyramid levels, to tell ties from errors.
    """
    matched_expected, matched_actual = match_keypoints(expected["keypoints"], actual["keypoints"])
    differing = {"missing": np.setdiff1d(np.arange(len(expected["keypoints"])), matched_expected),
                 "extra": np.setdiff1d(np.arange(len(actual["keypoints"])), matched_actual)}
    for kind, indices in differing.items():
        keypoints = (expected if kind == "missing" else actual)["keypoints"][indices]
        unexplained = np.ones(len(keypoints), bool)
        for level in maps:
            on_level = np.abs(keypoints[:, 2] - level.patch_diameter) < 1e-3
            unexplained[on_level] = ~near_tie(level, keypoints[on_level], config)
        assert not unexplained.any(), f"{kind} detections that are not ties: {keypoints[unexplained][:10].tolist()}"
    tied = len(differing["missing"]) + len(differing["extra"])
    assert tied <= MAX_TIED_SHARE * len(expected["keypoints"]), f"{tied} tied detections differ, more than 1%"
    assert_matched_features_agree(expected, actual, matched_expected, matched_actual)
