"""Sub-pixel keypoint positions: a parabola through each repeatability peak and its neighbours.

The network's maps have one value per pixel of a pyramid level, so a keypoint found on a level at
scale s is only known to 1/s input pixels; geometry from matched keypoints (relative pose, tracks'
epipolar checks) is as precise as these positions.
"""
from __future__ import annotations

import torch

from ..utils import check_shape

__all__ = ["subpixel_offsets", "level_to_input"]


def _parabola_vertex(before: torch.Tensor, peak: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Position of the vertex of the parabola through (-1, before), (0, peak), (1, after), within [-0.5, 0.5]."""
    curvature = before - 2 * peak + after
    offset = (before - after) / (2 * curvature)
    # A flat neighbourhood (a plateau, or a side beyond the map) says nothing: keep the pixel.
    return torch.where(curvature < 0, offset, torch.zeros_like(offset)).clamp(-0.5, 0.5)


def subpixel_offsets(repeatability: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Offsets (dx, dy) in level pixels of the repeatability peaks at flat pixel ``indices``.

    Each axis gets its own parabola through the peak and its two neighbours on that axis; a peak on
    the map's edge keeps offset 0 along the axis it touches.

    Args:
        repeatability: (B, 1, h, w) map of one pyramid level.
        indices: (B, k) flat pixel indices (row * w + column) of peaks.

    Returns:
        dx, dy: (B, k) float, each in [-0.5, 0.5].
    """
    check_shape(repeatability, "B 1 H W")
    height, width = repeatability.shape[-2:]
    flat = repeatability.flatten(1).float()
    columns, rows = indices % width, torch.div(indices, width, rounding_mode="floor")

    def value(index: torch.Tensor) -> torch.Tensor:
        return torch.gather(flat, 1, index.clamp(0, height * width - 1))

    peak = value(indices)
    dx = _parabola_vertex(value(indices - 1), peak, value(indices + 1))
    dy = _parabola_vertex(value(indices - width), peak, value(indices + width))
    dx = torch.where((columns > 0) & (columns < width - 1), dx, torch.zeros_like(dx))
    dy = torch.where((rows > 0) & (rows < height - 1), dy, torch.zeros_like(dy))
    return dx, dy


def level_to_input(position: torch.Tensor, ratio: float) -> torch.Tensor:
    """Input-pixel coordinate of a level coordinate, pixel centre to pixel centre.

    A level pixel c covers input pixels [c * ratio, (c + 1) * ratio) when the level is the input
    resized by 1/ratio (as ``F.interpolate(align_corners=False)`` does): its centre is
    (c + 0.5) * ratio - 0.5. (The original maps c to c * ratio, (ratio - 1) / 2 px to the top-left.)
    """
    return (position + 0.5) * ratio - 0.5
