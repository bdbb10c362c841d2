"""Homographies and correspondence fields, shared by training (synthetic pairs) and evaluation."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["HomographyConfig", "sample_homography", "local_scale", "warp_points", "homography_flow", "corner_error"]


@dataclass(frozen=True)
class HomographyConfig:
    """Ranges of the random homographies (all centred on the image centre)."""

    # The extraction pyramid steps by 2^0.25, so the network itself only has to cover about half
    # an octave either way; larger zooms are the pyramid's job.
    max_log2_scale: float = 0.5  # zoom factor in [2^-x, 2^x]
    max_log2_aspect: float = 0.25  # x stretched by 2^a and y by 2^-a, a in [-x, x] (oblique views)
    rotation_probability: float = 0.5  # share of pairs that are rotated (robot cameras mostly stay upright)
    max_rotation_deg: float = 30.0  # in-plane rotation in [-x, x], when rotated
    max_tilt: float = 0.5  # perspective: corners of one side moved inward by up to this fraction
    max_translation: float = 0.15  # shift of up to this fraction of the size

    def __post_init__(self) -> None:
        if min(self.max_log2_scale, self.max_log2_aspect, self.max_rotation_deg, self.max_tilt,
               self.max_translation) < 0:
            raise ValueError(f"homography ranges must be non-negative: {self}")
        if self.max_tilt >= 1.0:
            raise ValueError(f"max_tilt must be < 1 (a side cannot shrink to nothing), got {self.max_tilt}")
        if not 0 <= self.rotation_probability <= 1:
            raise ValueError(f"rotation_probability must be in [0, 1], got {self.rotation_probability}")


def _translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], float)


def sample_homography(rng: np.random.Generator, width: int, height: int,
                      config: HomographyConfig = HomographyConfig()) -> np.ndarray:
    """A random 3x3 homography of a (width, height) image: tilt, rotation, scale and aspect, then translation."""
    half = np.array([width, height], float) / 2
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * half
    # A camera tilting away from one side sees that side shorter: pull its two corners together.
    side = int(rng.integers(4))
    ends = [side, (side + 1) % 4]
    middle = corners[ends].mean(axis=0)
    tilted = corners.copy()
    tilted[ends] += rng.uniform(0, config.max_tilt) * (middle - corners[ends])
    perspective = _homography_from_points(corners, tilted)
    rotated = rng.random() < config.rotation_probability
    angle = np.deg2rad(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)) if rotated else 0.0
    scale = 2.0 ** rng.uniform(-config.max_log2_scale, config.max_log2_scale)
    aspect = 2.0 ** rng.uniform(-config.max_log2_aspect, config.max_log2_aspect)
    similarity = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]) * \
        np.array([[scale * aspect], [scale / aspect], [1.0]])
    shift = rng.uniform(-config.max_translation, config.max_translation, 2) * np.array([width, height])
    centred = _translation(*(half + shift)) @ similarity @ perspective @ _translation(*(-half))
    return centred / centred[2, 2]


def local_scale(homography: np.ndarray, x: float, y: float) -> float:
    """How much a homography magnifies areas around (x, y): sqrt(|det J|) of its Jacobian there."""
    h = np.asarray(homography, float)
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
    v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
    jacobian = np.array([[h[0, 0] - u * h[2, 0], h[0, 1] - u * h[2, 1]],
                         [h[1, 0] - v * h[2, 0], h[1, 1] - v * h[2, 1]]]) / w
    return float(np.sqrt(abs(np.linalg.det(jacobian))))


def _homography_from_points(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The homography mapping 4 source points onto 4 target points (direct linear transform)."""
    rows = []
    for (x, y), (u, v) in zip(source, target):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    _, _, vt = np.linalg.svd(np.array(rows))
    homography = vt[-1].reshape(3, 3)
    return homography / homography[2, 2]


def warp_points(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Applies a 3x3 homography to (N, 2) points (x, y); points at infinity become NaN."""
    points = np.asarray(points, float)
    homogeneous = np.hstack([points, np.ones((len(points), 1))]) @ np.asarray(homography, float).T
    with np.errstate(divide="ignore", invalid="ignore"):
        warped = homogeneous[:, :2] / homogeneous[:, 2:]
    warped[~np.isfinite(warped).all(axis=1)] = np.nan
    return warped


def homography_flow(homography: np.ndarray, width: int, height: int) -> np.ndarray:
    """(height, width, 2) float32: where each pixel (x, y) of image 1 lands in image 2."""
    ys, xs = np.mgrid[0:height, 0:width]
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
    return warp_points(homography, grid).reshape(height, width, 2).astype(np.float32)


def corner_error(estimated: np.ndarray, truth: np.ndarray, width: int, height: int) -> float:
    """Mean distance (pixels) between the image corners mapped by two homographies (HPatches protocol)."""
    corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], float)
    return float(np.linalg.norm(warp_points(estimated, corners) - warp_points(truth, corners), axis=1).mean())
