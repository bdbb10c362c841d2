"""sensor_msgs/Image and CompressedImage payloads -> numpy arrays, without rclpy or cv_bridge.

Raw images are viewed in place where the layout allows it (``np.frombuffer`` over the message
buffer, ``step`` padding skipped by slicing); colour orders and Bayer or YUV layouts are then
converted with OpenCV. Every failure is an :class:`ImageDecodeError` whose ``reason`` names a
drop counter, so that the node can count and skip it; inputs that OpenCV would reject with its
own exception (an odd-width YUV 4:2:2 row) are caught before they reach it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = ["ImageDecodeError", "SUPPORTED_ENCODINGS", "decode_image", "decode_compressed", "decode_message"]


class ImageDecodeError(ValueError):
    """An image that cannot be converted; ``reason`` is a short counter name (the node's drop cause)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class _Layout:
    channels: int
    dtype: np.dtype
    convert: int | None = None  # OpenCV colour conversion to RGB, if any
    pixels_per_group: int = 1  # YUV 4:2:2 packs two pixels into one U Y V Y group


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
    "yuv422": _Layout(2, _U8, cv2.COLOR_YUV2RGB_UYVY, 2),
    "uyvy": _Layout(2, _U8, cv2.COLOR_YUV2RGB_UYVY, 2),
    "yuv422_yuy2": _Layout(2, _U8, cv2.COLOR_YUV2RGB_YUYV, 2),
    "yuyv": _Layout(2, _U8, cv2.COLOR_YUV2RGB_YUYV, 2),
}
SUPPORTED_ENCODINGS = tuple(sorted(_LAYOUTS))


def decode_image(
    encoding: str,
    height: int,
    width: int,
    step: int,
    data: bytes | memoryview | np.ndarray,
    is_bigendian: bool = False,
    significant_bits: int = 16,
) -> np.ndarray:
    """Views or converts a raw image.

    Args:
        encoding: a sensor_msgs encoding, one of :data:`SUPPORTED_ENCODINGS`.
        height, width, step: as in sensor_msgs/Image (step = bytes per row, padding included).
        data: the pixel buffer (``msg.data``: any object with the buffer protocol).
        is_bigendian: byte order of 16- and 32-bit pixels.
        significant_bits: how many low bits of a 16-bit pixel carry the value (12 for a 12-bit
            sensor that writes 0..4095), so that white is white whatever the sensor's depth.

    Returns:
        (H, W) uint8, uint16 or float32 for single-channel encodings (32FC1 taken as intensity
        in [0, 1], clipped, NaN as 0; 16-bit with fewer than 16 significant bits as float32 in
        [0, 1], larger values clipped), else (H, W, 3) uint8 RGB. A view of ``data`` when possible.

    Raises:
        ImageDecodeError: reason ``encoding`` (unsupported), ``size`` (bad dimensions, step or
            length, or an odd width for YUV 4:2:2).
        ValueError: ``significant_bits`` outside 1..16.
    """
    if not 1 <= significant_bits <= 16:
        raise ValueError(f"significant_bits must be in 1..16, got {significant_bits}")
    layout = _LAYOUTS.get(encoding)
    if layout is None:
        raise ImageDecodeError("encoding", f"unsupported encoding {encoding!r}")
    pixel_bytes = layout.channels * layout.dtype.itemsize
    if height <= 0 or width <= 0:
        raise ImageDecodeError("size", f"empty image {width}x{height}")
    if width % layout.pixels_per_group:
        raise ImageDecodeError("size", f"{encoding} packs {layout.pixels_per_group} pixels per group: "
                                       f"its width must be a multiple of {layout.pixels_per_group}, got {width}")
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
    if layout.dtype == _U16 and significant_bits < 16:
        white = 2**significant_bits - 1
        return np.minimum(pixels[:, :, 0], np.uint16(white)).astype(np.float32) / np.float32(white)
    if layout.convert is None:
        return pixels[:, :, 0] if layout.channels == 1 else pixels
    return cv2.cvtColor(np.ascontiguousarray(pixels if layout.channels > 1 else pixels[:, :, 0]), layout.convert)


def decode_compressed(data: bytes | memoryview | np.ndarray) -> np.ndarray:
    """Decodes a CompressedImage payload (JPEG, PNG, ...) to (H, W, 3) uint8 RGB.

    Raises:
        ImageDecodeError: reason ``decode`` when the bytes are not a readable image.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    except cv2.error as error:  # a header claiming more pixels than OpenCV allows raises instead
        raise ImageDecodeError("decode", f"cannot decode {buffer.size} bytes of compressed image: {error}") from error
    if image is None:
        raise ImageDecodeError("decode", f"cannot decode {buffer.size} bytes of compressed image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_message(message: Any, compressed: bool, significant_bits: int = 16) -> np.ndarray:
    """A sensor_msgs Image, or CompressedImage when ``compressed``, as pixels (rclpy's or rosbags' messages).

    Raises:
        ImageDecodeError: as :func:`decode_image` and :func:`decode_compressed`.
    """
    if compressed:
        return decode_compressed(message.data)
    return decode_image(message.encoding, message.height, message.width, message.step, message.data,
                        bool(message.is_bigendian), significant_bits)
