"""Reading image files as RGB (ROS-free): every pixel layout the CLIs, training and evaluation meet."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from r2d2_ros.image_io import IMAGE_SUFFIXES, read_rgb

RGB = np.array([[[10, 20, 30], [40, 50, 60]], [[70, 80, 90], [100, 110, 120]]], np.uint8)


def test_colour_grey_alpha_and_16_bit_images_become_uint8_rgb(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "colour.png"), cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(read_rgb(tmp_path / "colour.png"), RGB)
    cv2.imwrite(str(tmp_path / "grey.png"), RGB[:, :, 0])
    np.testing.assert_array_equal(read_rgb(tmp_path / "grey.png"), np.repeat(RGB[:, :, :1], 3, axis=2))
    rgba = np.dstack([RGB, np.full((2, 2), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "alpha.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    np.testing.assert_array_equal(read_rgb(tmp_path / "alpha.png"), RGB)
    deep = RGB.astype(np.uint16) * 256 + 255  # 16 bit: the high byte kept
    cv2.imwrite(str(tmp_path / "deep.png"), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    loaded = read_rgb(tmp_path / "deep.png")
    assert loaded.dtype == np.uint8 and loaded.shape == (2, 2, 3)
    np.testing.assert_array_equal(loaded, RGB)
    cv2.imwrite(str(tmp_path / "pixel.png"), RGB[:1, :1, 0])  # one pixel is an image too
    np.testing.assert_array_equal(read_rgb(tmp_path / "pixel.png"), [[[10, 10, 10]]])


def test_unreadable_files_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "text.png").write_text("not an image")
    for path in (tmp_path / "missing.png", tmp_path / "text.png"):
        with pytest.raises(ValueError, match="cannot read as an image"):
            read_rgb(path)
    cv2.imwrite(str(tmp_path / "float.tiff"), RGB.astype(np.float32) / 255)
    with pytest.raises(ValueError, match="unsupported pixel type float32"):
        read_rgb(tmp_path / "float.tiff")


def test_the_suffixes_read_as_images() -> None:
    assert {".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp"} == set(IMAGE_SUFFIXES)
