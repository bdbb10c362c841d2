"""The camera_info that belongs to a frame: REP 104 image sizes, binning and ROI folded into K and P, the history."""
from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, RegionOfInterest

from r2d2_ros.serving.camera_info import (CameraInfoHistory, CameraInfoMismatch, MissingCameraInfo, fit_to_image,
                                          image_size_of, stamp_ns)

K = [500.0, 0.0, 320.5, 0.0, 510.0, 240.25, 0.0, 0.0, 1.0]
P = [480.0, 0.0, 330.0, -40.0, 0.0, 490.0, 235.0, 6.0, 0.0, 0.0, 1.0, 0.0]  # a stereo pair's right camera
ROI = RegionOfInterest(x_offset=100, y_offset=50, width=320, height=240)
SECOND = 1_000_000_000


def _info(width: int = 640, height: int = 480, binning: tuple[int, int] = (0, 0),
          roi: RegionOfInterest | None = None, stamp: int = 0, fx: float = K[0]) -> CameraInfo:
    """A plumb_bob camera_info of a ``width`` x ``height`` sensor, stamped ``stamp`` ns."""
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob", d=[-0.2, 0.05, 0.001, 0.002, 0.0],
                      k=[fx] + K[1:], r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], p=P,
                      binning_x=binning[0], binning_y=binning[1], roi=roi or RegionOfInterest())
    info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp, SECOND)
    info.header.frame_id = "camera_optical"
    return info


def test_stamp_ns_reads_a_header_stamp() -> None:
    assert stamp_ns(Time(sec=2, nanosec=5)) == 2 * SECOND + 5


@pytest.mark.parametrize(("binning", "roi", "size"), [
    ((0, 0), None, (640, 480)),
    ((1, 1), None, (640, 480)),
    ((2, 2), None, (320, 240)),
    ((2, 4), None, (320, 120)),
    ((0, 0), ROI, (320, 240)),
    ((2, 2), ROI, (160, 120)),
    ((0, 0), RegionOfInterest(x_offset=0, y_offset=0, width=640, height=480), (640, 480)),
])
def test_image_size_follows_rep_104(binning: tuple[int, int], roi: RegionOfInterest | None,
                                    size: tuple[int, int]) -> None:
    assert image_size_of(_info(binning=binning, roi=roi)) == size


