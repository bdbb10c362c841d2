"""Detection, top-k and descriptors checked against the network's own maps, without ../shared.

A small random network on a synthetic, non-square image: every keypoint must be a 3x3 maximum of
its level's repeatability that passes both thresholds, carry that pixel's reliability x
repeatability as its score and that pixel's unit descriptor, and the best ones must be kept.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from r2d2_ros.extraction import ExtractionConfig, extract_multiscale, image_to_tensor, nms_mask, top_k_indices
from r2d2_ros.model.nets import Quad_L2Net_ConfCFS

from ..parity import pyramid_maps

HEIGHT, WIDTH = 72, 104  # not square, so that swapped x and y land elsewhere


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = Quad_L2Net_ConfCFS(mchan=1, dim=16).eval()  # 8 channels: fast, and every head is real
    with torch.no_grad():  # random heads give near-flat maps; stronger ones give peaks of some height
        net.clf.weight.mul_(100)
        net.sal.weight.mul_(100)
    return net


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for _ in range(25):
        y, x = rng.integers(0, HEIGHT - 8), rng.integers(0, WIDTH - 8)
        image[y : y + rng.integers(3, 14), x : x + rng.integers(3, 14)] = rng.integers(0, 256, 3)
    return image


def _config(**changes: object) -> ExtractionConfig:
    # Thresholds at the middle of this random network's maps, so that both decide something.
    base = dict(min_size=0, max_size=4096, precision="fp32", reliability_threshold=0.7,
                repeatability_threshold=0.45, top_k=100_000)
    return ExtractionConfig(**{**base, **changes})


class TestNmsMask:
    def test_two_peaks_two_pixels_apart_are_both_kept(self) -> None:
        repeatability = torch.zeros(1, 1, 7, 9)
        repeatability[0, 0, 3, 2] = 0.9
        repeatability[0, 0, 3, 4] = 0.8  # outside the 3x3 window of the higher peak, inside its 5x5
        repeatability[0, 0, 0, 8] = 0.75  # a corner pixel: the window stops at the border
        mask = nms_mask(repeatability, torch.ones_like(repeatability), 0.7, 0.7)
        assert mask[0, 0].nonzero().tolist() == [[0, 8], [3, 2], [3, 4]]

    def test_a_diagonal_neighbour_suppresses(self) -> None:
        repeatability = torch.zeros(1, 1, 5, 5)
        repeatability[0, 0, 2, 2] = 0.8
        repeatability[0, 0, 3, 3] = 0.9
        mask = nms_mask(repeatability, torch.ones_like(repeatability), 0.7, 0.7)
        assert mask[0, 0].nonzero().tolist() == [[3, 3]]

    def test_values_equal_to_the_thresholds_pass(self) -> None:
        repeatability = torch.zeros(1, 1, 5, 5)
        repeatability[0, 0, 1, 1] = 0.5
        repeatability[0, 0, 3, 3] = 0.6
        reliability = torch.full_like(repeatability, 0.25)
        reliability[0, 0, 3, 3] = 0.2
        mask = nms_mask(repeatability, reliability, repeatability_threshold=0.5, reliability_threshold=0.25)
        assert mask[0, 0].nonzero().tolist() == [[1, 1]]

    def test_default_thresholds_are_the_original_0_7(self) -> None:
        repeatability = torch.zeros(1, 1, 5, 7)
        repeatability[0, 0, 2, 1], repeatability[0, 0, 2, 5] = 0.7, 0.69
        reliability = torch.full_like(repeatability, 0.7)
        reliability[0, 0, 2, 1] = 0.7
        assert nms_mask(repeatability, reliability)[0, 0].nonzero().tolist() == [[2, 1]]
        assert not nms_mask(repeatability, reliability - 0.01).any()

    def test_a_reliability_map_of_the_wrong_shape_is_named_in_the_error(self) -> None:
        with pytest.raises(ValueError, match=r"\(B, 1, H, W\), got \(4, 4\)"):
            nms_mask(torch.zeros(1, 1, 4, 4), torch.zeros(4, 4))

    def test_reliability_does_not_decide_the_maximum(self) -> None:
        repeatability = torch.zeros(1, 1, 3, 4)
        repeatability[0, 0, 1, 1], repeatability[0, 0, 1, 2] = 0.8, 0.9
        reliability = torch.ones_like(repeatability)
        reliability[0, 0, 1, 2] = 0.1  # the maximum is unreliable: its neighbour is still not a maximum
        assert not nms_mask(repeatability, reliability, 0.7, 0.7).any()


class TestTopK:
    def test_the_best_k_in_order_whatever_their_positions(self) -> None:
        scores = torch.tensor([0.3, 0.95, 0.1, 0.7, 0.95 - 1e-6, 0.2])
        assert top_k_indices(scores, 3).tolist() == [1, 4, 3]
        assert top_k_indices(torch.tensor([float("-inf"), 0.5]), 2).tolist() == [1, 0]

    def test_one_selection_per_row_of_a_batch(self) -> None:
        scores = torch.tensor([[0.3, 0.95, 0.1, 0.7], [0.9, 0.1, 0.8, 0.2]])
        assert top_k_indices(scores, 2).tolist() == [[1, 3], [0, 2]]

    def test_scores_must_be_one_or_two_dimensional(self) -> None:
        with pytest.raises(ValueError, match=r"\(B, N\), got \(2, 3, 4\)"):
            top_k_indices(torch.zeros(2, 3, 4), 1)


def _level_pixel(level, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.rint(keypoints[:, 0] * level.to_level[0]).astype(int),
            np.rint(keypoints[:, 1] * level.to_level[1]).astype(int))


@torch.inference_mode()
def _level_descriptors(model: torch.nn.Module, image: np.ndarray, config: ExtractionConfig) -> list[torch.Tensor]:
    """The unit descriptor maps (D, h, w) of each used level, from the same pyramid."""
    from r2d2_ros.extraction import pyramid_images

    return [model(level_image).descriptors[0] for _, level_image in pyramid_images(image_to_tensor(image), config)]


class TestExtraction:
    def test_every_keypoint_is_a_detection_with_its_own_score_and_descriptor(self, model, image) -> None:
        config = _config(min_scale=0.5)  # several pyramid levels
        features = extract_multiscale(model, image, config)
        levels = pyramid_maps(model, image, config)
        descriptor_maps = _level_descriptors(model, image, config)
        assert len(levels) >= 3 and features.image_size == (WIDTH, HEIGHT)
        keypoints, scores = features.keypoints.numpy(), features.scores.numpy()
        descriptors = features.descriptors.numpy()
        found_on = set()
        for level, descriptor_map in zip(levels, descriptor_maps):
            on_level = np.abs(keypoints[:, 2] - level.patch_diameter) < 1e-3
            found_on.add(bool(on_level.any()))
            xs, ys = _level_pixel(level, keypoints[on_level])
            mask = nms_mask(torch.from_numpy(level.repeatability)[None, None],
                            torch.from_numpy(level.reliability)[None, None],
                            config.repeatability_threshold, config.reliability_threshold)[0, 0].numpy()
            assert mask[ys, xs].all(), "a keypoint that is not a detection of its level"
            assert on_level.sum() == mask.sum(), "every detection of the level is kept (top_k is large)"
            np.testing.assert_allclose(scores[on_level], level.reliability[ys, xs] * level.repeatability[ys, xs],
                                       rtol=1e-5)
            np.testing.assert_allclose(descriptors[on_level], descriptor_map[:, ys, xs].t().numpy(), atol=1e-5)
        assert found_on == {True}, "every level contributes"
        assert len(features) > 50

    def test_descriptors_are_unit_vectors_and_scores_best_first(self, model, image) -> None:
        features = extract_multiscale(model, image, _config(min_scale=0.5))
        np.testing.assert_allclose(np.linalg.norm(features.descriptors.numpy(), axis=1), 1.0, atol=1e-5)
        scores = features.scores.numpy()
        assert np.all(np.diff(scores) <= 0) and scores[-1] < scores[0]

    def test_top_k_keeps_the_best_detections_of_all_levels(self, model, image) -> None:
        every = extract_multiscale(model, image, _config(min_scale=0.5))
        best = extract_multiscale(model, image, _config(min_scale=0.5, top_k=20))
        assert len(best) == 20 < len(every)
        np.testing.assert_array_equal(best.scores.numpy(), every.scores.numpy()[:20])
        np.testing.assert_array_equal(best.keypoints.numpy(), every.keypoints.numpy()[:20])
        np.testing.assert_array_equal(best.descriptors.numpy(), every.descriptors.numpy()[:20])

    def test_a_single_scale_keypoint_sits_on_its_pixel(self, model, image) -> None:
        """At scale 1, (x, y) is the pixel of the map whose score the keypoint carries."""
        config = _config(min_scale=1.0)
        features = extract_multiscale(model, image, config, return_maps=True)
        maps = features.maps
        assert maps.repeatability.shape == (HEIGHT, WIDTH)
        xs, ys = features.keypoints[:, 0].long(), features.keypoints[:, 1].long()
        assert torch.equal(features.keypoints[:, :2], torch.stack([xs, ys], 1).float())
        assert set(features.keypoints[:, 2].tolist()) == {32.0}
        torch.testing.assert_close(features.scores, maps.reliability[ys, xs] * maps.repeatability[ys, xs])
