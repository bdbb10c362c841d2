"""The camera_info that belongs to a frame, without rclpy: what the node rectifies each frame with and republishes.

A sensor_msgs/CameraInfo describes the camera's full sensor (``width`` x ``height``, K, P); per REP 104 the images
it goes with may be binned (``binning_x``, ``binning_y``; 0 or 1: none) and cropped to a region of interest (``roi``,
offsets in full-sensor pixels; width and height 0: the full image). Such an image is

    (roi.width or width) / binning_x  by  (roi.height or height) / binning_y

pixels, and a pixel (u, v) of the full sensor lands on ((u - roi.x_offset) / binning_x, (v - roi.y_offset) /
binning_y) in it. :func:`fit_to_image` folds that map into K and P, as image_geometry's PinholeCameraModel does, so
that the result describes the image itself. :class:`CameraInfoHistory` keeps a camera's recent camera_info messages
and picks the one a frame goes with: the one with the frame's stamp, else the newest that fits the frame's size.
"""
from __future__ import annotations

import copy
import threading
from collections import deque

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo

__all__ = ["CameraInfoHistory", "CameraInfoMismatch", "MissingCameraInfo", "fit_to_image", "image_size_of",
           "stamp_ns"]


class CameraInfoMismatch(ValueError):
    """A camera_info does not describe images of the frame's size."""


class MissingCameraInfo(LookupError):
    """No camera_info was received for the camera yet."""


def stamp_ns(header_stamp: Time) -> int:
    """A builtin_interfaces/Time (a header's ``stamp``) in nanoseconds."""
    return int(header_stamp.sec) * 1_000_000_000 + int(header_stamp.nanosec)


def _binning(info: CameraInfo) -> tuple[int, int]:
    """(binning_x, binning_y), with 0 (unset) read as 1: no binning."""
    return max(1, info.binning_x), max(1, info.binning_y)


def image_size_of(info: CameraInfo) -> tuple[int, int]:
    """(width, height) of the images that ``info`` describes: its ROI, or the full sensor, over its binning.

    Raises:
        ValueError: the ROI lies outside the sensor or the binning does not divide the ROI's (or sensor's) size.
    """
    roi = info.roi
    width, height = roi.width or info.width, roi.height or info.height
    if roi.x_offset + width > info.width or roi.y_offset + height > info.height:
        raise ValueError(f"its ROI {width}x{height} at ({roi.x_offset}, {roi.y_offset}) lies outside the "
                         f"{info.width}x{info.height} sensor")
    binning_x, binning_y = _binning(info)
    if width % binning_x or height % binning_y:
        raise ValueError(f"its binning {binning_x}x{binning_y} does not divide the {width}x{height} "
                         f"{'ROI' if (roi.width, roi.height) != (0, 0) else 'sensor'}")
    return width // binning_x, height // binning_y


def fit_to_image(info: CameraInfo, width: int, height: int) -> CameraInfo:
    """A camera_info for ``width`` x ``height`` images with the binning and ROI of ``info`` folded into K and P.

    Without binning or ROI this is ``info`` itself. Otherwise it is a new message with ``info``'s header,
    distortion and rectification, no binning and no ROI, and K and P premultiplied by the map from full-sensor
    pixels to image pixels: the principal point moves by minus the ROI offset, then the first rows (fx, cx and
    P's Tx term) are divided by binning_x and the second rows by binning_y, as image_geometry's PinholeCameraModel
    does (which leaves a skew term alone; ROS cameras have none, and scaling it too keeps the map exact).
    Distortion coefficients need no change: they act on normalised coordinates.

    Raises:
        CameraInfoMismatch: ``info`` describes images of another size, or none (its ROI or binning is invalid).
    """
    try:
        size = image_size_of(info)
    except ValueError as error:
        raise CameraInfoMismatch(f"the camera_info cannot describe the {width}x{height} image: {error}") from error
    if size != (width, height):
        raise CameraInfoMismatch(f"the camera_info describes {size[0]}x{size[1]} images, the image is "
                                 f"{width}x{height}")
    roi = info.roi
    binning_x, binning_y = _binning(info)
    if (binning_x, binning_y) == (1, 1) and (roi.x_offset, roi.y_offset, roi.width, roi.height) == (0, 0, 0, 0):
        return info
    to_image = np.array([[1.0 / binning_x, 0.0, -roi.x_offset / binning_x],
                         [0.0, 1.0 / binning_y, -roi.y_offset / binning_y],
                         [0.0, 0.0, 1.0]])
    k = to_image @ np.asarray(info.k, dtype=np.float64).reshape(3, 3)
    p = to_image @ np.asarray(info.p, dtype=np.float64).reshape(3, 4)
    # Copies, so that changing one message never changes the other.
    return CameraInfo(header=copy.deepcopy(info.header), width=width, height=height,
                      distortion_model=info.distortion_model, d=list(info.d), k=k.ravel(),
                      r=np.array(info.r, dtype=np.float64), p=p.ravel())


def _size_or_reason(info: CameraInfo) -> tuple[int, int] | str:
    """The image size ``info`` describes, or why it describes none."""
    try:
        return image_size_of(info)
    except ValueError as error:
        return str(error)


class CameraInfoHistory:
    """The recent camera_info messages of one camera, to find the one that belongs to each frame.

    Thread-safe: the executor thread adds messages while the inference worker looks frames up.

    Args:
        size: how many messages to keep; older ones are forgotten.
    """

    def __init__(self, size: int = 30) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._infos: deque[tuple[int, CameraInfo]] = deque(maxlen=size)  # (stamp in ns, message), oldest first
        self._lock = threading.Lock()

    def add(self, info: CameraInfo) -> None:
        """Keeps ``info``, forgetting the oldest message when the history is full."""
        stamp = stamp_ns(info.header.stamp)
        with self._lock:
            self._infos.append((stamp, info))

    def __len__(self) -> int:
        with self._lock:
            return len(self._infos)

    def for_frame(self, stamp_ns: int, width: int, height: int) -> CameraInfo:
        """The camera_info of a frame, fitted to the frame's size by :func:`fit_to_image`.

        The message with the frame's stamp belongs to it, whatever came later; without one, the newest message
        that describes images of the frame's size does (the camera's settings may have changed since).

        Args:
            stamp_ns: the frame's stamp, in nanoseconds.
            width: the frame's width, in pixels.
            height: the frame's height, in pixels.

        Raises:
            MissingCameraInfo: no message was added yet.
            CameraInfoMismatch: the message with the frame's stamp, or without one every message kept, describes
                images of another size.
        """
        with self._lock:
            infos = list(self._infos)
        if not infos:
            raise MissingCameraInfo("no camera_info received yet")
        same_stamp = [info for stamp, info in infos if stamp == stamp_ns]
        if same_stamp:
            return fit_to_image(same_stamp[-1], width, height)
        sizes = [_size_or_reason(info) for _, info in infos]
        fitting = [info for (_, info), size in zip(infos, sizes) if size == (width, height)]
        if fitting:
            return fit_to_image(fitting[-1], width, height)
        seen = ", ".join(f"none ({size})" if isinstance(size, str) else f"{size[0]}x{size[1]}"
                         for size in dict.fromkeys(reversed(sizes)))
        raise CameraInfoMismatch(f"none of the last {len(infos)} camera_info messages describes {width}x{height} "
                                 f"images; they describe (newest first) {seen}")
