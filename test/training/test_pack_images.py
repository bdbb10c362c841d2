"""Packing training photos small for a GPU machine: same files in the same order, shrunk never enlarged."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from r2d2_ros.image_io import read_rgb
from r2d2_ros.training.data import list_images
from r2d2_ros.training.pack_images import main, pack_image

JPEG_MAGIC = b"\xff\xd8\xff"


def _photo(path: Path, height: int, width: int) -> np.ndarray:
    """Writes a smooth colour photo (JPEG-friendly, so colours survive compression); returns it as RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 200)], axis=-1).astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return rgb


def _relative(folder: Path) -> list[str]:
    return [str(p.relative_to(folder)) for p in list_images([folder])]


def test_every_file_keeps_its_place_in_the_trainers_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, target = tmp_path / "photos", tmp_path / "packed"
    _photo(source / "b" / "large.jpg", 600, 900)
    _photo(source / "a" / "small.png", 100, 80)
    _photo(source / "a" / "small.jpg", 100, 80)  # same stem as the PNG: both must survive
    _photo(source / "b" / "tall.JPEG", 800, 500)
    (source / "b" / "broken.jpg").write_bytes(b"not a jpeg")

    assert main([str(source), str(target), "--short-side", "300", "--quality", "80"]) == 0

    # The trainer holds out every N-th file of this sorted list (an unreadable one is skipped there, counted):
    # the same list in the same order keeps the same held-out photos.
    assert _relative(target) == ["a/small.jpg", "a/small.png.jpg", "b/broken.jpg", "b/large.jpg", "b/tall.JPEG"]
    assert _relative(source) == ["a/small.jpg", "a/small.png", "b/broken.jpg", "b/large.jpg", "b/tall.JPEG"]
    for name in ("a/small.jpg", "a/small.png.jpg", "b/large.jpg", "b/tall.JPEG"):
        assert (target / name).read_bytes()[:3] == JPEG_MAGIC, name
    assert read_rgb(target / "b" / "large.jpg").shape == (300, 450, 3)
    assert read_rgb(target / "b" / "tall.JPEG").shape == (480, 300, 3)
    assert read_rgb(target / "a" / "small.png.jpg").shape == (100, 80, 3)  # never enlarged
    assert (target / "b" / "broken.jpg").read_bytes() == b"not a jpeg"
    output = capsys.readouterr()
    assert "broken.jpg: cannot read as an image" in output.err
    assert "5 files" in output.out and "1 unreadable copied unchanged" in output.out


def test_colours_come_out_as_the_trainer_reads_them(tmp_path: Path) -> None:
    rgb = _photo(tmp_path / "photo.png", 64, 96)
    pack_image(tmp_path / "photo.png", tmp_path / "packed.jpg", 64, 95)
    # JPEG is lossy: a few levels of error on a smooth image; swapped R and B would be off by up to 200.
    assert np.abs(read_rgb(tmp_path / "packed.jpg").astype(int) - rgb).max() <= 12


def test_a_lower_quality_writes_fewer_bytes(tmp_path: Path) -> None:
    _photo(tmp_path / "photo.png", 400, 400)
    high = pack_image(tmp_path / "photo.png", tmp_path / "high.jpg", 400, 95)
    low = pack_image(tmp_path / "photo.png", tmp_path / "low.jpg", 400, 20)
    assert low < high == (tmp_path / "high.jpg").stat().st_size


@pytest.mark.parametrize("arguments", [["--short-side", "0"], ["--quality", "101"], ["--quality", "0"]])
def test_bad_sizes_and_qualities_are_refused(tmp_path: Path, arguments: list[str]) -> None:
    _photo(tmp_path / "photos" / "a.jpg", 50, 50)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "photos"), str(tmp_path / "packed"), *arguments])
    assert exit_info.value.code == 2
    assert not (tmp_path / "packed").exists()


@pytest.mark.parametrize("target", ["photos/packed", "photos", "."])
def test_a_target_overlapping_the_source_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    target: str) -> None:
    _photo(tmp_path / "photos" / "a.jpg", 50, 50)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "photos"), str(tmp_path / target)])
    assert "overlap" in capsys.readouterr().err


def test_a_target_with_files_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _photo(tmp_path / "photos" / "a.jpg", 50, 50)
    _photo(tmp_path / "packed" / "left_from_before.jpg", 50, 50)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "photos"), str(tmp_path / "packed")])
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize("names", [("b.png", "b.png.jpg"),  # both would be packed as b.png.jpg
                                   ("a.png", "a.png-x.jpg")])  # a.png.jpg would sort after a.png-x.jpg
def test_names_that_would_change_the_order_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       names: tuple[str, str]) -> None:
    for name in names:
        _photo(tmp_path / "photos" / name, 50, 50)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "photos"), str(tmp_path / "packed")])
    assert "order" in capsys.readouterr().err
