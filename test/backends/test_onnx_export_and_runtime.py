"""ONNX export (every architecture) and the onnxruntime backend against PyTorch fp32 on the CPU."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="backend onnxruntime needs it: pip install onnxruntime")
import onnx  # noqa: E402  (installed with onnxruntime by requirements.txt)

from r2d2_ros import ExtractionConfig, extract_multiscale, load_model, prepare_for_inference  # noqa: E402
from r2d2_ros.backends import OnnxRuntimeRunner, make_runner  # noqa: E402
from r2d2_ros.cli.export import main as export_main  # noqa: E402
from r2d2_ros.extraction import image_to_tensor, pyramid_images  # noqa: E402
from r2d2_ros.image_io import read_rgb  # noqa: E402
from r2d2_ros.model import save_checkpoint  # noqa: E402
from r2d2_ros.model.nets import Fast_Quad_L2Net_ConfCFS, Quad_L2Net_ConfCFS, R2D2Net  # noqa: E402
from r2d2_ros.weights import default_model_path  # noqa: E402

from ..parity import assert_same_detections, pyramid_maps  # noqa: E402

CPU = torch.device("cpu")
# Every detection (no top-k cut), on the default pyramid: a quarter-size reference image has one to two levels.
FP32 = ExtractionConfig(precision="fp32", top_k=100_000)


def _with_batch_norm_statistics(model: R2D2Net) -> R2D2Net:
    """Random running statistics, so that folding them into the convolutions is exercised."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model.eval()


@torch.inference_mode()
def assert_maps_match(model: R2D2Net, runner: OnnxRuntimeRunner, image: torch.Tensor, atol: float = 1e-4) -> None:
    """ONNX Runtime's descriptors, reliability and repeatability are PyTorch fp32's (unfolded) to ``atol``."""
    expected = model(image)
    descriptors, reliability, repeatability = runner(image, "fp32")
    for name, actual, reference in (("descriptors", descriptors, expected.descriptors),
                                    ("reliability", reliability, expected.reliability),
                                    ("repeatability", repeatability, expected.repeatability)):
        assert actual.dtype == torch.float32 and actual.shape == reference.shape, name
        torch.testing.assert_close(actual, reference, atol=atol, rtol=0, msg=name)


@pytest.mark.parametrize("architecture", [Quad_L2Net_ConfCFS, Fast_Quad_L2Net_ConfCFS,
                                          lambda: Quad_L2Net_ConfCFS(mchan=6)], ids=["N16", "Fast", "N8_big"])
def test_every_architecture_exports_with_dynamic_sizes(architecture, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _with_batch_norm_statistics(architecture())
    checkpoint, graph = tmp_path / "net.pt", tmp_path / "net.onnx"
    save_checkpoint(checkpoint, model)
    assert export_main([str(checkpoint), "--onnx", str(graph)]) == 0
    properties = {p.key: p.value for p in onnx.load(str(graph)).metadata_props}
    assert properties == {"r2d2_ros.arch": model.arch, "r2d2_ros.precision": "fp32"}
    runner = OnnxRuntimeRunner(graph, CPU, "cpu", "fp32")
    assert runner.dim == model.dim
    # One session, sizes other than the traced 64x64, odd ones included (the Fast net's pooling).
    for height, width in ((48, 80), (37, 51)):
        assert_maps_match(model, runner, torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(1)))


def test_bundled_model_exports_in_fp16_with_fp32_heads(tmp_path: Path) -> None:
    model = load_model(default_model_path())
    graph = tmp_path / "fp16.onnx"
    assert export_main(["--onnx", str(graph), "--precision", "fp16"]) == 0
    weights = onnx.load(str(graph)).graph.initializer
    assert {onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT} == {w.data_type for w in weights}
    runner = OnnxRuntimeRunner(graph, CPU, "cpu", "fp32")
    # fp16 trunk: close to fp32, not equal; the outputs are still fp32 tensors.
    assert_maps_match(model, runner, image_to_tensor(np.random.default_rng(0).integers(0, 256, (40, 56, 3), np.uint8)),
                      atol=2e-2)


def test_bad_checkpoint_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        export_main([str(tmp_path / "broken.pt"), "--onnx", str(tmp_path / "out.onnx")])
    assert exit_info.value.code == 2 and "broken.pt" in capsys.readouterr().err
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["boat", "peppers", "test", "brooklyn"])
def test_onnxruntime_matches_pytorch_fp32_on_reference_images(name: str, reference: Path) -> None:
    """Raw maps of every pyramid level to 1e-4, and the same detections (up to ties) before top-k."""
    model = load_model(reference / "models" / "r2d2_WASF_N16.pt")
    image = read_rgb(reference / "images" / f"{name}.png")
    image = cv2.resize(image, (image.shape[1] // 4, image.shape[0] // 4), interpolation=cv2.INTER_AREA)
    runner = make_runner(model, "onnxruntime", "auto")
    assert runner.precision("auto") == "fp32"
    for _, level_image in pyramid_images(image_to_tensor(image), FP32):
        assert_maps_match(model, runner, level_image)
    expected = extract_multiscale(prepare_for_inference(model), image, FP32).numpy()
    actual = extract_multiscale(runner, image, FP32).numpy()
    assert_same_detections(expected, actual, pyramid_maps(model, image, FP32), FP32)
