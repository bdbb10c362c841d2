"""Small helpers shared by the library's tensor functions."""
from __future__ import annotations

import torch

__all__ = ["check_shape"]


def check_shape(tensor: torch.Tensor, shape: str) -> None:
    """Raises ``ValueError`` unless ``tensor`` has the shape described by ``shape``.

    ``shape`` is a space-separated list of dimensions: a name (any size) or an integer.

    Example:
        >>> check_shape(torch.zeros(2, 1, 4, 4), "B 1 H W")
    """
    dims = shape.split()
    if tensor.ndim != len(dims) or any(
        d.isdigit() and tensor.shape[i] != int(d) for i, d in enumerate(dims)
    ):
        raise ValueError(f"expected a tensor of shape ({', '.join(dims)}), got {tuple(tensor.shape)}")
