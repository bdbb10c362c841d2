"""Every supported sensor_msgs encoding converts to the expected pixels; bad input raises with a reason."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from r2d2_ros.ros.image_codec import SUPPORTED_ENCODINGS, ImageDecodeError, decode_compressed, decode_image

RNG = np.random.default_rng(1)
RGB = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)
GREY = RNG.integers(0, 256, (6, 8), dtype=np.uint8)


def _padded(pixels: np.ndarray, padding: int = 5) -> tuple[bytes, int]:
    """Row-major bytes with ``padding`` junk bytes after each row, and the resulting step."""
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    junk = np.full((rows.shape[0], padding), 0xAB, np.uint8)
    return np.hstack([rows, junk]).tobytes(), rows.shape[1] + padding


@pytest.mark.parametrize(
    ("encoding", "pixels", "expected"),
    [
        ("mono8", GREY, GREY),
        ("8UC1", GREY, GREY),
        ("rgb8", RGB, RGB),
        ("bgr8", RGB[:, :, ::-1], RGB),
        ("rgba8", np.dstack([RGB, np.full((6, 8), 7, np.uint8)]), RGB),
        ("bgra8", np.dstack([RGB[:, :, ::-1], np.full((6, 8), 7, np.uint8)]), RGB),
        ("mono16", GREY.astype("<u2") * 257, GREY.astype(np.uint16) * 257),
        ("16UC1", GREY.astype("<u2") * 3, GREY.astype(np.uint16) * 3),
        ("32FC1", (GREY / 255).astype("<f4"), (GREY / 255).astype(np.float32)),
    ],
)
def test_direct_encodings_with_step_padding(encoding: str, pixels: np.ndarray, expected: np.ndarray) -> None:
    for padding in (0, 6):
        data, step = _padded(np.ascontiguousarray(pixels), padding)
        out = decode_image(encoding, 6, 8, step, data)
        np.testing.assert_array_equal(out, expected)


def test_mono8_is_a_view_of_the_message_buffer() -> None:
    buffer = bytearray(GREY.tobytes())
    out = decode_image("mono8", 6, 8, 8, buffer)
    buffer[0] = (int(GREY[0, 0]) + 1) % 256
    assert out[0, 0] == buffer[0]


def test_big_endian_mono16() -> None:
    pixels = (GREY.astype(np.uint16) * 257).astype(">u2")
    np.testing.assert_array_equal(decode_image("mono16", 6, 8, 16, pixels.tobytes(), True), pixels.astype(np.uint16))


def test_32fc1_nan_and_range_are_clamped() -> None:
    pixels = np.array([[np.nan, -1.0, 0.5, 2.0]], "<f4")
    np.testing.assert_array_equal(decode_image("32FC1", 1, 4, 16, pixels.tobytes()), [[0, 0, 0.5, 1.0]])


@pytest.mark.parametrize(
    ("encoding", "pattern"),
    [("bayer_rggb8", "RGGB"), ("bayer_bggr8", "BGGR"), ("bayer_gbrg8", "GBRG"), ("bayer_grbg8", "GRBG")],
)
def test_bayer_patterns_recover_a_flat_colour(encoding: str, pattern: str) -> None:
    colour = {"R": 200, "G": 120, "B": 40}
    mosaic = np.zeros((8, 8), np.uint8)
    for index, channel in enumerate(pattern):
        mosaic[index // 2 :: 2, index % 2 :: 2] = colour[channel]
    out = decode_image(encoding, 8, 8, 8, mosaic.tobytes())
    np.testing.assert_array_equal(out[2:-2, 2:-2], np.broadcast_to([200, 120, 40], (4, 4, 3)))


@pytest.mark.parametrize(("encoding", "order"), [("yuv422", "UYVY"), ("uyvy", "UYVY"),
                                                 ("yuv422_yuy2", "YUYV"), ("yuyv", "YUYV")])
def test_yuv422_layouts(encoding: str, order: str) -> None:
    r, g, b = 180, 90, 30
    expected = np.broadcast_to(np.array([r, g, b], np.uint8), (4, 6, 3))
    # BT.601 video range, as YUV422 cameras send it.
    components = {
        "Y": round(16 + 0.257 * r + 0.504 * g + 0.098 * b),
        "U": round(128 - 0.148 * r - 0.291 * g + 0.439 * b),
        "V": round(128 + 0.439 * r - 0.368 * g - 0.071 * b),
    }
    packed = np.array([components[c] for c in order], np.uint8)
    data = np.tile(packed, 4 * 3).tobytes()  # 2 pixels per 4 bytes
    out = decode_image(encoding, 4, 6, 12, data)
    assert np.abs(out.astype(int) - expected).max() <= 3


def test_every_supported_encoding_is_tested() -> None:
    tested = {"mono8", "8UC1", "rgb8", "bgr8", "rgba8", "bgra8", "mono16", "16UC1", "32FC1", "bayer_rggb8",
              "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8", "yuv422", "uyvy", "yuv422_yuy2", "yuyv"}
    assert set(SUPPORTED_ENCODINGS) == tested


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("rgb16", 2, 2, 12, bytes(24)), "encoding"),
        (("mono8", 2, 2, 2, bytes(3)), "size"),  # truncated
        (("mono8", 2, 2, 2, bytes(5)), "size"),  # too long
        (("rgb8", 2, 2, 4, bytes(8)), "size"),  # step shorter than a row
        (("mono8", 0, 2, 2, b""), "size"),  # zero size
    ],
)
def test_bad_images_raise_with_a_reason(args: tuple, reason: str) -> None:
    with pytest.raises(ImageDecodeError) as error:
        decode_image(*args)
    assert error.value.reason == reason


def test_compressed_round_trip_and_broken_jpeg() -> None:
    ok, jpeg = cv2.imencode(".png", cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(decode_compressed(jpeg.tobytes()), RGB)
    with pytest.raises(ImageDecodeError) as error:
        decode_compressed(jpeg.tobytes()[:20])
    assert error.value.reason == "decode"


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
@pytest.mark.parametrize("width", [1, 5, 159])
def test_odd_width_yuv422_is_a_size_error_not_an_opencv_error(encoding: str, width: int) -> None:
    with pytest.raises(ImageDecodeError, match="multiple of 2") as error:
        decode_image(encoding, 3, width, 2 * width, bytes(3 * 2 * width))
    assert error.value.reason == "size"


@pytest.mark.parametrize("encoding", ["bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8"])
@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 6), (5, 1), (5, 7), (6, 9)])
def test_bayer_of_any_size_decodes(encoding: str, height: int, width: int) -> None:
    mosaic = RNG.integers(0, 256, (height, width), dtype=np.uint8)
    assert decode_image(encoding, height, width, width, mosaic.tobytes()).shape == (height, width, 3)


def test_significant_bits_scale_a_12_bit_sensor_to_full_range() -> None:
    pixels = np.array([[0, 2048, 4095, 65535]], "<u2")  # the last one: stray high bits, clipped
    out = decode_image("mono16", 1, 4, 8, pixels.tobytes(), significant_bits=12)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 2048 / 4095, 1.0, 1.0]], rtol=1e-6)
    np.testing.assert_array_equal(decode_image("16UC1", 1, 4, 8, pixels.tobytes()), pixels)  # 16 bits: as sent


def test_significant_bits_out_of_range() -> None:
    with pytest.raises(ValueError, match="significant_bits"):
        decode_image("mono16", 1, 1, 2, bytes(2), significant_bits=0)


def png_claiming_pixels(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` pixels (CRC fixed, so the header is valid)."""
    ok, png = cv2.imencode(".png", RGB)
    data = bytearray(png.tobytes())
    data[16:24] = struct.pack(">II", width, height)  # IHDR width and height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_compressed_header_beyond_opencv_pixel_limit_is_a_decode_error() -> None:
    with pytest.raises(ImageDecodeError) as error:
        decode_compressed(png_claiming_pixels(100_000, 100_000))
    assert error.value.reason == "decode"
