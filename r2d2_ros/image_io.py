"""Reading images from disk as RGB arrays, for the CLIs, training and evaluation."""
from __future__ import annotations

import os

import cv2
import numpy as np

__all__ = ["read_rgb", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads an image file as (H, W, 3) uint8 RGB (grey replicated, alpha dropped, 16 bit scaled).

    Raises:
        ValueError: the file is missing, unreadable or not an image.
    """
    image = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ValueError(f"{path}: cannot read as an image (missing, corrupt or unsupported format)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"{path}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    conversion = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}.get(image.shape[2])
    if conversion is None:
        raise ValueError(f"{path}: unsupported channel count {image.shape[2]}")
    return cv2.cvtColor(image, conversion)
