from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from r2d2_ros.extraction import ExtractionConfig, image_to_tensor, nms_mask, pyramid_images, pyramid_levels, top_k_indices


class TestPyramidLevels:
    def test_matches_the_original_on_reference_images(self, reference: Path) -> None:
        meta = json.loads((reference / "outputs" / "extraction_meta.json").read_text())
        for name, image in meta["images"].items():
            used = [lvl for lvl in pyramid_levels(image["height"], image["width"], ExtractionConfig()) if lvl.used]
            expected = [(lvl["width"], lvl["height"]) for lvl in image["pyramid"]]
            assert [(lvl.width, lvl.height) for lvl in used] == expected, name
            assert [32 / lvl.scale for lvl in used] == pytest.approx([lvl["kp_scale"] for lvl in image["pyramid"]])

    def test_brooklyn_skips_levels_above_max_size(self) -> None:
        """SPEC: brooklyn 1280x820 -> first used level 905x580, reached via 1076x690."""
        levels = pyramid_levels(820, 1280, ExtractionConfig())
        assert [(lvl.width, lvl.height, lvl.used) for lvl in levels[:3]] == [
            (1280, 820, False), (1076, 690, False), (905, 580, True)]

    def test_a_small_image_runs_at_its_own_scale_even_when_upsampling_is_allowed(self) -> None:
        used = [(lvl.scale, lvl.height, lvl.width) for lvl in pyramid_levels(100, 120, ExtractionConfig(max_scale=2.0))
                if lvl.used]
        assert used == [(1.0, 100, 120)]

    def test_each_level_is_resized_from_the_previous_one_bilinearly_without_corner_alignment(self) -> None:
        """SPEC: bilinear, align_corners False, no antialias, from the previous level's normalised tensor."""
        image = torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(0))
        config = ExtractionConfig(min_size=0, max_size=80, min_scale=0.4)
        previous = image
        for level, level_image in pyramid_images(image, config):
            if (level.height, level.width) != tuple(previous.shape[-2:]):
                previous = torch.nn.functional.interpolate(previous, (level.height, level.width), mode="bilinear",
                                                           align_corners=False)
            torch.testing.assert_close(level_image, previous, rtol=0, atol=0)

    def test_single_scale(self) -> None:
        config = ExtractionConfig(min_scale=1.0, min_size=0, max_size=10_000)
        assert [(lvl.height, lvl.width) for lvl in pyramid_levels(480, 640, config)] == [(480, 640)]

    def test_image_smaller_than_min_size_uses_no_level(self) -> None:
        assert pyramid_levels(100, 120, ExtractionConfig(min_size=256, min_scale=1.5, max_scale=2.0)) == []


class TestExtractionConfig:
    @pytest.mark.parametrize(
        "changes",
        [
            {"scale_f": 1.0},
            {"min_scale": 2.0},
            {"min_size": 2048},
            {"reliability_threshold": 1.5},
            {"top_k": 0},
            {"precision": "int8"},
            {"scale_f": float("nan")},
            {"top_k": 2.5},
        ],
    )
    def test_rejects_invalid(self, changes: dict) -> None:
        with pytest.raises(ValueError):
            ExtractionConfig(**changes)

    @pytest.mark.parametrize("changes", [{"scale_f": "1.5"}, {"reliability_threshold": True}, {"min_size": 2.0},
                                         {"max_size": -1}])
    def test_rejects_wrong_types(self, changes: dict) -> None:
        with pytest.raises(ValueError, match="must be a"):
            ExtractionConfig(**changes)

    @pytest.mark.parametrize("changes", [{"reliability_threshold": 0.0, "repeatability_threshold": 1.0},
                                         {"reliability_threshold": 1.0, "repeatability_threshold": 0.0},
                                         {"min_size": 512, "max_size": 512}, {"top_k": 1},
                                         {"precision": "fp16"}, {"precision": "bf16"}, {"precision": "fp32"}])
    def test_accepts_the_limits(self, changes: dict) -> None:
        assert ExtractionConfig(**changes).replace() == ExtractionConfig(**changes)

    def test_defaults_are_the_originals(self) -> None:
        """SPEC section 3: scale 2^0.25, min_scale 0, max_scale 1, 256..1024 px, both thresholds 0.7, top 5000."""
        config = ExtractionConfig()
        assert config.scale_f == 2**0.25 and (config.min_scale, config.max_scale) == (0.0, 1.0)
        assert (config.min_size, config.max_size, config.top_k) == (256, 1024, 5000)
        assert (config.reliability_threshold, config.repeatability_threshold) == (0.7, 0.7)

    def test_unknown_keys_raise(self) -> None:
        with pytest.raises(ValueError, match="unknown extraction settings"):
            ExtractionConfig.from_dict({"topk": 10})


