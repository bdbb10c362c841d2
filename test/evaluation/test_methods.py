"""Feature methods of the evaluation: OpenCV baselines as unit float descriptors, R2D2 checkpoints and their
cache keys, and the method names the command line takes (no ROS; a small random network)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros.backends import Backend
from r2d2_ros.evaluation import methods
from r2d2_ros.evaluation.methods import BASELINES, OpenCVMethod, R2D2Method, _to_features, make_method
from r2d2_ros.extraction import ExtractionConfig

CPU = torch.device("cpu")


def _keypoints(responses: list[float]) -> list[cv2.KeyPoint]:
    return [cv2.KeyPoint(float(10 * i), float(i), 4.0 + i, -1, response) for i, response in enumerate(responses)]


def test_float_descriptors_kept_by_response_and_made_unit() -> None:
    descriptors = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0], [6.0, 8.0]], np.float32)
    features = _to_features(_keypoints([0.2, 0.9, 0.5, 0.9]), descriptors, (64, 48), binary=False, root=False, top_k=3)
    # By response, ties in their first order: keypoints 1 and 3 (0.9), then 2 (0.5); 0 is cut by top_k.
    np.testing.assert_array_equal(features.keypoints.numpy(), [[10, 1, 5], [30, 3, 7], [20, 2, 6]])
    np.testing.assert_allclose(features.descriptors.numpy(), [[1, 0], [0.6, 0.8], [0, 1]], rtol=1e-6)
    np.testing.assert_array_equal(features.scores.numpy(), np.float32([0.9, 0.9, 0.5]))
    assert features.image_size == (64, 48)


def test_rootsift_is_the_square_root_of_the_l1_normalised_descriptor() -> None:
    descriptors = np.array([[1.0, 3.0], [0.0, 0.0]], np.float32)
    features = _to_features(_keypoints([0.9, 0.1]), descriptors, (8, 8), binary=False, root=True, top_k=5)
    np.testing.assert_allclose(features.descriptors[0].numpy(), np.sqrt([0.25, 0.75]), rtol=1e-6)
    np.testing.assert_array_equal(features.descriptors[1].numpy(), [0, 0])  # an all-zero descriptor stays zero


def test_binary_descriptors_become_unit_plus_minus_one_vectors() -> None:
    descriptors = np.array([[0b10100000], [0b11111111]], np.uint8)
    features = _to_features(_keypoints([0.1, 0.9]), descriptors, (8, 8), binary=True, root=False, top_k=5)
    np.testing.assert_allclose(features.descriptors.numpy() * np.sqrt(8),
                               [[1] * 8, [1, -1, 1, -1, -1, -1, -1, -1]], rtol=1e-6)


def test_no_keypoints_or_no_descriptors_are_empty_features() -> None:
    for keypoints, descriptors in (([], np.zeros((0, 32), np.uint8)), (_keypoints([0.5]), None)):
        features = _to_features(keypoints, descriptors, (8, 6), binary=True, root=False, top_k=5)
        assert features.keypoints.shape == (0, 3) and features.descriptors.shape == (0, 128)
        assert len(features.scores) == 0 and features.image_size == (8, 6)


def test_rootsift_is_sift_square_rooted(textured_image: np.ndarray) -> None:
    """The same keypoints as SIFT; each descriptor the square root of SIFT's L1-normalised one (a unit vector)."""
    sift = OpenCVMethod("sift", 60).extract(textured_image)
    rootsift = OpenCVMethod("rootsift", 60).extract(textured_image)
    assert torch.equal(sift.keypoints, rootsift.keypoints)
    l1 = sift.descriptors / sift.descriptors.sum(dim=1, keepdim=True)
    np.testing.assert_allclose(rootsift.descriptors.numpy(), l1.sqrt().numpy(), atol=1e-6)
    assert OpenCVMethod("orb").top_k == ExtractionConfig().top_k  # R2D2's default, when none is given


@pytest.mark.parametrize("name, dimension", [("sift", 128), ("rootsift", 128), ("orb", 256), ("akaze", 488)])
def test_opencv_baselines_on_a_textured_image(textured_image: np.ndarray, name: str, dimension: int) -> None:
    method = OpenCVMethod(name, top_k=40)
    assert method.key == f"opencv{cv2.__version__}-{name}-40"
    features = method.extract(textured_image)
    assert 0 < len(features.keypoints) <= 40 and features.descriptors.shape[1] == dimension
    np.testing.assert_allclose(features.descriptors.norm(dim=1).numpy(), 1, rtol=1e-5)
    assert (features.scores[:-1] >= features.scores[1:]).all() and features.image_size == (160, 120)


