from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros.cli.extract import collect_images, main
from r2d2_ros.features import load_r2d2
from r2d2_ros.model import save_checkpoint
from r2d2_ros.model.nets import Quad_L2Net_ConfCFS


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "net.pt"
    save_checkpoint(path, Quad_L2Net_ConfCFS())
    return path


def test_writes_original_format_for_folders_and_lists(tmp_path: Path, textured_image: np.ndarray, checkpoint: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), textured_image)
    cv2.imwrite(str(images / "b.jpg"), textured_image[:, :, 0])
    (tmp_path / "list.txt").write_text("# a list file\nimages/a.png\n")
    out = tmp_path / "out"
    args = [str(images), str(tmp_path / "list.txt"), "--model", str(checkpoint), "--output-dir", str(out),
            "--device", "cpu", "--top-k", "50", "--min-size", "0", "--reliability-threshold", "0",
            "--repeatability-threshold", "0"]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png.r2d2", "b.jpg.r2d2"]
    with np.load(out / "a.png.r2d2") as data:
        assert set(data.files) == {"imsize", "keypoints", "descriptors", "scores"}
        assert tuple(data["imsize"]) == (160, 120)
        assert data["keypoints"].shape == (50, 3) and data["descriptors"].shape == (50, 128)
        assert data["keypoints"].dtype == data["descriptors"].dtype == data["scores"].dtype == np.float32
        assert np.all(np.diff(data["scores"]) >= 0), "the original format is sorted best last"
    features = load_r2d2(out / "a.png.r2d2")
    assert np.all(np.diff(features.scores.numpy()) <= 0)


def test_corrupt_image_is_skipped_and_reported(tmp_path: Path, textured_image: np.ndarray, checkpoint: Path) -> None:
    cv2.imwrite(str(tmp_path / "good.png"), textured_image)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    assert main([str(tmp_path), "--model", str(checkpoint), "--device", "cpu", "--min-size", "0"]) == 1
    assert (tmp_path / "good.png.r2d2").exists() and not (tmp_path / "broken.png.r2d2").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--top-k", "0"], "top_k"), (["--device", "tpu"], "device"), (["--model", "missing.pt"], "no such file")],
)
def test_bad_options_exit_with_usage_error(
    tmp_path: Path, textured_image: np.ndarray, checkpoint: Path, extra: list[str], message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), textured_image)
    args = [str(tmp_path / "a.png"), "--model", str(checkpoint), *extra]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        collect_images([str(tmp_path / "nothing")])


def test_backend_onnxruntime_finds_the_torch_fp32_keypoints(tmp_path: Path, textured_image: np.ndarray) -> None:
    pytest.importorskip("onnxruntime", reason="backend onnxruntime needs it: pip install onnxruntime")
    from ..parity import match_keypoints

    cv2.imwrite(str(tmp_path / "a.png"), textured_image)
    # The bundled (trained) model: random weights saturate into plateaus, where ties decide. Every
    # detection (no top-k cut), on a 3-level pyramid.
    common = [str(tmp_path / "a.png"), "--device", "cpu", "--min-scale", "0.7",
              "--min-size", "0", "--top-k", "100000", "--reliability-threshold", "0.3",
              "--repeatability-threshold", "0.3"]
    results = {}
    for backend in ("torch", "onnxruntime"):
        assert main([*common, "--backend", backend, "--precision", "fp32", "--tag", backend]) == 0
        results[backend] = np.load(tmp_path / f"a.png.{backend}")["keypoints"]
    found, _ = match_keypoints(results["torch"], results["onnxruntime"])
    assert len(results["torch"]) > 100 and len(found) >= 0.99 * len(results["torch"])


def test_backend_onnxruntime_refuses_bf16(tmp_path: Path, textured_image: np.ndarray, checkpoint: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime", reason="backend onnxruntime needs it: pip install onnxruntime")
    cv2.imwrite(str(tmp_path / "a.png"), textured_image)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "a.png"), "--model", str(checkpoint), "--device", "cpu", "--backend", "onnxruntime",
              "--precision", "bf16"])
    assert exit_info.value.code == 2 and "backend torch runs bf16" in capsys.readouterr().err
