"""Descriptor matching on the device: mutual nearest neighbours, optionally within a distance limit.

Shared by evaluation (MMA, VO), training validation and feature tracking.
"""
from __future__ import annotations

import torch

__all__ = ["mutual_nearest_neighbours"]


def mutual_nearest_neighbours(descriptors1: torch.Tensor, descriptors2: torch.Tensor,
                              max_distance: float | None = None, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """Pairs (i, j) where j is i's nearest neighbour and i is j's (by dot product of unit descriptors).

    Args:
        descriptors1: (N, D); descriptors2: (M, D), unit L2 norm.
        max_distance: keep only pairs whose Euclidean descriptor distance, sqrt(2 - 2 cos), is at
            most this (None: no limit).
        allowed: (N, M) bool, pairs that may match (a geometric constraint): the nearest neighbours are
            searched among these only (None: all pairs).

    Returns:
        (K, 2) int64 indices, on the descriptors' device.
    """
    if len(descriptors1) == 0 or len(descriptors2) == 0:
        return torch.zeros((0, 2), dtype=torch.long, device=descriptors1.device)
    similarity = descriptors1.float() @ descriptors2.float().t()
    if allowed is not None:
        similarity = similarity.masked_fill(~allowed.to(similarity.device), -torch.inf)
    best, forward = similarity.max(dim=1)
    backward = similarity.argmax(dim=0)
    ids = torch.arange(len(descriptors1), device=similarity.device)
    keep = backward[forward] == ids
    if allowed is not None:  # a row or column with no allowed pair has an arbitrary "nearest" one
        keep &= best > -torch.inf
    if max_distance is not None:
        # |a - b|^2 = 2 - 2 a.b for unit vectors: compare similarities, no square root needed.
        keep &= best >= 1 - max_distance**2 / 2
    return torch.stack([ids[keep], forward[keep]], dim=1)