class TestImageToTensor:
    def test_rgb_uint8_normalisation(self) -> None:
        """SPEC section 3: RGB / 255, ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)."""
        image = np.zeros((2, 3, 3), np.uint8)
        image[:, :] = (255, 0, 51)  # a different value per channel: swaps and per-channel errors show
        tensor = image_to_tensor(image)
        expected = torch.tensor([(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0.2 - 0.406) / 0.225])
        assert tensor.shape == (1, 3, 2, 3)
        torch.testing.assert_close(tensor[0, :, 1, 2], expected)
        white16 = image_to_tensor(np.full((2, 3), 65535, np.uint16))[0, :, 0, 0]
        torch.testing.assert_close(white16, torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]))

    def test_one_pixel_wide_or_high_images_are_images(self) -> None:
        assert image_to_tensor(np.zeros((1, 7), np.uint8)).shape == (1, 3, 1, 7)
        assert image_to_tensor(np.zeros((7, 1, 3), np.uint8)).shape == (1, 3, 7, 1)

    def test_grey_rgba_uint16_and_float_agree(self) -> None:
        grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
        reference = image_to_tensor(np.repeat(grey[:, :, None], 3, axis=2))
        rgba = np.concatenate([np.repeat(grey[:, :, None], 3, axis=2), np.zeros((3, 4, 1), np.uint8)], axis=2)
        for variant in (grey, grey[:, :, None], rgba, grey.astype(np.float32) / 255):
            assert torch.allclose(image_to_tensor(variant), reference, atol=1e-6)
        assert torch.allclose(image_to_tensor(grey.astype(np.uint16) * 257), reference, atol=1e-5)

    @pytest.mark.parametrize(
        "image", [np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4), np.uint8), np.zeros((4, 0, 3), np.uint8), np.zeros(5, np.uint8), np.zeros((4, 4), np.int32)]
    )
    def test_rejects_bad_images(self, image: np.ndarray) -> None:
        with pytest.raises(ValueError):
            image_to_tensor(image)


class TestNms:
    def test_keeps_local_maxima_above_thresholds_and_plateaus(self) -> None:
        repeatability = torch.zeros(1, 1, 6, 6)
        repeatability[0, 0, 1, 1] = 0.9  # isolated peak
        repeatability[0, 0, 4, 3:5] = 0.8  # plateau of two
        repeatability[0, 0, 1, 4] = 0.5  # below threshold
        reliability = torch.ones_like(repeatability)
        reliability[0, 0, 4, 4] = 0.1  # unreliable
        mask = nms_mask(repeatability, reliability, 0.7, 0.7)
        assert mask[0, 0].nonzero().tolist() == [[1, 1], [4, 3]]

    def test_rejects_wrong_shape(self) -> None:
        with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
            nms_mask(torch.zeros(4, 4), torch.zeros(4, 4))


class TestTopK:
    def test_best_first_and_fewer_than_k(self) -> None:
        scores = torch.tensor([0.1, 0.9, 0.5])
        assert top_k_indices(scores, 2).tolist() == [1, 2]
        assert top_k_indices(scores, 10).tolist() == [1, 2, 0]
