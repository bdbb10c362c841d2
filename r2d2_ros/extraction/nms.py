"""Non-maximum suppression and top-k selection, as tensor functions that stay on the device."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..utils import check_shape

__all__ = ["nms_mask", "top_k_indices"]


def nms_mask(
    repeatability: torch.Tensor,
    reliability: torch.Tensor,
    repeatability_threshold: float = 0.7,
    reliability_threshold: float = 0.7,
) -> torch.Tensor:
    """Local maxima of repeatability that pass both thresholds.

    A pixel survives when it equals the maximum of its 3x3 neighbourhood (so every pixel
    of a plateau survives), its repeatability is at least ``repeatability_threshold`` and
    its reliability at least ``reliability_threshold``.

    Args:
        repeatability: (B, 1, H, W).
        reliability: (B, 1, H, W).

    Returns:
        (B, 1, H, W) boolean mask.
    """
    check_shape(repeatability, "B 1 H W")
    check_shape(reliability, "B 1 H W")
    local_max = F.max_pool2d(repeatability, kernel_size=3, stride=1, padding=1)
    return (repeatability == local_max) & (repeatability >= repeatability_threshold) & (
        reliability >= reliability_threshold
    )


def top_k_indices(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` highest scores, best first (all of them when there are fewer).

    Args:
        scores: (N,), or (B, N) for one selection per row.

    Returns:
        (min(k, N),) or (B, min(k, N)) int64.
    """
    if scores.ndim not in (1, 2):
        raise ValueError(f"expected a tensor of shape (N) or (B, N), got {tuple(scores.shape)}")
    k = min(k, scores.shape[-1])
    return torch.topk(scores, k, dim=-1, largest=True, sorted=True).indices
