"""Several cameras' images in one batch get the features each would get alone."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from r2d2_ros.extraction import (ExtractionConfig, TorchRunner, extract_multiscale, extract_multiscale_batch, image_to_tensor,
                                 pyramid_levels)
from r2d2_ros.model import prepare_for_inference
from r2d2_ros.model.nets import Quad_L2Net_ConfCFS

from ..conftest import rectangles_image
from ..parity import assert_same_detections, pyramid_maps

# A small multi-scale pyramid (three used levels of a 96x128 image) at the real thresholds'
# neighbourhood: low enough that a random network detects hundreds of points.
CONFIG = ExtractionConfig(precision="fp32", min_size=60, max_size=128, reliability_threshold=0.3,
                          repeatability_threshold=0.3, top_k=100_000)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return prepare_for_inference(Quad_L2Net_ConfCFS().eval())


def test_each_image_of_a_batch_gets_its_own_features(model: torch.nn.Module) -> None:
    # Different scenes and sizes: a mix-up between cameras or a shared top-k would show.
    images = [rectangles_image(96, 128, 40, seed=1), rectangles_image(96, 128, 40, seed=2),
              rectangles_image(80, 112, 30, seed=3)]
    batched = extract_multiscale_batch(model, images, CONFIG, return_maps=True)
    assert [f.image_size for f in batched] == [(128, 96), (128, 96), (112, 80)]
    for image, found in zip(images, batched):
        alone = extract_multiscale(model, image, CONFIG, return_maps=True)
        assert len(alone) > 100
        # Batched convolutions may round differently: detections agree up to near-ties.
        assert_same_detections(alone.numpy(), found.numpy(), pyramid_maps(model, image, CONFIG), CONFIG)
        torch.testing.assert_close(found.maps.repeatability, alone.maps.repeatability, atol=1e-4, rtol=0)
    first, second = (set(map(tuple, f.keypoints[:, :2].tolist())) for f in batched[:2])
    assert len(first ^ second) > 0.5 * len(first), "two different scenes give different keypoints"


def test_top_k_is_per_image(model: torch.nn.Module) -> None:
    images = [rectangles_image(96, 128, 60, seed=4), np.zeros((96, 128, 3), np.uint8)]
    config = CONFIG.replace(top_k=50, reliability_threshold=0.0, repeatability_threshold=0.0)
    busy, flat = extract_multiscale_batch(model, images, config)
    assert len(busy) == 50 and len(flat) == 50
    assert busy.maps is None and flat.maps is None, "maps only when asked for"
    assert (busy.scores[:-1] >= busy.scores[1:]).all(), "best first within each image"
    norms = busy.descriptors.float().norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-3, rtol=0)


class _CountingRunner(TorchRunner):
    """Remembers the batch size of every network call."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__(model)
        self.batch_sizes: list[int] = []

    def __call__(self, image: torch.Tensor, precision: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.batch_sizes.append(image.shape[0])
        return super().__call__(image, precision)


def test_one_network_pass_per_level_and_size(model: torch.nn.Module) -> None:
    images = [rectangles_image(96, 128, 40, seed=s) for s in range(3)] + [rectangles_image(80, 112, 30)]
    runner = _CountingRunner(model)
    extract_multiscale_batch(runner, images, CONFIG)
    levels_96, levels_80 = (sum(level.used for level in pyramid_levels(h, w, CONFIG)) for h, w in ((96, 128), (80, 112)))
    assert runner.batch_sizes == [3] * levels_96 + [1] * levels_80


def test_an_empty_pyramid_gives_empty_features_for_every_image(model: torch.nn.Module) -> None:
    config = CONFIG.replace(max_scale=0.001)
    found = extract_multiscale_batch(model, [rectangles_image(96, 128, 10), rectangles_image(96, 128, 10)], config)
    assert [len(f) for f in found] == [0, 0]


def test_a_normalised_tensor_is_taken_as_is(model: torch.nn.Module) -> None:
    image = rectangles_image(96, 128, 40, seed=5)
    from_pixels = extract_multiscale(model, image, CONFIG)
    from_tensor = extract_multiscale(model, image_to_tensor(image), CONFIG)
    torch.testing.assert_close(from_tensor.keypoints, from_pixels.keypoints)
    assert from_pixels.maps is None, "maps only when asked for"


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 4, 32, 32), (1, 1, 32, 32)])
def test_a_tensor_that_is_not_one_normalised_image_is_refused(model: torch.nn.Module, shape: tuple) -> None:
    with pytest.raises(ValueError, match=r"must be \(1, 3, H, W\)"):
        extract_multiscale(model, torch.zeros(shape), CONFIG)