@pytest.mark.parametrize(("binning", "roi", "reason"), [
    ((3, 1), None, "binning 3x1 does not divide the 640x480 sensor"),
    ((1, 7), ROI, "binning 1x7 does not divide the 320x240 ROI"),
    ((0, 0), RegionOfInterest(x_offset=400, y_offset=50, width=320, height=240), "lies outside"),
    ((0, 0), RegionOfInterest(x_offset=10, y_offset=0, width=0, height=0), "ROI 640x480 at \\(10, 0\\) lies outside"),
    ((0, 0), RegionOfInterest(x_offset=0, y_offset=300, width=320, height=240), "lies outside"),  # rows only
])
def test_an_invalid_size_is_a_value_error(binning: tuple[int, int], roi: RegionOfInterest | None,
                                          reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        image_size_of(_info(binning=binning, roi=roi))


@pytest.mark.parametrize(("binning", "roi", "k", "p"), [
    ((2, 2), None, [250.0, 0.0, 160.25, 0.0, 255.0, 120.125, 0.0, 0.0, 1.0],
     [240.0, 0.0, 165.0, -20.0, 0.0, 245.0, 117.5, 3.0, 0.0, 0.0, 1.0, 0.0]),
    ((0, 0), ROI, [500.0, 0.0, 220.5, 0.0, 510.0, 190.25, 0.0, 0.0, 1.0],
     [480.0, 0.0, 230.0, -40.0, 0.0, 490.0, 185.0, 6.0, 0.0, 0.0, 1.0, 0.0]),
    ((2, 2), ROI, [250.0, 0.0, 110.25, 0.0, 255.0, 95.125, 0.0, 0.0, 1.0],
     [240.0, 0.0, 115.0, -20.0, 0.0, 245.0, 92.5, 3.0, 0.0, 0.0, 1.0, 0.0]),
], ids=["binning-2", "roi", "roi-and-binning-2"])
def test_binning_and_roi_are_folded_into_k_and_p(binning: tuple[int, int], roi: RegionOfInterest | None,
                                                 k: list[float], p: list[float]) -> None:
    info = _info(binning=binning, roi=roi, stamp=3 * SECOND + 7)
    width, height = image_size_of(info)
    fitted = fit_to_image(info, width, height)
    assert fitted is not info
    np.testing.assert_allclose(fitted.k, k)
    np.testing.assert_allclose(fitted.p, p)
    assert (fitted.width, fitted.height, fitted.binning_x, fitted.binning_y) == (width, height, 0, 0)
    assert fitted.roi == RegionOfInterest()
    assert fitted.header == info.header and fitted.distortion_model == "plumb_bob"
    np.testing.assert_array_equal(fitted.d, info.d)
    np.testing.assert_array_equal(fitted.r, info.r)
    np.testing.assert_array_equal(info.k, K), "the original is left alone"


@pytest.mark.parametrize(("binning", "roi"), [((2, 2), None), ((2, 4), None), ((0, 0), ROI), ((2, 2), ROI),
                                              ((4, 2), ROI)])
@pytest.mark.parametrize("skew", [0.0, 1.5])
def test_the_fitted_camera_projects_where_the_full_camera_lands_in_the_image(
        binning: tuple[int, int], roi: RegionOfInterest | None, skew: float) -> None:
    """A point seen by the full sensor at (u, v) is at ((u - x_offset) / binning_x, (v - y_offset) / binning_y)."""
    info = _info(binning=binning, roi=roi)
    info.k[1], info.p[1] = skew, skew  # image_geometry leaves a skew alone; dividing it too keeps the map exact
    fitted = fit_to_image(info, *image_size_of(info))
    points = np.array([[0.0, 0.0, 1.0], [0.3, -0.2, 2.0], [-1.5, 0.7, 4.5], [2.0, 1.0, 10.0]])
    offset = np.array([info.roi.x_offset, info.roi.y_offset])
    bins = np.array([max(1, info.binning_x), max(1, info.binning_y)])
    for matrix, fitted_matrix, homogeneous in [(info.k, fitted.k, points),
                                               (info.p, fitted.p, np.hstack([points, np.ones((4, 1))]))]:
        rows = len(matrix) // 3
        full = homogeneous @ np.reshape(matrix, (3, rows)).T
        image = homogeneous @ np.reshape(fitted_matrix, (3, rows)).T
        np.testing.assert_allclose(image[:, :2] / image[:, 2:], (full[:, :2] / full[:, 2:] - offset) / bins)


@pytest.mark.parametrize("binning", [(0, 0), (1, 1), (1, 0)])
def test_without_binning_or_roi_the_camera_info_itself_fits(binning: tuple[int, int]) -> None:
    info = _info(binning=binning)
    assert fit_to_image(info, 640, 480) is info


@pytest.mark.parametrize(("info", "message"), [
    (_info(), "describes 640x480 images, the image is 320x240"),
    (_info(binning=(2, 2), roi=ROI), "describes 160x120 images, the image is 320x240"),
    (_info(binning=(3, 3)), "cannot describe the 320x240 image: its binning 3x3 does not divide"),
])
def test_a_camera_info_of_another_size_does_not_fit(info: CameraInfo, message: str) -> None:
    with pytest.raises(CameraInfoMismatch, match=message):
        fit_to_image(info, 320, 240)
    assert issubclass(CameraInfoMismatch, ValueError)


def test_the_camera_info_with_the_frame_stamp_wins_over_the_latest() -> None:
    history = CameraInfoHistory()
    history.add(mine := _info(stamp=1 * SECOND, fx=500.0))
    history.add(latest := _info(stamp=2 * SECOND, fx=600.0))
    assert history.for_frame(1 * SECOND, 640, 480) is mine
    assert history.for_frame(SECOND + SECOND // 2, 640, 480) is latest, "no camera_info of its stamp: the latest"


def test_a_resized_stream_gets_the_latest_camera_info_of_its_size() -> None:
    history = CameraInfoHistory()
    infos = [_info(*((640, 480) if index % 2 == 0 else (320, 240)), stamp=index * SECOND) for index in range(6)]
    for info in infos:
        history.add(info)
    assert history.for_frame(100 * SECOND, 640, 480) is infos[4], "the newer 320x240 one does not fit"
    assert history.for_frame(100 * SECOND, 320, 240) is infos[5]
    assert history.for_frame(2 * SECOND, 640, 480) is infos[2]


def test_a_binned_camera_info_fits_the_binned_frame() -> None:
    history = CameraInfoHistory()
    history.add(_info(binning=(2, 2), stamp=SECOND))
    history.add(_info(stamp=2 * SECOND))
    fitted = history.for_frame(5 * SECOND, 320, 240)
    assert (fitted.width, fitted.height) == (320, 240) and stamp_ns(fitted.header.stamp) == SECOND
    np.testing.assert_allclose(fitted.k[:3], [250.0, 0.0, 160.25])


def test_the_camera_info_with_the_frame_stamp_must_fit() -> None:
    history = CameraInfoHistory()
    history.add(_info(stamp=5 * SECOND))
    history.add(_info(320, 240, stamp=6 * SECOND))
    with pytest.raises(CameraInfoMismatch, match="describes 640x480 images, the image is 320x240"):
        history.for_frame(5 * SECOND, 320, 240)


def test_no_camera_info_yet_is_missing() -> None:
    with pytest.raises(MissingCameraInfo, match="no camera_info"):
        CameraInfoHistory().for_frame(0, 640, 480)
    assert issubclass(MissingCameraInfo, LookupError)


def test_when_none_fits_the_error_names_the_sizes_seen() -> None:
    history = CameraInfoHistory()
    for info in [_info(stamp=1), _info(320, 240, stamp=2), _info(stamp=3), _info(binning=(3, 1), stamp=4)]:
        history.add(info)
    with pytest.raises(CameraInfoMismatch) as error:
        history.for_frame(10, 100, 100)
    assert str(error.value) == ("none of the last 4 camera_info messages describes 100x100 images; they describe "
                                "(newest first) none (its binning 3x1 does not divide the 640x480 sensor), 640x480, "
                                "320x240")


def test_the_history_forgets_the_oldest() -> None:
    history = CameraInfoHistory(size=3)
    history.add(_info(800, 600, stamp=0))
    for stamp in range(1, 4):
        history.add(_info(stamp=stamp))
    assert len(history) == 3
    with pytest.raises(CameraInfoMismatch, match="describes 800x600"):
        history.for_frame(10, 800, 600)


def test_a_history_keeps_one_or_more() -> None:
    with pytest.raises(ValueError):
        CameraInfoHistory(size=0)
    history = CameraInfoHistory(size=1)
    history.add(_info(stamp=1))
    history.add(_info(stamp=2))
    assert len(history) == 1 and history.for_frame(5, 640, 480).header.stamp.sec == 0


def test_a_fitted_camera_info_is_independent_of_the_one_received() -> None:
    received = _info(binning=(2, 2), stamp=3 * SECOND)
    fitted = fit_to_image(received, 320, 240)
    fitted.header.stamp.sec = 99  # the node restamps what it republishes
    fitted.header.frame_id = "other"
    assert received.header.stamp.sec == 3 and received.header.frame_id == "camera_optical"


def test_adding_and_reading_from_two_threads() -> None:
    history = CameraInfoHistory(size=5)
    start, errors = threading.Barrier(2), []

    def add() -> None:
        start.wait()
        for stamp in range(1000):
            history.add(_info(*((640, 480) if stamp % 2 == 0 else (320, 240)), stamp=stamp))

    def read() -> None:
        start.wait()
        for stamp in range(1000):
            try:
                fitted = history.for_frame(stamp, 640, 480)
            except (MissingCameraInfo, CameraInfoMismatch):  # before the first camera_info, or only a 320x240 one
                continue
            assert (fitted.width, fitted.height) == (640, 480) and 1 <= len(history) <= 5

    def reporting(work: Callable[[], None]) -> Callable[[], None]:
        """``work``, with what it raises kept for the test: a thread's exception is otherwise only printed."""
        def run() -> None:
            try:
                work()
            except Exception as error:
                errors.append(error)
        return run

    threads = [threading.Thread(target=reporting(add)), threading.Thread(target=reporting(read))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(history) == 5
