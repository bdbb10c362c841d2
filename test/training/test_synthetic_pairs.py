"""Synthetic training pairs: the photo lists, the source's rescaling, crops and their flow (no ROS)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from r2d2_ros.geometry import HomographyConfig, homography_flow
from r2d2_ros.training.data import (DataConfig, _rescale_source, list_images,
                                    make_synthetic_pair)

from .test_augmentations import UNCHANGED

STILL = HomographyConfig(max_log2_scale=0, max_log2_aspect=0, rotation_probability=0, max_rotation_deg=0,
                         max_tilt=0, max_translation=0)


def test_photos_of_every_folder_in_order(tmp_path: Path) -> None:
    """Folder by folder as given, each sorted and searched recursively, suffixes in any case."""
    for name in ("b/2.png", "b/sub/1.JPG", "a/0.jpeg", "b/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert list_images([tmp_path / "b", tmp_path / "a"]) == [tmp_path / "b/2.png", tmp_path / "b/sub/1.JPG",
                                                              tmp_path / "a/0.jpeg"]
    with pytest.raises(ValueError, match="no such folder"):
        list_images([tmp_path / "b", tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty2").mkdir()
    with pytest.raises(ValueError, match=f"no images found in {tmp_path / 'empty'}, {tmp_path / 'empty2'}$"):
        list_images([tmp_path / "empty", tmp_path / "empty2"])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", [(300, 400), (120, 160), (100, 900)])
def test_the_source_is_rescaled_to_a_log_uniform_short_side(seed: int, shape: tuple[int, int]) -> None:
    """Short side drawn log-uniformly in [min, max]; no side below the crop; INTER_AREA shrinks, linear enlarges."""
    config = DataConfig(crop_size=96, min_source_side=128, max_source_side=256)
    image = np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)
    short_side = np.exp(np.random.default_rng(seed).uniform(np.log(128), np.log(256)))
    factor = short_side / min(shape)
    size = (max(96, round(shape[1] * factor)), max(96, round(shape[0] * factor)))
    expected = cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    np.testing.assert_array_equal(_rescale_source(image, np.random.default_rng(seed), config), expected)


def test_a_source_of_the_crops_size_is_image_1_whole() -> None:
    """A square photo rescaled to exactly the crop: the only crop there is, at (0, 0)."""
    config = DataConfig(crop_size=64, min_source_side=64, max_source_side=64, homography=STILL, photometric=UNCHANGED)
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    pair = make_synthetic_pair(image, np.random.default_rng(0), config)
    np.testing.assert_array_equal(pair["image1"], image)


@pytest.mark.parametrize("seed", range(4))
def test_an_unmoved_crop_is_seen_unchanged(seed: int) -> None:
    config = DataConfig(crop_size=48, min_source_side=96, max_source_side=128, homography=STILL, photometric=UNCHANGED)
    image = np.random.default_rng(seed).integers(0, 256, (120, 150, 3), dtype=np.uint8)
    pair = make_synthetic_pair(image, np.random.default_rng(seed), config)
    np.testing.assert_array_equal(pair["image2"], pair["image1"])
    np.testing.assert_allclose(pair["homography"], np.eye(3), atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_flow_is_where_image_1_lands_inside_image_2_and_nan_elsewhere(seed: int) -> None:
    """The homography's landing points within [0, S - 1] on both axes, edges included; NaN outside."""
    config = DataConfig(crop_size=48, min_source_side=96, max_source_side=128, photometric=UNCHANGED)
    image = np.random.default_rng(seed).integers(0, 256, (120, 150, 3), dtype=np.uint8)
    pair = make_synthetic_pair(image, np.random.default_rng(seed), config)
    landing = homography_flow(pair["homography"], 48, 48)
    inside = ((landing >= 0) & (landing <= 47)).all(axis=2)
    assert np.isnan(pair["aflow"][~inside]).all() and inside.mean() >= config.min_valid_fraction
    np.testing.assert_array_equal(pair["aflow"][inside], landing[inside])
    assert pair["aflow"].dtype == np.float32 and pair["image1"].shape == pair["image2"].shape == (48, 48, 3)


def test_a_pair_that_never_covers_enough_is_refused() -> None:
    """Shifted by a whole crop, image 2 never sees image 1: 3 draws, then an error saying so."""
    config = DataConfig(crop_size=32, min_source_side=64, max_source_side=64, max_draws=3,
                        homography=HomographyConfig(max_log2_scale=0, max_log2_aspect=0, rotation_probability=0,
                                                    max_tilt=0, max_translation=0.99))
    image = np.zeros((64, 64, 3), np.uint8)
    # Drawn shifts below ~0.75 of the crop keep a quarter: at least one of three seeds' draws would, so the
    # valid share is raised to what no shift keeps.
    with pytest.raises(ValueError, match="no homography kept 100% of the crop in 3 draws"):
        make_synthetic_pair(image, np.random.default_rng(1),
                            DataConfig(**{**config.__dict__, "min_valid_fraction": 1.0}))
