"""Photometric changes of training pairs, each against its documented formula with the same random draws,
over strengths and seeds, on images that reach both ends of [0, 255] and beyond (no ROS)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from r2d2_ros.training.data import (PHOTOMETRIC, DataConfig, PhotometricConfig, _antialiased, _grey_sometimes,
                                    photometric_augment)

SEEDS = range(6)
STRENGTHS = (0.05, 0.3, 1.0)


def _image(seed: int) -> np.ndarray:
    """A float image in [0, 255] with exact blacks and whites (changes apply to intermediate results, which
    may leave [0, 255]: the last row does)."""
    image = np.random.default_rng(100 + seed).uniform(0, 255, (8, 10, 3))
    image[0, :3], image[1, :3] = 0.0, 255.0
    image[-1, 0], image[-1, 1] = -20.0, 300.0
    return image


def _both(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    return np.random.default_rng(seed), np.random.default_rng(seed)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("strength", STRENGTHS)
def test_brightness_contrast_gamma_and_noise(seed: int, strength: float) -> None:
    image = _image(seed)
    rng, same = _both(seed)
    np.testing.assert_allclose(PHOTOMETRIC["brightness"](image, rng, strength),
                               image + same.uniform(-strength, strength) * 255)  # a shift, in fractions of 255
    rng, same = _both(seed)
    factor = same.uniform(1 - strength, 1 + strength)
    np.testing.assert_allclose(PHOTOMETRIC["contrast"](image, rng, strength),
                               (image - image.mean()) * factor + image.mean())
    rng, same = _both(seed)
    exponent = 2.0 ** same.uniform(-strength, strength)
    np.testing.assert_allclose(PHOTOMETRIC["gamma"](image, rng, strength),
                               255.0 * (np.clip(image, 0, 255) / 255.0) ** exponent)
    rng, same = _both(seed)
    np.testing.assert_allclose(PHOTOMETRIC["noise"](image, rng, 6.0 * strength),
                               image + same.normal(0, 6.0 * strength, image.shape))


def test_gamma_keeps_black_and_white() -> None:
    changed = PHOTOMETRIC["gamma"](_image(0), np.random.default_rng(0), 0.3)
    assert (changed[0, :3] == 0).all() and np.allclose(changed[1, :3], 255) and changed[-1, 1].max() == 255


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("strength", (0.5, 1.2, 3.0))
def test_blur_sigma_is_drawn_from_0_1_to_the_strength(seed: int, strength: float) -> None:
    image = _image(seed)
    rng, same = _both(seed)
    np.testing.assert_allclose(PHOTOMETRIC["blur"](image, rng, strength),
                               cv2.GaussianBlur(image, (0, 0), same.uniform(0.1, strength)))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("strength", (0.5, 1.5, 3.0))
def test_exposure_in_stops_clipped_at_black_and_white(seed: int, strength: float) -> None:
    image = _image(seed)
    image[2, :3] = (0.4, 250.0, 0.9)  # near black and white: an exposure change clips them
    rng, same = _both(seed)
    np.testing.assert_allclose(PHOTOMETRIC["exposure"](image, rng, strength),
                               np.clip(image * 2.0 ** same.uniform(-strength, strength), 0, 255))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("strength", (0.1, 0.2, 0.5))
def test_colour_saturation_then_channel_gains(seed: int, strength: float) -> None:
    image = _image(seed)
    rng, same = _both(seed)
    grey = image.mean(axis=2, keepdims=True)
    saturation = same.uniform(1 - 2 * strength, 1 + 2 * strength)
    expected = (grey + (image - grey) * saturation) * same.uniform(1 - strength, 1 + strength, 3)
    np.testing.assert_allclose(PHOTOMETRIC["colour"](image, rng, strength), expected)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("lowest", (40, 90))
def test_jpeg_quality_from_the_lowest_to_95(seed: int, lowest: int) -> None:
    image = _image(seed)
    rng, same = _both(seed)
    quality = int(same.integers(lowest, 96))
    _, encoded = cv2.imencode(".jpg", np.clip(image, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
    np.testing.assert_array_equal(PHOTOMETRIC["jpeg"](image, rng, lowest), cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED))


UNCHANGED = PhotometricConfig(brightness=0, contrast=0, gamma=0, noise=0, blur=0, jpeg=0, exposure=0, colour=0)


def test_no_change_gives_the_image_back() -> None:
    image = np.random.default_rng(0).integers(0, 256, (8, 10, 3), dtype=np.uint8)
    image[0, 0], image[0, 1] = 0, 255
    for seed in SEEDS:
        assert np.array_equal(photometric_augment(image, np.random.default_rng(seed), UNCHANGED), image)


@pytest.mark.parametrize("level, shift, expected", [(100, 0.6, 101), (100, 0.4, 100), (100, -0.4, 100), (100, -0.6, 99),
                                                     (100, -200.0, 0), (255, 10.0, 255), (0, -10.0, 0)])
def test_results_round_to_the_nearest_level_and_clip_without_wrapping(monkeypatch: pytest.MonkeyPatch, level: int,
                                                                      shift: float, expected: int) -> None:
    """A change shifting every pixel by ``shift`` (drawn for about half of the seeds): rounded, clipped to [0, 255]."""
    monkeypatch.setitem(PHOTOMETRIC, "brightness", lambda image, rng, strength: image + shift)
    image = np.full((2, 2, 3), level, np.uint8)
    only_brightness = PhotometricConfig(**{**UNCHANGED.__dict__, "brightness": 0.5})
    outputs = {int(photometric_augment(image, np.random.default_rng(seed), only_brightness)[0, 0, 0])
               for seed in range(8)}
    assert outputs == {level, expected}


def test_each_change_applies_to_about_half_of_the_images() -> None:
    """With probability 1/2 each, in random order: over 400 images, each change is drawn 150-250 times."""
    calls: dict[str, int] = {}
    originals = dict(PHOTOMETRIC)

    def counting(name: str):  # noqa: ANN202
        def change(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
            calls[name] = calls.get(name, 0) + 1
            return originals[name](image, rng, strength)
        return change

    PHOTOMETRIC.update({name: counting(name) for name in originals})
    try:
        image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
        for seed in range(400):
            photometric_augment(image, np.random.default_rng(seed), PhotometricConfig())
    finally:
        PHOTOMETRIC.update(originals)
    assert set(calls) == set(PHOTOMETRIC) and all(150 <= count <= 250 for count in calls.values()), calls


def test_every_documented_change_is_on_by_default() -> None:
    """docs/training.md: brightness, contrast, gamma, noise, blur, JPEG, colour and exposure (±1.5 stops)."""
    defaults = PhotometricConfig()
    assert all(getattr(defaults, name) > 0 for name in PHOTOMETRIC) and defaults.exposure == 1.5
    assert DataConfig().photometric == defaults and DataConfig().greyscale == 0.0


@pytest.mark.parametrize("values", [{"crop_size": 32, "min_source_side": 32, "max_source_side": 32},
                                    {"crop_size": 64, "min_source_side": 64, "max_source_side": 96},
                                    {"crop_size": 64, "min_source_side": 96, "max_source_side": 96}])
def test_data_config_edges_accepted(values: dict) -> None:
    assert DataConfig(**values).crop_size == values["crop_size"]


@pytest.mark.parametrize("values, message", [
    ({"crop_size": 31, "min_source_side": 32, "max_source_side": 32}, "crop_size must be at least 32, got 31"),
    ({"crop_size": 64, "min_source_side": 63, "max_source_side": 96}, "need crop_size <= min_source_side <= max"),
    ({"crop_size": 64, "min_source_side": 97, "max_source_side": 96}, "need crop_size <= min_source_side <= max"),
    ({"greyscale": 1.01}, r"greyscale must be a share in \[0, 1\], got 1.01"), ({"greyscale": -0.01}, "greyscale")])
def test_data_config_out_of_range_refused(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DataConfig(**values)


def test_grey_pairs_are_three_equal_channels_and_share_zero_draws_nothing() -> None:
    images = [np.random.default_rng(i).integers(0, 256, (4, 5, 3), dtype=np.uint8) for i in range(2)]
    grey = _grey_sometimes(images, np.random.default_rng(0), 1.0)
    for image, made in zip(images, grey):
        assert made.shape == (4, 5, 3) and (made == cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]).all()
    rng = np.random.default_rng(0)
    assert _grey_sometimes(images, rng, 0.0) is images and rng.random() == np.random.default_rng(0).random()


def test_antialiasing_blur_of_a_shrinking_warp() -> None:
    """Blurred by sigma (1/s - 1)/2 where the warp shrinks by s < 1; untouched otherwise."""
    source = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert _antialiased(source, 1.0) is source and _antialiased(source, 1.5) is source
    np.testing.assert_array_equal(_antialiased(source, 0.25), cv2.GaussianBlur(source, (0, 0), 1.5))
    np.testing.assert_array_equal(_antialiased(source, 0.5), cv2.GaussianBlur(source, (0, 0), 0.5))


def test_the_defaults_are_the_bundled_models_recipe() -> None:
    """A run with the defaults makes the pairs the bundled model was trained on (its checkpoint records them), but
    for the source sides' upper end and the grey share, which its chunks' configs set."""
    from r2d2_ros.model import load_checkpoint
    from r2d2_ros.training.config import config_to_dict
    from r2d2_ros.weights import DEFAULT_MODEL

    recorded = load_checkpoint(DEFAULT_MODEL).config["data"]
    defaults = config_to_dict(DataConfig())
    assert {k: v for k, v in defaults.items() if k not in ("max_source_side", "greyscale")} == \
        {k: v for k, v in recorded.items() if k not in ("max_source_side", "greyscale")}
