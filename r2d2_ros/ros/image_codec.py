"""sensor_msgs/Image and CompressedImage payloads -> numpy arrays, without rclpy or cv_bridge.

Raw images are viewed in place where the layout allows it (``np.frombuffer`` over the message
buffer, ``step`` padding skipped by slicing); colour orders and Bayer or YUV layouts are then
converted with OpenCV. Every failure is an :class:`ImageDecodeError` whose ``reason`` names a
drop counter, so that the node can count and skip it.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["ImageDecodeError", "SUPPORTED_ENCODINGS", "decode_image", "decode_compressed"]


class ImageDecodeError(ValueError):
    """An image that cannot be converted; ``reason`` is a short counter name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class _Layout:
    channels: int
    dtype: np.dtype
    convert: int | None = None  # OpenCV colour conversion to RGB, if any


_U8, _U16, _F32 = np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)
_LAYOUTS: dict[str, _Layout] = {
    "mono8": _Layout(1, _U8),
    "8UC1": _Layout(1, _U8),
    "mono16": _Layout(1, _U16),
    "16UC1": _Layout(1, _U16),
    "32FC1": _Layout(1, _F32),
    "rgb8": _Layout(3, _U8),
    "bgr8": _Layout(3, _U8, cv2.COLOR_BGR2RGB),
    "rgba8": _Layout(4, _U8, cv2.COLOR_RGBA2RGB),
    "bgra8": _Layout(4, _U8, cv2.COLOR_BGRA2RGB),
    # OpenCV names Bayer patterns by the second row, so ROS 'rggb' is OpenCV 'BG' (as in cv_bridge).
    "bayer_rggb8": _Layout(1, _U8, cv2.COLOR_BayerBG2RGB),
    "bayer_bggr8": _Layout(1, _U8, cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg8": _Layout(1, _U8, cv2.COLOR_BayerGR2RGB),
    "bayer_grbg8": _Layout(1, _U8, cv2.COLOR_BayerGB2RGB),
    # ROS 'yuv422' is UYVY; 'yuv422_yuy2' is YUYV. Newer ROS names both directly.
    "yuv422": _Layout(2, _U8, cv2.COLOR_YUV2RGB_UYVY),
    "uyvy": _Layout(2, _U8, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": _Layout(2, _U8, cv2.COLOR_YUV2RGB_YUYV),
    "yuyv": _Layout(2, _U8, cv2.COLOR_YUV2RGB_YUYV),
}
SUPPORTED_ENCODINGS = tuple(sorted(_LAYOUTS))


def decode_image(
    encoding: str, height: int, width: int, step: int, data: bytes | memoryview | np.ndarray, is_bigendian: bool = False
) -> np.ndarray:
    """Views or converts a raw image.

    Args:
        encoding: a sensor_msgs encoding, one of :data:`SUPPORTED_ENCODINGS`.
        height, width, step: as in sensor_msgs/Image (step = bytes per row, padding included).
        data: the pixel buffer (``msg.data``: any object with the buffer protocol).
        is_bigendian: byte order of 16- and 32-bit pixels.

    Returns:
        (H, W) uint8, uint16 or float32 for single-channel encodings (32FC1 taken as intensity
        in [0, 1], clipped, NaN as 0), else (H, W, 3) uint8 RGB. A view of ``data`` when possible.

    Raises:
        ImageDecodeError: reason ``encoding`` (unsupported), ``size`` (bad dimensions, step or length).
    """
    layout = _LAYOUTS.get(encoding)
    if layout is None:
        raise ImageDecodeError("encoding", f"unsupported encoding {encoding!r}")
    pixel_bytes = layout.channels * layout.dtype.itemsize
    if height <= 0 or width <= 0:
        raise ImageDecodeError("size", f"empty image {width}x{height}")
    if step < width * pixel_bytes:
        raise ImageDecodeError("size", f"step {step} is shorter than a {width}-pixel row of {encoding}")
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size != height * step:
        raise ImageDecodeError("size", f"{buffer.size} bytes of data, expected height x step = {height * step}")
    rows = buffer.reshape(height, step)[:, : width * pixel_bytes]
    dtype = layout.dtype.newbyteorder(">" if is_bigendian else "<")
    pixels = rows.view(dtype).reshape(height, width, layout.channels)
    if dtype.byteorder == ">":
        pixels = pixels.astype(layout.dtype)
    if layout.dtype == _F32:
        return np.clip(np.nan_to_num(pixels[:, :, 0], nan=0.0), 0.0, 1.0)
    if layout.convert is None:
        return pixels[:, :, 0] if layout.channels == 1 else pixels
    return cv2.cvtColor(np.ascontiguousarray(pixels if layout.channels > 1 else pixels[:, :, 0]), layout.convert)


def decode_compressed(data: bytes | memoryview | np.ndarray) -> np.ndarray:
    """Decodes a CompressedImage payload (JPEG, PNG, ...) to (H, W, 3) uint8 RGB.

    Raises:
        ImageDecodeError: reason ``decode`` when the bytes are not a readable image.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if image is None:
        raise ImageDecodeError("decode", f"cannot decode {buffer.size} bytes of compressed image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
