"""Reading HPatches-layout folders: categories, image files, homographies and the errors that name them (no ROS)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from r2d2_ros.evaluation.hpatches import CATEGORY_NAMES, DatasetError, load_hpatches

H = np.array([[2.0, 0.1, 4.0], [0.0, 1.8, -2.0], [0.0, 0.001, 2.0]])


def _sequence(root: Path, name: str, suffix: str = ".png", homography: np.ndarray = H) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for index in range(1, 7):
        cv2.imwrite(str(folder / f"{index}{suffix}"), np.full((8, 8, 3), index * 10, np.uint8))
    for index in range(2, 7):
        np.savetxt(folder / f"H_1_{index}", homography * index)
    return folder


def test_sequences_sorted_with_their_categories_images_and_homographies(tmp_path: Path) -> None:
    for name in ("v_wall", "i_ajuntament", "x_other", "plain"):
        _sequence(tmp_path, name, ".ppm" if name == "v_wall" else ".png")
    (tmp_path / "README.txt").write_text("not a sequence")
    sequences = load_hpatches(tmp_path)
    assert [s.name for s in sequences] == ["i_ajuntament", "plain", "v_wall", "x_other"]
    assert [s.category for s in sequences] == ["illumination", "plain", "viewpoint", "x"]
    assert CATEGORY_NAMES == {"i": "illumination", "v": "viewpoint"}
    wall = sequences[2]
    assert wall.images == tuple(tmp_path / "v_wall" / f"{i}.ppm" for i in range(1, 7))
    assert len(wall.homographies) == 5
    for index, homography in zip(range(2, 7), wall.homographies):  # scaled so that H[2, 2] is 1
        np.testing.assert_allclose(homography, H / H[2, 2], rtol=1e-12)
        assert homography[2, 2] == 1
    assert [s.name for s in load_hpatches(tmp_path, max_sequences=2)] == ["i_ajuntament", "plain"]


def test_png_is_taken_before_other_image_files(tmp_path: Path) -> None:
    folder = _sequence(tmp_path, "i_both", ".jpg")
    cv2.imwrite(str(folder / "3.png"), np.zeros((8, 8), np.uint8))
    assert load_hpatches(tmp_path)[0].images[2] == folder / "3.png"


def test_missing_folder_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        load_hpatches(tmp_path / "absent")
    (tmp_path / "file.txt").write_text("")
    with pytest.raises(DatasetError, match=r"no sequence folders \(expected <category>_<name>/1.png ... H_1_6\)"):
        load_hpatches(tmp_path)


def test_a_missing_image_is_named(tmp_path: Path) -> None:
    folder = _sequence(tmp_path, "v_a")
    (folder / "6.png").unlink()
    (folder / "6.png").mkdir()  # a folder where the image should be is no image either
    with pytest.raises(DatasetError, match=r"v_a: image 6 is missing \(expected 6.png, 6.ppm, ...\)"):
        load_hpatches(tmp_path)


@pytest.mark.parametrize("content, message", [
    (None, "H_1_4: homography file is missing"),
    ("1 0 0\n0 1 x\n0 0 1\n", "H_1_4: not a 3x3 matrix of numbers"),
    ("1 0\n0 1\n", "H_1_4: not an invertible 3x3 matrix"),
    ("1 0 0\n0 1 0\n0 0 nan\n", "H_1_4: not an invertible 3x3 matrix"),
    ("1 0 0\n0 1 0\n0 0 inf\n", "H_1_4: not an invertible 3x3 matrix"),
    ("1 2 3\n2 4 6\n0 0 1\n", "H_1_4: not an invertible 3x3 matrix"),  # rank 2
    ("1e-5 0 0\n0 1e-5 0\n0 0 1e-3\n", "H_1_4: not an invertible 3x3 matrix"),  # det 1e-13
])
def test_a_bad_homography_is_named(tmp_path: Path, content: str | None, message: str) -> None:
    folder = _sequence(tmp_path, "v_b")
    (folder / "H_1_4").unlink()
    if content is not None:
        (folder / "H_1_4").write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_hpatches(tmp_path)


def test_a_homography_just_invertible_enough(tmp_path: Path) -> None:
    """det 1e-11, above the 1e-12 floor: read and scaled to H[2, 2] = 1."""
    _sequence(tmp_path, "v_c", homography=np.diag([1e-4, 1e-4, 1e-3]))
    np.testing.assert_allclose(load_hpatches(tmp_path)[0].homographies[0], np.diag([0.1, 0.1, 1.0]))
