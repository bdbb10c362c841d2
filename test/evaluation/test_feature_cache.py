"""The evaluation's feature cache: one extraction per method and image content (no ROS)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import torch

from r2d2_ros.evaluation.cache import FeatureCache
from r2d2_ros.features import Features, load_r2d2


class _CountingMethod:
    """A method whose features are the image's brightest pixels, counting its extractions."""

    def __init__(self, key: str) -> None:
        self.name, self.key, self.images = key, key, []

    def extract(self, image: np.ndarray) -> Features:
        self.images.append(image)
        grey = image[:, :, 0].astype(np.float32)
        order = np.argsort(-grey.ravel(), kind="stable")[:4]
        y, x = np.divmod(order, image.shape[1])
        keypoints = torch.tensor(np.column_stack([x, y, np.full(4, 8.0)]), dtype=torch.float32)
        descriptors = torch.nn.functional.normalize(torch.arange(12, dtype=torch.float32).reshape(4, 3) + 1, dim=1)
        return Features(keypoints, descriptors, torch.tensor([0.9, 0.7, 0.5, 0.3]), (image.shape[1], image.shape[0]))


def _image(path: Path, seed: int) -> Path:
    image = np.random.default_rng(seed).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    cv2.imwrite(str(path), image)
    return path


def test_features_are_extracted_once_per_method_and_image_content(tmp_path: Path) -> None:
    first, second = _image(tmp_path / "a.png", 0), _image(tmp_path / "b.png", 1)
    copy = tmp_path / "copy.png"
    copy.write_bytes(first.read_bytes())
    cache, method, other = FeatureCache(tmp_path / "cache"), _CountingMethod("m1"), _CountingMethod("m2")

    extracted = cache.features(method, first)
    assert (cache.hits, cache.misses) == (0, 1) and len(method.images) == 1
    np.testing.assert_array_equal(method.images[0], cv2.imread(str(first))[:, :, ::-1])  # given RGB, as read_rgb reads
    stored = tmp_path / "cache" / "m1" / f"{hashlib.sha256(first.read_bytes()).hexdigest()[:20]}.r2d2"
    assert stored.is_file() and sorted(p.name for p in stored.parent.iterdir()) == [stored.name]  # no temporary left

    again = cache.features(method, copy)  # the same bytes under another name: a hit
    assert (cache.hits, cache.misses) == (1, 1) and len(method.images) == 1
    for returned in (extracted, again):  # a miss returns what a later hit will: the stored file's features
        reference = load_r2d2(stored)
        assert torch.equal(returned.keypoints, reference.keypoints) and torch.equal(returned.scores, reference.scores)
        assert torch.equal(returned.descriptors, reference.descriptors) and returned.image_size == (16, 12)

    cache.features(method, second)
    cache.features(other, first)  # another method's key: its own folder
    assert (cache.hits, cache.misses) == (1, 3) and len(method.images) == 2 and len(other.images) == 1
    assert len(list((tmp_path / "cache" / "m1").glob("*.r2d2"))) == 2
    assert len(list((tmp_path / "cache" / "m2").glob("*.r2d2"))) == 1
    reopened = FeatureCache(tmp_path / "cache")  # a rerun of the evaluation only reads
    reopened.features(method, second)
    reopened.features(other, copy)
    assert (reopened.hits, reopened.misses) == (2, 0) and len(method.images) == 2 and len(other.images) == 1
