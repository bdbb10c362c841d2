"""ONNX export of an R2D2 network, for ONNX Runtime and TensorRT.

The graph is the network as :meth:`R2D2Net.forward` defines it, with batch norm folded into the
convolutions: input ``image`` (B, 3, H, W), ImageNet-normalised fp32; outputs ``descriptors``
(B, D, H', W', unit L2 norm), ``reliability`` and ``repeatability`` (B, 1, H', W'), all fp32.
Batch, height and width are dynamic. With fp16 weights the trunk computes in fp16 while the
1x1 score heads stay in fp32, as in the PyTorch extraction (fp16 heads quantise the maps into
fake NMS plateaus).
"""
from __future__ import annotations

import io
import warnings
from types import ModuleType

import torch
from torch import nn

from .extraction.config import PRECISIONS
from .model.nets import R2D2Net, normalize_descriptors, prepare_for_inference

__all__ = ["EXPORT_PRECISIONS", "INPUT_NAME", "OUTPUT_NAMES", "export_onnx"]

EXPORT_PRECISIONS = ("fp32", "fp16")
INPUT_NAME = "image"
OUTPUT_NAMES = ("descriptors", "reliability", "repeatability")
# Opset 17 is read by every ONNX Runtime since 1.11 and by TensorRT 8.5 and later (JetPack 5).
_OPSET = 17
# Large enough for the Fast net's pooling and every dilation; the axes are dynamic anyway.
_TRACE_SHAPE = (1, 3, 64, 64)


def _import_onnx() -> ModuleType:
    try:
        import onnx
    except ImportError as error:
        raise ImportError("ONNX export needs the onnx package: pip install onnx") from error
    return onnx


class _ExportedNetwork(nn.Module):
    """The traced function: trunk in the weights' precision, heads and outputs in fp32."""

    def __init__(self, model: R2D2Net, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        trunk = self.model.trunk(image.to(self.dtype)).float()
        reliability, repeatability = self.model.score_maps(trunk)
        return normalize_descriptors(trunk), reliability, repeatability


def export_onnx(model: R2D2Net, precision: str = "fp32") -> bytes:
    """The serialised, checked ONNX model of ``model`` (any architecture, on any device).

    Args:
        precision: of the trunk's weights and arithmetic, ``fp32`` or ``fp16``.

    Raises:
        ValueError: an unsupported precision.
        ImportError: the onnx package is missing (the message says what to install).
    """
    onnx = _import_onnx()
    if precision not in EXPORT_PRECISIONS:
        raise ValueError(f"ONNX export precision must be one of {', '.join(EXPORT_PRECISIONS)}, got {precision!r}")
    network = prepare_for_inference(model).to("cpu", memory_format=torch.contiguous_format)
    network.ops.to(PRECISIONS[precision])
    buffer = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which cannot yet keep the
        # spatial axes of dilated convolutions dynamic; it is still the one TensorRT parsers expect.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(_ExportedNetwork(network, PRECISIONS[precision]), (torch.zeros(_TRACE_SHAPE),), buffer,
                          input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), opset_version=_OPSET,
                          dynamic_axes={name: axes for name in (INPUT_NAME, *OUTPUT_NAMES)}, dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, {"r2d2_ros.arch": model.arch, "r2d2_ros.precision": precision})
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
