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


def test_defaults_are_352_px_at_quality_82(tmp_path: Path) -> None:
    """The documented defaults: shrunk with INTER_AREA to a 352 px short side, JPEG quality 82."""
    source, target = tmp_path / "photos", tmp_path / "packed"
    _photo(source / "photo.png", 704, 800)
    assert main([str(source), str(target)]) == 0
    shrunk = cv2.resize(read_rgb(source / "photo.png"), (400, 352), interpolation=cv2.INTER_AREA)
    _, expected = cv2.imencode(".jpg", cv2.cvtColor(shrunk, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 82])
    assert (target / "photo.png.jpg").read_bytes() == expected.tobytes()


@pytest.mark.parametrize("short_side", [80, 120])
def test_never_enlarged_even_a_little(tmp_path: Path, short_side: int) -> None:
    """A short side of 80 px asked to be 80 or 120: written at its own size (1.5x would enlarge it)."""
    _photo(tmp_path / "photo.png", 100, 80)
    pack_image(tmp_path / "photo.png", tmp_path / "packed.jpg", short_side, 90)
    _, expected = cv2.imencode(".jpg", cv2.cvtColor(read_rgb(tmp_path / "photo.png"), cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert (tmp_path / "packed.jpg").read_bytes() == expected.tobytes()


@pytest.mark.parametrize("arguments, shape", [(["--short-side", "1"], (1, 1, 3)), (["--quality", "1"], (100, 80, 3)),
                                              (["--quality", "100"], (100, 80, 3))])
def test_the_edges_of_the_options_are_accepted(tmp_path: Path, arguments: list[str], shape: tuple[int, ...]) -> None:
    _photo(tmp_path / "photos" / "photo.png", 100, 80)
    assert main([str(tmp_path / "photos"), str(tmp_path / "packed"), *arguments]) == 0
    assert read_rgb(tmp_path / "packed" / "photo.png.jpg").shape == shape


def test_the_summary_counts_the_bytes_written_and_every_unreadable_file(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    source, target = tmp_path / "photos", tmp_path / "packed"
    rng = np.random.default_rng(0)
    for name in ("a/noise1.png", "a/noise2.png"):  # noise: about 1 MiB each at quality 100
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(source / name), rng.integers(0, 256, (600, 600, 3), dtype=np.uint8))
    (source / "c" / "d").mkdir(parents=True)
    for name in ("c/d/x.jpg", "c/d/y.jpg"):  # two unreadable files in a folder the packing has to make
        (source / name).write_bytes(b"not a jpeg")
    assert main([str(source), str(target), "--short-side", "600", "--quality", "100"]) == 0
    written = sum((target / "a" / name).stat().st_size for name in ("noise1.png.jpg", "noise2.png.jpg"))
    assert written > 2**20
    assert capsys.readouterr().out == (f"4 files, {written / 2**20:.1f} MiB of photos in {target}; "
                                       "2 unreadable copied unchanged\n")
    assert (target / "c" / "d" / "y.jpg").read_bytes() == b"not a jpeg"


def test_run_as_a_module(tmp_path: Path) -> None:
    """python -m r2d2_ros.training.pack_images, as the GPU runs' packing is made."""
    import subprocess
    import sys

    _photo(tmp_path / "photos" / "photo.png", 100, 80)
    done = subprocess.run([sys.executable, "-m", "r2d2_ros.training.pack_images", str(tmp_path / "photos"),
                           str(tmp_path / "packed")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "packed" / "photo.png.jpg").is_file()
