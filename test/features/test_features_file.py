"""Features and the original ``.r2d2`` npz format (ROS-free): shapes, selection, and the file both ways."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from r2d2_ros.features import DenseMaps, Features, load_r2d2, save_r2d2


def _features(count: int = 5, dimension: int = 8) -> Features:
    generator = torch.Generator().manual_seed(0)
    keypoints = torch.rand(count, 3, generator=generator) * torch.tensor([640.0, 480.0, 32.0])
    descriptors = torch.nn.functional.normalize(torch.randn(count, dimension, generator=generator), dim=1)
    return Features(keypoints, descriptors, torch.linspace(0.9, 0.1, count), (640, 480))


def test_shapes_are_checked() -> None:
    features = _features()
    assert len(features) == 5
    with pytest.raises(ValueError, match=r"keypoints must be \(N, 3\), got \(5, 2\)"):
        Features(features.keypoints[:, :2], features.descriptors, features.scores, (640, 480))
    with pytest.raises(ValueError, match="keypoints must be"):
        Features(features.keypoints[None], features.descriptors, features.scores, (640, 480))
    for descriptors, scores in ((features.descriptors[:4], features.scores), (features.descriptors[0], features.scores),
                                (features.descriptors, features.scores[:4]), (features.descriptors, features.scores[:, None])):
        with pytest.raises(ValueError, match="inconsistent shapes"):
            Features(features.keypoints, descriptors, scores, (640, 480))


def test_select_to_and_numpy_keep_everything_in_the_order_given() -> None:
    plain = _features()
    assert plain.maps is None and plain.to("cpu").maps is None and plain.select([0]).maps is None
    maps = DenseMaps(torch.rand(4, 6), torch.rand(4, 6))
    features = Features(_features().keypoints, _features().descriptors, _features().scores, (640, 480), maps)
    chosen = features.select(np.array([3, 0]))
    assert torch.equal(chosen.keypoints, features.keypoints[[3, 0]])
    assert torch.equal(chosen.descriptors, features.descriptors[[3, 0]])
    assert torch.equal(chosen.scores, features.scores[[3, 0]])
    assert chosen.image_size == (640, 480) and chosen.maps is maps
    moved = features.to("cpu")
    assert moved.maps is not None and torch.equal(moved.maps.reliability, maps.reliability)
    assert torch.equal(moved.maps.repeatability, maps.repeatability) and moved.image_size == (640, 480)
    assert torch.equal(moved.keypoints, features.keypoints) and torch.equal(moved.scores, features.scores)
    assert torch.equal(moved.descriptors, features.descriptors)
    arrays = Features(features.keypoints.double(), features.descriptors.half(), features.scores.double(),
                      (640, 480)).numpy()
    assert {name: array.dtype for name, array in arrays.items()} == {
        "keypoints": np.float32, "descriptors": np.float32, "scores": np.float32}
    np.testing.assert_array_equal(arrays["keypoints"], features.keypoints.numpy())
    np.testing.assert_allclose(arrays["descriptors"], features.descriptors.numpy(), atol=1e-3)
    np.testing.assert_array_equal(arrays["scores"], features.scores.numpy())


def test_the_file_holds_the_original_layout_best_last_and_reads_back_best_first(tmp_path: Path) -> None:
    features = _features()
    path = tmp_path / "image.png.r2d2"
    save_r2d2(path, features)
    assert not (tmp_path / "image.png.r2d2.partial").exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "image.png.r2d2"]
    with np.load(path) as data:
        assert sorted(data.files) == ["descriptors", "imsize", "keypoints", "scores"]
        assert data["imsize"].tolist() == [640, 480] and data["imsize"].dtype == np.int64
        np.testing.assert_array_equal(data["scores"], features.scores.numpy()[::-1])  # ascending, as the original
        np.testing.assert_array_equal(data["keypoints"], features.keypoints.numpy()[::-1])
        np.testing.assert_array_equal(data["descriptors"], features.descriptors.numpy()[::-1])
    loaded = load_r2d2(path)
    assert loaded.image_size == (640, 480)
    for name in ("keypoints", "descriptors", "scores"):
        assert torch.equal(getattr(loaded, name), getattr(features, name)) and getattr(loaded, name).dtype == torch.float32
    # Any npz with the keys, in any order of scores: read best first, ties in file order.
    shuffled = tmp_path / "other.npz"
    np.savez(shuffled, imsize=np.array([10, 20]), keypoints=np.arange(9.0).reshape(3, 3),
             descriptors=np.eye(3), scores=np.array([0.2, 0.7, 0.2]))
    other = load_r2d2(shuffled)
    assert other.scores.tolist() == pytest.approx([0.7, 0.2, 0.2]) and other.keypoints[:, 0].tolist() == [3.0, 0.0, 6.0]
    assert other.image_size == (10, 20)


@pytest.mark.parametrize("content", [b"not a zip", None, "missing"], ids=["garbage", "no-keys", "absent"])
def test_a_file_that_is_not_a_feature_file_is_a_clear_error(tmp_path: Path, content: bytes | None | str) -> None:
    path = tmp_path / "bad.r2d2"
    if content is None:
        with open(path, "wb") as stream:
            np.savez(stream, other=np.zeros(3))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ValueError, match="not an R2D2 feature file"):
        load_r2d2(path)
