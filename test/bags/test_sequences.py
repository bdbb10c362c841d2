"""Sequence folders (EuRoC, KITTI, plain images) written small into tmp_path, and their calibrations resized."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from r2d2_ros.sequences import CameraCalibration, Sequence, load_sequence

WIDTH, HEIGHT = 24, 16  # not square: width and height cannot be swapped unseen


def _write_image(path: Path, colour: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((HEIGHT, WIDTH, 3) if colour else (HEIGHT, WIDTH), np.uint8))
    return path


def _euroc(folder: Path, sensor: str | None) -> Path:
    # Out of name order, with a comment, a blank line and spaces around the fields, as EuRoC's files may have.
    (folder / "data.csv").parent.mkdir(parents=True)
    (folder / "data.csv").write_text("#timestamp [ns],filename\n"
                                     "2000, b.png\n\n"
                                     "1000 ,a.png, extra\n")
    for name in ("a.png", "b.png"):
        _write_image(folder / "data" / name)
    if sensor is not None:
        (folder / "sensor.yaml").write_text(sensor)
    return folder


EUROC_SENSOR = """%YAML:1.0
sensor_type: camera
rate_hz: 15
resolution: [752, 480]
intrinsics: [458.5, 457.25, 367.75, 248.5] #fu, fv, cu, cv
distortion_coefficients: [-0.28, 0.07, 0.0002, 0.00002]
"""

KITTI_P0 = [707.0, 0.0, 601.5, -12.0, 0.0, 708.0, 183.0, 3.0, 0.0, 0.0, 1.0, 0.5]


def _kitti(folder: Path, poses: bool, labelled: bool, frames: int = 3, colour: bool = False) -> Path:
    for index in reversed(range(frames)):
        _write_image(folder / "image" / f"{index:06d}.png", colour)
    first = " ".join(map(str, KITTI_P0))
    (folder / "calib.txt").write_text(f"P0: {first}\nP1: {' '.join(['9.0'] * 12)}\n" if labelled
                                      else f"{first}\n{' '.join(['9.0'] * 12)}\n")
    if poses:
        (folder / "poses.txt").write_text("\n".join(" ".join(str(frame + value) for value in range(12))
                                                    for frame in range(3)))
    return folder


def test_euroc_frames_stamps_and_calibration(tmp_path: Path) -> None:
    sequence = load_sequence(_euroc(tmp_path / "euroc_cam0", EUROC_SENSOR))
    assert sequence.name == "euroc_cam0"
    assert sequence.frames == [tmp_path / "euroc_cam0" / "data" / name for name in ("b.png", "a.png")]
    assert sequence.timestamps_ns == [2000, 1000] and sequence.times_ns() == [2000, 1000]
    assert sequence.rate_hz == 15.0
    calibration = sequence.calibration
    assert (calibration.width, calibration.height, calibration.distortion_model) == (752, 480, "plumb_bob")
    np.testing.assert_array_equal(calibration.K, [[458.5, 0, 367.75], [0, 457.25, 248.5], [0, 0, 1]])
    assert calibration.D == (-0.28, 0.07, 0.0002, 0.00002, 0.0), "EuRoC's four coefficients, k3 = 0 added"
    assert calibration.P is None


def test_euroc_rate_defaults_to_20_hz_and_no_sensor_file_means_no_calibration(tmp_path: Path) -> None:
    without_rate = EUROC_SENSOR.replace("rate_hz: 15\n", "")
    assert load_sequence(_euroc(tmp_path / "a", without_rate)).rate_hz == 20.0
    bare = load_sequence(_euroc(tmp_path / "b", None))
    assert bare.calibration is None and bare.rate_hz is None and bare.timestamps_ns == [2000, 1000]


@pytest.mark.parametrize("labelled", [True, False])
def test_kitti_projection_size_and_poses(tmp_path: Path, labelled: bool) -> None:
    sequence = load_sequence(_kitti(tmp_path / "kitti", poses=True, labelled=labelled))
    assert [frame.name for frame in sequence.frames] == ["000000.png", "000001.png", "000002.png"]
    assert sequence.timestamps_ns is None and sequence.rate_hz == 10.0
    calibration = sequence.calibration
    assert (calibration.width, calibration.height) == (WIDTH, HEIGHT)
    np.testing.assert_array_equal(calibration.P, np.reshape(KITTI_P0, (3, 4)))
    np.testing.assert_array_equal(calibration.K, np.reshape(KITTI_P0, (3, 4))[:, :3])
    assert calibration.D == (0.0,) * 5 and calibration.distortion_model == "plumb_bob"
    assert sequence.poses.shape == (3, 3, 4)
    np.testing.assert_array_equal(sequence.poses[2], np.reshape(np.arange(12) + 2.0, (3, 4)))


def test_kitti_without_poses(tmp_path: Path) -> None:
    assert load_sequence(_kitti(tmp_path / "kitti", poses=False, labelled=True)).poses is None


def test_a_one_frame_colour_kitti_sequence_takes_its_size_from_that_frame(tmp_path: Path) -> None:
    sequence = load_sequence(_kitti(tmp_path / "kitti", poses=False, labelled=True, frames=1, colour=True))
    assert len(sequence.frames) == 1
    assert (sequence.calibration.width, sequence.calibration.height) == (WIDTH, HEIGHT)


def test_kitti_needs_both_the_image_folder_and_calib_txt(tmp_path: Path) -> None:
    """Either alone is a plain image folder: its own images, no calibration."""
    only_images = tmp_path / "only_images"
    _write_image(only_images / "image" / "000000.png")
    _write_image(only_images / "top.png")
    only_calib = tmp_path / "only_calib"
    _write_image(only_calib / "top.png")
    (only_calib / "calib.txt").write_text(" ".join(map(str, KITTI_P0)))
    for folder in (only_images, only_calib):
        sequence = load_sequence(folder)
        assert [frame.name for frame in sequence.frames] == ["top.png"] and sequence.calibration is None


def test_a_plain_folder_takes_its_images_in_name_order_and_nothing_else(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.jpg", "c.png"):
        _write_image(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    sequence = load_sequence(tmp_path)
    assert [frame.name for frame in sequence.frames] == ["a.jpg", "b.PNG", "c.png"]
    assert sequence.calibration is None and sequence.poses is None


def test_missing_or_empty_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path / 'absent'))}: not a folder$"):
        load_sequence(tmp_path / "absent")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path))}: no images found$"):
        load_sequence(tmp_path)


@pytest.mark.parametrize(("rate_hz", "period_ns"), [(None, 100_000_000), (30.0, 33_333_333), (7.0, 142_857_143)])
def test_times_without_stamps_follow_the_rate(rate_hz: float | None, period_ns: int) -> None:
    sequence = Sequence("s", [Path(f"{index}.png") for index in range(4)], rate_hz=rate_hz)
    assert sequence.times_ns() == [0, period_ns, 2 * period_ns, 3 * period_ns]


def test_recorded_stamps_are_returned_as_a_copy() -> None:
    stamps = [5, 9]
    times = Sequence("s", [Path("a.png"), Path("b.png")], timestamps_ns=stamps).times_ns()
    times.append(0)
    assert times == [5, 9, 0] and stamps == [5, 9]


def test_resizing_scales_k_and_p_per_axis() -> None:
    K = np.array([[400.0, 0, 320], [0, 420, 240], [0, 0, 1]])
    P = np.array([[400.0, 0, 320, -40], [0, 420, 240, 0], [0, 0, 1, 0]])
    resized = CameraCalibration(640, 480, K, (0.1,), "plumb_bob", P).resized(160, 240)
    assert (resized.width, resized.height, resized.D) == (160, 240, (0.1,))
    np.testing.assert_allclose(resized.K, [[100, 0, 80], [0, 210, 120], [0, 0, 1]])
    np.testing.assert_allclose(resized.P, [[100, 0, 80, -10], [0, 210, 120, 0], [0, 0, 1, 0]])
    assert CameraCalibration(640, 480, K).resized(320, 240).P is None


def test_camera_info_fields_of_a_calibration_with_and_without_p() -> None:
    K = np.array([[400.0, 0, 320], [0, 420, 240], [0, 0, 1]])
    P = np.array([[400.0, 0, 320, -40], [0, 420, 240, 0], [0, 0, 1, 0]])
    fields = CameraCalibration(640, 480, K, (0.1, -0.2), "equidistant", P).camera_info_fields()
    assert fields == {"k": K.reshape(-1).tolist(), "d": [0.1, -0.2], "distortion_model": "equidistant",
                      "r": np.eye(3).reshape(-1).tolist(), "p": P.reshape(-1).tolist()}
    assert all(type(value) is float for name in ("k", "d", "r", "p") for value in fields[name])
    defaults = CameraCalibration(640, 480, K).camera_info_fields()
    assert defaults["p"] == np.hstack([K, np.zeros((3, 1))]).reshape(-1).tolist()
    assert defaults["distortion_model"] == "plumb_bob" and defaults["d"] == []