def test_opencv_detectors_keep_the_strongest(textured_image: np.ndarray) -> None:
    """SIFT and ORB are asked for top_k features; AKAZE, at a low threshold, is cut to top_k by response."""
    assert OpenCVMethod("sift", 7)._detector().getNFeatures() == 7
    assert OpenCVMethod("rootsift", 9)._detector().getNFeatures() == 9
    assert OpenCVMethod("orb", 11)._detector().getMaxFeatures() == 11
    assert OpenCVMethod("akaze")._detector().getThreshold() == pytest.approx(1e-4)
    grey = cv2.cvtColor(textured_image, cv2.COLOR_RGB2GRAY)
    everything = cv2.AKAZE_create(threshold=1e-4).detect(grey)
    strongest = sorted(k.response for k in everything)[::-1][:5]
    np.testing.assert_allclose(OpenCVMethod("akaze", 5).extract(textured_image).scores.numpy(), strongest, rtol=1e-6)


def test_r2d2_method_key_names_the_checkpoint_and_its_settings(random_checkpoint: Path) -> None:
    config = ExtractionConfig(min_size=0, max_size=96, top_k=50)
    method = R2D2Method(random_checkpoint, config, CPU)
    digest = hashlib.sha256(random_checkpoint.read_bytes()).hexdigest()[:12]
    settings = hashlib.sha256(repr(config).encode()).hexdigest()[:8]
    assert method.name == random_checkpoint.stem
    assert method.key == f"r2d2-{random_checkpoint.stem}-{digest}-{settings}"
    assert R2D2Method(random_checkpoint, config, CPU, name="mine").key.startswith(f"r2d2-mine-{digest}-")
    twin = method.with_top_k(10)
    assert twin.network is method.network and twin.config == config.replace(top_k=10) and method.config == config
    assert twin.key != method.key and twin.name == method.name


def test_r2d2_method_extracts_on_the_cpu(random_checkpoint: Path, textured_image: np.ndarray) -> None:
    method = R2D2Method(random_checkpoint, ExtractionConfig(min_size=0, max_size=96, top_k=20), CPU)
    features = method.extract(textured_image)
    assert len(features.keypoints) <= 20 and features.keypoints.device == CPU and features.image_size == (160, 120)


def test_onnxruntime_features_are_cached_apart(random_checkpoint: Path) -> None:
    pytest.importorskip("onnxruntime", reason="backend onnxruntime needs ONNX Runtime")
    pytest.importorskip("onnx", reason="the export needs onnx")
    config = ExtractionConfig(min_size=0, max_size=96, top_k=50)
    torch_key = R2D2Method(random_checkpoint, config, CPU).key
    onnx = R2D2Method(random_checkpoint, config, CPU, backend=Backend("onnxruntime"))
    assert onnx.key == f"{torch_key}-onnxruntime-cpu-fp32"


def test_features_of_onnxruntime_on_a_gpu_are_cached_per_gpu(random_checkpoint: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Another GPU's engine computes other numerics: its name ends the key (a stand-in GPU here)."""
    pytest.importorskip("onnxruntime", reason="backend onnxruntime needs ONNX Runtime")
    pytest.importorskip("onnx", reason="the export needs onnx")
    config = ExtractionConfig(min_size=0, max_size=96)
    method = R2D2Method(random_checkpoint, config, CPU, backend=Backend("onnxruntime"))
    cpu_key = method.key
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "Orin")
    method._device = torch.device("cuda")  # as if loaded there
    assert method.key == f"{cpu_key}-Orin"


def test_the_backend_settings_reach_the_runner(random_checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    seen = []
    monkeypatch.setattr(methods, "make_runner", lambda *arguments: seen.append(arguments[1:]) or "runner")
    config = ExtractionConfig(min_size=0, max_size=96, precision="fp32")
    R2D2Method(random_checkpoint, config, CPU, backend=Backend("onnxruntime", "cpu", tmp_path))
    assert seen == [("onnxruntime", "fp32", "cpu", tmp_path, 96)]


def test_method_names(random_checkpoint: Path) -> None:
    config = ExtractionConfig(min_size=0, max_size=96, top_k=321)
    assert BASELINES == ("sift", "rootsift", "orb", "akaze")
    for name in BASELINES:
        assert make_method(name, config, CPU) == OpenCVMethod(name, 321)
    assert make_method(str(random_checkpoint), config, CPU).name == random_checkpoint.stem
    assert make_method(f"mine={random_checkpoint}", config, CPU).name == "mine"
    with pytest.raises(ValueError, match=r"unknown method 'surf': not one of sift, rootsift, orb, akaze and not a "
                                         r"checkpoint file"):
        make_method("surf", config, CPU)
