"""What the extraction needs of a network, and the PyTorch runner that provides it.

:func:`~r2d2_ros.extraction.extract_multiscale` owns the pyramid, NMS and top-k; a network runner
only turns one normalised pyramid level into dense maps. A plain :class:`R2D2Net` is run by
:class:`TorchRunner`; other backends (ONNX Runtime: :mod:`r2d2_ros.backends`) plug in beside it.
"""
from __future__ import annotations

from typing import Protocol

import torch

from ..device import auto_precision
from ..model.nets import R2D2Net
from .config import PRECISIONS

__all__ = ["NetworkRunner", "TorchRunner", "as_runner"]


class NetworkRunner(Protocol):
    """Runs the network on a batch of normalised images of one size.

    Attributes:
        device: where inputs must be and where the maps are returned.
        dim: descriptor channels.
    """

    device: torch.device
    dim: int

    def precision(self, requested: str) -> str:
        """The precision (fp32, fp16 or bf16) that ``requested`` (a precision or ``auto``) runs in here.

        Raises:
            ValueError: a precision this runner cannot compute.
        """
        ...

    def __call__(self, image: torch.Tensor, precision: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Dense maps of a (B, 3, h, w) batch of fp32 normalised images on :attr:`device`.

        Args:
            precision: as returned by :meth:`precision`.

        Returns:
            descriptors (B, D, h', w') in any float dtype, raw or unit-norm (the extraction normalises
            the selected ones); reliability and repeatability (B, 1, h', w') in fp32.
        """
        ...


class TorchRunner:
    """Runs an :class:`R2D2Net` in eager PyTorch: the trunk under autocast, the score heads in fp32."""

    def __init__(self, model: R2D2Net) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.dim = model.dim

    def precision(self, requested: str) -> str:
        """Resolves ``auto`` for this device (see :func:`~r2d2_ros.device.auto_precision`)."""
        return auto_precision(self.device) if requested == "auto" else requested

    def __call__(self, image: torch.Tensor, precision: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The raw trunk output (in ``precision``), reliability and repeatability."""
        dtype = PRECISIONS[precision]
        autocast = torch.autocast(image.device.type, dtype=dtype, enabled=dtype != torch.float32)
        memory_format = torch.channels_last if self.model.inference_only else torch.contiguous_format
        with autocast:
            trunk = self.model.trunk(image.contiguous(memory_format=memory_format))
        # The 1x1 heads are cheap: in fp32 they do not quantise the maps into fake NMS plateaus.
        reliability, repeatability = self.model.score_maps(trunk.float())
        return trunk, reliability, repeatability


def as_runner(network: R2D2Net | NetworkRunner) -> NetworkRunner:
    """``network`` itself when it is a runner, else a :class:`TorchRunner` of it."""
    return TorchRunner(network) if isinstance(network, R2D2Net) else network
