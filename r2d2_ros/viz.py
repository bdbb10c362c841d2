"""Pictures for people: colourised heatmaps and keypoint overlays (node, demo, CLIs, evaluation)."""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["COLORMAPS", "colorize_heatmap", "draw_keypoints", "draw_tracks", "to_display_rgb"]

# Colour-map names accepted by the node and the tools; "gray" keeps the values as grey levels.
COLORMAPS: dict[str, int | None] = {
    "turbo": cv2.COLORMAP_TURBO,
    "jet": cv2.COLORMAP_JET,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
    "gray": None,
}


def colorize_heatmap(heatmap: np.ndarray, colormap: str = "turbo") -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 RGB, with one of :data:`COLORMAPS`."""
    if heatmap.ndim != 2:
        raise ValueError(f"expected an (H, W) heatmap, got {heatmap.shape}")
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colour map {colormap!r}; use one of {', '.join(COLORMAPS)}")
    levels = (np.clip(np.nan_to_num(heatmap), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if COLORMAPS[colormap] is None:
        return cv2.cvtColor(levels, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(cv2.applyColorMap(levels, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)


def to_display_rgb(image: np.ndarray) -> np.ndarray:
    """Any image the extractor accepts (grey or RGB; uint8, uint16 or float in [0, 1]) as uint8 RGB."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image[:, :, :3]


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, scores: np.ndarray | None = None,
                   max_radius: int = 12) -> np.ndarray:
    """Draws keypoints on an image; the radius grows with the keypoint scale.

    Args:
        image: anything :func:`to_display_rgb` accepts.
        keypoints: (N, 3) x, y, scale.
        scores: (N,) in [0, 1]; colours follow the turbo map (blue low, red high) when given.

    Returns:
        (H, W, 3) uint8 RGB copy with the keypoints drawn.
    """
    canvas = to_display_rgb(image).copy()
    if len(keypoints) == 0:
        return canvas
    colours = np.full((len(keypoints), 3), (0, 255, 0), np.uint8)
    if scores is not None:
        colours = colorize_heatmap(np.asarray(scores, np.float32)[None])[0]
    radii = np.clip(keypoints[:, 2] / 8.0, 1, max_radius).astype(int)
    for (x, y, _), radius, colour in zip(keypoints, radii, colours):
        cv2.circle(canvas, (int(round(x)), int(round(y))), int(radius), tuple(int(c) for c in colour), 1, cv2.LINE_AA)
    return canvas


def draw_tracks(image: np.ndarray, trails: list[np.ndarray], colour: tuple[int, int, int] = (255, 64, 0)) -> np.ndarray:
    """Draws feature tracks as trails ending in a dot at each track's newest position.

    Args:
        image: anything :func:`to_display_rgb` accepts.
        trails: (L, 2) positions of each track, oldest first.

    Returns:
        (H, W, 3) uint8 RGB copy with the trails drawn.
    """
    canvas = to_display_rgb(image).copy()
    for trail in trails:
        points = np.rint(trail).astype(np.int32)
        cv2.polylines(canvas, [points.reshape(-1, 1, 2)], False, colour, 1, cv2.LINE_AA)
        cv2.circle(canvas, (int(points[-1, 0]), int(points[-1, 1])), 2, (0, 255, 0), -1, cv2.LINE_AA)
    return canvas
