"""The exported ONNX graph as a TensorRT parser or another runtime reads it: names, dynamic axes, opset, errors."""
from __future__ import annotations

import sys

import pytest
import torch

from r2d2_ros.export import export_onnx
from r2d2_ros.model.nets import Quad_L2Net_ConfCFS

onnx = pytest.importorskip("onnx", reason="the export needs onnx: pip install onnx")


def _dims(value_info) -> list[str | int]:
    return [dim.dim_param or dim.dim_value for dim in value_info.type.tensor_type.shape.dim]


def test_the_graph_names_its_input_outputs_and_dynamic_axes_at_opset_17() -> None:
    torch.manual_seed(0)
    graph = onnx.load_from_string(export_onnx(Quad_L2Net_ConfCFS().eval()))
    assert [(opset.domain, opset.version) for opset in graph.opset_import] == [("", 17)]
    (image,) = graph.graph.input
    assert image.name == "image" and _dims(image) == ["batch", 3, "height", "width"]
    outputs = {output.name: _dims(output) for output in graph.graph.output}
    assert list(outputs) == ["descriptors", "reliability", "repeatability"]
    # The channel axes are the exporter's business (it names the descriptors' symbolically); the others are ours.
    assert all([dims[0], dims[2], dims[3]] == ["batch", "height", "width"] for dims in outputs.values())


def test_an_unknown_precision_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"^ONNX export precision must be one of fp32, fp16, got 'int8'$"):
        export_onnx(Quad_L2Net_ConfCFS().eval(), "int8")


def test_without_onnx_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail
    with pytest.raises(ImportError, match=r"^ONNX export needs the onnx package: pip install onnx$"):
        export_onnx(Quad_L2Net_ConfCFS().eval())
