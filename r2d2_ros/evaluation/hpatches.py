"""Reading HPatches-layout folders: ``<seq>/1..6.<ext>`` and ``H_1_2 .. H_1_6``.

The folder-name prefix is the category (``i_`` illumination, ``v_`` viewpoint; any other prefix
is a category of its own). Layout problems raise one clear error naming the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..image_io import IMAGE_SUFFIXES

__all__ = ["HPatchesSequence", "DatasetError", "load_hpatches", "CATEGORY_NAMES"]

CATEGORY_NAMES = {"i": "illumination", "v": "viewpoint"}


class DatasetError(ValueError):
    """A malformed dataset folder."""


@dataclass(frozen=True)
class HPatchesSequence:
    """One sequence: six images and the homographies from image 1 to images 2..6."""

    name: str
    category: str
    images: tuple[Path, ...]
    homographies: tuple[np.ndarray, ...]


def _category(name: str) -> str:
    prefix = name.split("_", 1)[0] if "_" in name else name
    return CATEGORY_NAMES.get(prefix, prefix)


def _image(folder: Path, index: int) -> Path:
    for suffix in IMAGE_SUFFIXES:
        path = folder / f"{index}{suffix}"
        if path.is_file():
            return path
    raise DatasetError(f"{folder}: image {index} is missing (expected {index}.png, {index}.ppm, ...)")


def _homography(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"{path}: homography file is missing")
    try:
        matrix = np.loadtxt(path, dtype=float)
    except ValueError as error:
        raise DatasetError(f"{path}: not a 3x3 matrix of numbers ({error})") from error
    if matrix.shape != (3, 3) or not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < 1e-12:
        raise DatasetError(f"{path}: not an invertible 3x3 matrix")
    return matrix / matrix[2, 2]


def load_hpatches(root: str | os.PathLike[str], max_sequences: int | None = None) -> list[HPatchesSequence]:
    """Every sequence folder under ``root``, sorted by name.

    Raises:
        DatasetError: no sequences, a missing image, or a missing or malformed homography.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DatasetError(f"{root}: no sequence folders (expected <category>_<name>/1.png ... H_1_6)")
    sequences = [
        HPatchesSequence(
            folder.name, _category(folder.name),
            tuple(_image(folder, index) for index in range(1, 7)),
            tuple(_homography(folder / f"H_1_{index}") for index in range(2, 7)),
        )
        for folder in folders[:max_sequences]
    ]
    return sequences
