"""Training pairs: synthetic (random homography + photometric changes) and real pairs with flow.

A pair is image 1, image 2, and ``aflow`` (H, W, 2): where each pixel of image 1 lands in
image 2 (NaN where it has no correspondence). Sample ``g`` of the stream is a pure function of
``(seed, g)``, so a resumed run sees exactly the batches it would have seen.

Real pairs (the original R2D2's "F" data, or your own) live in a folder with ``pairs.txt``,
one pair per line: ``image1 image2 flow [mask]``, paths relative to the folder:

* ``flow.npy``: float32 (H1, W1, 2), absolute (x, y) in image 2, NaN where unknown;
* ``flow.png``: the original's format: RGBA bytes read as two little-endian int16 per pixel,
  divided by 16, added to the pixel grid; then ``mask`` (a PNG, non-zero = valid) is required.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..geometry import HomographyConfig, homography_flow, local_scale, sample_homography
from ..image_io import IMAGE_SUFFIXES, read_rgb

__all__ = ["PhotometricConfig", "DataConfig", "PHOTOMETRIC", "photometric_augment", "list_images",
           "make_synthetic_pair", "SyntheticPairs", "FlowPairs", "read_flow", "collate_pairs"]


@dataclass(frozen=True)
class PhotometricConfig:
    """Strength of each photometric change applied to image 2 (0 disables it)."""

    brightness: float = 0.25  # additive shift, fraction of 255
    contrast: float = 0.3  # multiplicative factor in [1-x, 1+x]
    gamma: float = 0.3  # exponent in [2^-x, 2^x]
    noise: float = 6.0  # Gaussian pixel noise standard deviation, grey levels
    blur: float = 1.2  # largest Gaussian blur sigma, pixels
    jpeg: int = 40  # lowest JPEG quality (0 disables)
    # Exposure in stops, clipped at white and black: blown-out flat areas, where nothing can be
    # matched, are what reliability must learn to reject.
    exposure: float = 1.5
    colour: float = 0.2  # per-channel gains in [1-x, 1+x] and saturation in [1-2x, 1+2x]


@dataclass(frozen=True)
class DataConfig:
    """How training pairs are made."""

    crop_size: int = 192  # side of the square crops fed to the network
    min_source_side: int = 256  # source images are rescaled so their short side is in [min, max]
    max_source_side: int = 512
    homography: HomographyConfig = field(default_factory=HomographyConfig)
    photometric: PhotometricConfig = field(default_factory=PhotometricConfig)
    min_valid_fraction: float = 0.25  # redraw a pair whose flow covers less of image 2 than this
    # Share of pairs made grey (both images): robots' cameras are often monochrome (KITTI, EuRoC),
    # and colour-free texture is all such a camera gives the descriptors.
    greyscale: float = 0.0
    max_draws: int = 50  # homographies tried per source image before it is given up

    def __post_init__(self) -> None:
        if self.crop_size < 32:
            raise ValueError(f"crop_size must be at least 32, got {self.crop_size}")
        if not self.crop_size <= self.min_source_side <= self.max_source_side:
            raise ValueError("need crop_size <= min_source_side <= max_source_side")
        if not 0.0 <= self.greyscale <= 1.0:
            raise ValueError(f"greyscale must be a share in [0, 1], got {self.greyscale}")


def _brightness(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    return image + rng.uniform(-strength, strength) * 255


def _contrast(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    mean = image.mean()
    return (image - mean) * rng.uniform(1 - strength, 1 + strength) + mean


def _gamma(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    return 255.0 * (np.clip(image, 0, 255) / 255.0) ** (2.0 ** rng.uniform(-strength, strength))


def _noise(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    return image + rng.normal(0, strength, image.shape)


def _blur(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.1, strength))


def _exposure(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    return np.clip(image * 2.0 ** rng.uniform(-strength, strength), 0, 255)


def _colour(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    grey = image.mean(axis=2, keepdims=True)
    saturated = grey + (image - grey) * rng.uniform(1 - 2 * strength, 1 + 2 * strength)
    return saturated * rng.uniform(1 - strength, 1 + strength, 3)


def _jpeg(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    quality = int(rng.integers(int(strength), 96))
    ok, encoded = cv2.imencode(".jpg", np.clip(image, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED).astype(np.float64)


# Photometric changes by name; each takes a float image in [0, 255], the RNG and its strength.
PHOTOMETRIC: dict[str, Callable[[np.ndarray, np.random.Generator, float], np.ndarray]] = {
    "brightness": _brightness, "contrast": _contrast, "gamma": _gamma, "noise": _noise, "blur": _blur, "jpeg": _jpeg,
    "exposure": _exposure, "colour": _colour,
}


def photometric_augment(image: np.ndarray, rng: np.random.Generator, config: PhotometricConfig) -> np.ndarray:
    """Applies every enabled change of :data:`PHOTOMETRIC`, each with probability 1/2, in random order."""
    result = image.astype(np.float64)
    for name in rng.permutation(list(PHOTOMETRIC)):
        strength = getattr(config, name)
        if strength and rng.random() < 0.5:
            result = PHOTOMETRIC[name](result, rng, strength)
    return np.clip(result + 0.5, 0, 255).astype(np.uint8)


def list_images(folders: list[str | os.PathLike[str]]) -> list[Path]:
    """Every image file under the given folders (recursively), sorted.

    Raises:
        ValueError: a folder is missing or no image is found.
    """
    images: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise ValueError(f"{folder}: no such folder")
        images += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"no images found in {', '.join(map(str, folders))}")
    return images


def _rescale_source(image: np.ndarray, rng: np.random.Generator, config: DataConfig) -> np.ndarray:
    short_side = np.exp(rng.uniform(np.log(config.min_source_side), np.log(config.max_source_side)))
    factor = short_side / min(image.shape[:2])
    size = (max(config.crop_size, round(image.shape[1] * factor)), max(config.crop_size, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def _grey_sometimes(images: list[np.ndarray], rng: np.random.Generator, share: float) -> list[np.ndarray]:
    """The images turned grey (still 3 channels) with probability ``share``, all or none of them.

    Applied after the photometric changes, as a monochrome camera sees a coloured scene.
    """
    if not share or rng.random() >= share:  # no draw at share 0: earlier recipes' pairs stay the same
        return images
    return [np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2) for image in images]


def _antialiased(source: np.ndarray, scale: float) -> np.ndarray:
    """The source blurred for a warp that shrinks it by ``scale`` (< 1), as a resize with antialiasing would."""
    if scale >= 1:
        return source
    return cv2.GaussianBlur(source, (0, 0), (1 / scale - 1) / 2)


def make_synthetic_pair(image: np.ndarray, rng: np.random.Generator, config: DataConfig) -> dict[str, np.ndarray]:
    """Image 1 = a random crop; image 2 = the source seen through a random homography of that crop.

    Homographies are redrawn until image 2 sees at least ``min_valid_fraction`` of image 1; a pair
    that never does is not used.

    Returns:
        image1, image2: (S, S, 3) uint8; aflow: (S, S, 2) float32 (NaN outside image 2);
        homography: (3, 3) mapping image 1 pixels to image 2 pixels.

    Raises:
        ValueError: no valid pair in ``max_draws`` tries (the caller moves on to another image).
    """
    size = config.crop_size
    source = _rescale_source(image, rng, config)
    for _ in range(config.max_draws):
        x0, y0 = int(rng.integers(0, source.shape[1] - size + 1)), int(rng.integers(0, source.shape[0] - size + 1))
        homography = sample_homography(rng, size, size, config.homography)
        aflow = homography_flow(homography, size, size)
        inside = ((aflow >= 0) & (aflow <= size - 1)).all(axis=2)
        if inside.mean() >= config.min_valid_fraction:
            break
    else:
        raise ValueError(f"no homography kept {config.min_valid_fraction:.0%} of the crop in {config.max_draws} draws")
    to_crop = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], float)
    shrink = local_scale(homography, size / 2, size / 2)
    image2 = cv2.warpPerspective(_antialiased(source, shrink), homography @ to_crop, (size, size),
                                 flags=cv2.INTER_LINEAR)
    aflow[~inside] = np.nan
    crop1 = source[y0 : y0 + size, x0 : x0 + size]
    image1, image2 = _grey_sometimes([crop1, photometric_augment(image2, rng, config.photometric)], rng, config.greyscale)
    return {
        "image1": np.ascontiguousarray(image1),
        "image2": image2,
        "aflow": aflow,
        "homography": homography,
    }


class SyntheticPairs(Dataset):
    """An endless stream of synthetic pairs; item ``g`` depends only on (seed, g).

    Unreadable images, and images that give no valid pair, are skipped (the next one is used) and
    counted in the item's ``skipped``.
    """

    def __init__(self, images: list[Path], config: DataConfig, seed: int = 0) -> None:
        if not images:
            raise ValueError("no training images")
        self.images, self.config, self.seed = images, config, seed

    def __len__(self) -> int:
        return 2**62  # endless; the sampler decides which items are drawn

    def _image_index(self, g: int) -> int:
        epoch, position = divmod(g, len(self.images))
        return int(np.random.default_rng([self.seed, epoch]).permutation(len(self.images))[position])

    def __getitem__(self, g: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, 1, g])
        for skipped in range(len(self.images)):
            try:
                pair = make_synthetic_pair(read_rgb(self.images[self._image_index(g + skipped)]), rng, self.config)
            except ValueError:
                continue
            return {**pair, "skipped": skipped, "index": g}
        raise ValueError("none of the training images can be read")


def read_flow(flow_path: Path, mask_path: Path | None = None) -> np.ndarray:
    """Reads a flow file of the format above as (H, W, 2) absolute coordinates, NaN where invalid.

    Raises:
        ValueError: unreadable or malformed files.
    """
    if flow_path.suffix == ".npy":
        try:
            flow = np.load(flow_path, allow_pickle=False).astype(np.float32)
        except (OSError, EOFError, ValueError) as error:  # missing, empty, truncated, or of Python objects
            raise ValueError(f"{flow_path}: not a readable flow array ({error})") from error
        if flow.ndim != 3 or flow.shape[2] != 2:
            raise ValueError(f"{flow_path}: expected an (H, W, 2) array, got {flow.shape}")
    else:
        rgba = cv2.imread(os.fspath(flow_path), cv2.IMREAD_UNCHANGED)
        if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
            raise ValueError(f"{flow_path}: not an 8-bit RGBA flow PNG")
        rgba = cv2.cvtColor(rgba, cv2.COLOR_BGRA2RGBA)  # the bytes are stored in RGBA order
        offsets = np.ascontiguousarray(rgba).view("<i2").reshape(*rgba.shape[:2], 2).astype(np.float32) / 16
        ys, xs = np.mgrid[0 : rgba.shape[0], 0 : rgba.shape[1]]
        flow = (offsets + np.stack([xs, ys], axis=2)).astype(np.float32)  # as a .npy flow: batches mix both
        if mask_path is None:
            raise ValueError(f"{flow_path}: a PNG flow needs a mask file")
    if mask_path is not None:
        mask = cv2.imread(os.fspath(mask_path), cv2.IMREAD_GRAYSCALE)
        if mask is None or mask.shape != flow.shape[:2]:
            raise ValueError(f"{mask_path}: missing or not the size of the flow")
        flow[mask == 0] = np.nan
    return flow


class FlowPairs(Dataset):
    """Real image pairs with dense flow (see the module docstring), cropped around correspondences."""

    def __init__(self, folder: str | os.PathLike[str], config: DataConfig, seed: int = 0) -> None:
        self.folder, self.config, self.seed = Path(folder), config, seed
        listing = self.folder / "pairs.txt"
        if not listing.is_file():
            raise ValueError(f"{self.folder}: no pairs.txt")
        self.pairs = [line.split() for line in listing.read_text().splitlines() if line.strip() and not line.startswith("#")]
        bad = [i + 1 for i, pair in enumerate(self.pairs) if len(pair) not in (3, 4)]
        if bad or not self.pairs:
            raise ValueError(f"{listing}: lines {bad} must read 'image1 image2 flow [mask]'" if bad else f"{listing}: empty")

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, g: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, 2, g])
        size = self.config.crop_size
        for skipped in range(len(self.pairs)):
            names = self.pairs[(g + skipped) % len(self.pairs)]
            try:
                image1, image2 = (read_rgb(self.folder / name) for name in names[:2])
                flow = read_flow(self.folder / names[2], self.folder / names[3] if len(names) == 4 else None)
            except ValueError:
                continue
            if min(image1.shape[:2]) < size or min(image2.shape[:2]) < size or flow.shape[:2] != image1.shape[:2]:
                continue
            x0, y0 = int(rng.integers(0, image1.shape[1] - size + 1)), int(rng.integers(0, image1.shape[0] - size + 1))
            crop_flow = flow[y0 : y0 + size, x0 : x0 + size].copy()
            valid = np.isfinite(crop_flow).all(axis=2)
            if valid.mean() < self.config.min_valid_fraction:
                continue
            centre = np.median(crop_flow[valid], axis=0)
            x2 = int(np.clip(round(centre[0] - size / 2), 0, image2.shape[1] - size))
            y2 = int(np.clip(round(centre[1] - size / 2), 0, image2.shape[0] - size))
            crop_flow -= np.array([x2, y2], np.float32)
            crop_flow[~(((crop_flow >= 0) & (crop_flow <= size - 1)).all(axis=2))] = np.nan
            crop2 = photometric_augment(image2[y2 : y2 + size, x2 : x2 + size], rng, self.config.photometric)
            crop1, crop2 = _grey_sometimes([image1[y0 : y0 + size, x0 : x0 + size], crop2], rng, self.config.greyscale)
            return {
                "image1": np.ascontiguousarray(crop1),
                "image2": crop2,
                "aflow": crop_flow,
                "homography": np.full((3, 3), np.nan),
                "skipped": skipped,
                "index": g,
            }
        raise ValueError(f"{self.folder}: no usable pair")


def collate_pairs(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stacks pairs: images (B, S, S, 3) uint8, aflow (B, 2, S, S), homography (B, 3, 3), skipped, index."""
    return {
        "image1": torch.from_numpy(np.stack([item["image1"] for item in items])),
        "image2": torch.from_numpy(np.stack([item["image2"] for item in items])),
        "aflow": torch.from_numpy(np.stack([item["aflow"] for item in items])).permute(0, 3, 1, 2).contiguous(),
        "homography": torch.from_numpy(np.stack([item["homography"] for item in items])),
        "skipped": torch.tensor([item["skipped"] for item in items]),
        "index": torch.tensor([item["index"] for item in items]),
    }
