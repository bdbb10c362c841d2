"""r2d2-extract --ray: two local workers write what the single-process CLI writes, on images and on bags;
a corrupt input is reported and the rest written; a rerun skips what is done; without --ray, no ray."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from r2d2_ros.bags import FeatureBag, stamp_ns, write_sequence_bag
from r2d2_ros.cli.extract import main
from r2d2_ros.sequences import load_sequence

from ..conftest import REPO, rectangles_image

ray = pytest.importorskip("ray", reason="r2d2-extract --ray needs ray: pip install r2d2_ros[cluster]")

# Single scale, thresholds off, few keypoints: quick on a CPU, and every image gives keypoints.
FAST = ["--device", "cpu", "--min-scale", "1", "--min-size", "0", "--top-k", "60", "--reliability-threshold", "0",
        "--repeatability-threshold", "0"]
RAY = ["--ray", "--ray-workers", "2"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A 2-CPU local Ray for the module; the CLI joins it rather than starting its own."""
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 120x160 images of rectangles, and one corrupt PNG among them."""
    folder = tmp_path_factory.mktemp("images")
    for seed in range(4):
        cv2.imwrite(str(folder / f"frame{seed}.png"), rectangles_image(120, 160, 40, seed=seed))
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    return folder


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _bag_contents(path: Path) -> list[tuple[int, str, dict[str, np.ndarray]]]:
    with FeatureBag(path) as bag:
        return [(stamp_ns(header), header.frame_id, features.numpy()) for header, features in bag]


def test_two_workers_write_the_single_process_files_and_report_the_corrupt_image(
        cluster: None, images: Path, random_checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    common = [str(images), "--model", str(random_checkpoint), *FAST]
    assert main([*common, "--output-dir", str(tmp_path / "one")]) == 1
    caplog.set_level(logging.INFO, logger="r2d2-extract")
    assert main([*common, "--output-dir", str(tmp_path / "ray"), *RAY]) == 1
    assert "failed" in caplog.text and "broken.png" in caplog.text and "on 2 Ray workers" in caplog.text
    written = sorted(p.name for p in (tmp_path / "ray").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "one").iterdir()) == [f"frame{i}.png.r2d2" for i in range(4)]
    for name in written:
        expected, got = _arrays(tmp_path / "one" / name), _arrays(tmp_path / "ray" / name)
        for key, value in expected.items():
            np.testing.assert_array_equal(got[key], value, err_msg=f"{name} {key}")
    caplog.clear()
    before = {name: (tmp_path / "ray" / name).stat().st_mtime_ns for name in written}
    assert main([*common, "--output-dir", str(tmp_path / "ray"), *RAY]) == 1  # the corrupt image fails again
    assert "4 of 5 inputs done already; 1 to extract" in caplog.text
    assert {name: (tmp_path / "ray" / name).stat().st_mtime_ns for name in written} == before


def test_two_workers_write_the_single_process_feature_bags(cluster: None, images: Path, random_checkpoint: Path,
                                                           tmp_path: Path) -> None:
    bags = tmp_path / "bags"
    bags.mkdir()
    sequence = load_sequence(images)  # the folder's images in name order, 10 Hz
    sequence.frames = [frame for frame in sequence.frames if frame.name != "broken.png"]
    for name, count in (("drive_a", 4), ("drive_b", 3)):
        write_sequence_bag(sequence, bags / name, "/cam/image_raw", count=count)
    common = ["--bag", str(bags), "--model", str(random_checkpoint), *FAST]
    assert main([*common, "--output-bag", str(tmp_path / "one")]) == 0
    assert main([*common, "--output-bag", str(tmp_path / "ray"), *RAY]) == 0
    for name, count in (("drive_a", 4), ("drive_b", 3)):
        expected, got = _bag_contents(tmp_path / "one" / name), _bag_contents(tmp_path / "ray" / name)
        assert [item[:2] for item in got] == [item[:2] for item in expected] and len(got) == count
        for (_, _, got_features), (_, _, expected_features) in zip(got, expected):
            for key, value in expected_features.items():
                np.testing.assert_array_equal(got_features[key], value, err_msg=f"{name} {key}")


def test_without_ray_the_cli_does_not_import_it(images: Path, random_checkpoint: Path, tmp_path: Path) -> None:
    arguments = [str(images / "frame0.png"), "--model", str(random_checkpoint), "--output-dir", str(tmp_path), *FAST]
    script = (f"import sys; from r2d2_ros.cli.extract import main; code = main({arguments!r}); "
              "assert 'ray' not in sys.modules, 'ray imported'; sys.exit(code)")
    finished = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert (tmp_path / "frame0.png.r2d2").exists()
