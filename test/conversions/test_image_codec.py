"""Every supported sensor_msgs encoding converts to the expected pixels; bad input raises with a reason."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from r2d2_ros.conversions.image_codec import SUPPORTED_ENCODINGS, ImageDecodeError, decode_compressed, decode_image

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


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_big_endian_16_bit_pixels_whose_two_bytes_differ(encoding: str) -> None:
    values = np.array([[0x0102, 0xFF00, 0x00FF, 0x1234]], np.uint16)  # byte-swapped, each is another value
    big = decode_image(encoding, 1, 4, 8, values.astype(">u2").tobytes(), is_bigendian=True)
    little = decode_image(encoding, 1, 4, 8, values.astype("<u2").tobytes(), is_bigendian=False)
    np.testing.assert_array_equal(big, values)
    np.testing.assert_array_equal(little, values)
    assert big.dtype == np.dtype(np.uint16) and big.dtype.isnative  # torch.from_numpy refuses swapped bytes


def test_big_endian_32fc1_and_12_bit_pixels() -> None:
    floats = np.array([[0.25, 0.5, 0.75]], np.float32)
    np.testing.assert_array_equal(decode_image("32FC1", 1, 3, 12, floats.astype(">f4").tobytes(), True), floats)
    twelve_bit = np.array([[0x0123, 0x0ABC]], np.uint16)
    out = decode_image("mono16", 1, 2, 4, twelve_bit.astype(">u2").tobytes(), True, significant_bits=12)
    np.testing.assert_allclose(out, twelve_bit / 4095, rtol=1e-6)


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rgb16", 2, 2, 12, bytes(24)), "unsupported encoding 'rgb16'"),
        (("mono8", 2, 0, 0, b""), "empty image 0x2"),
        (("mono8", 0, 3, 3, b""), "empty image 3x0"),
        (("yuyv", 2, 3, 6, bytes(12)), "yuyv packs 2 pixels per group: its width must be a multiple of 2, got 3"),
        (("rgb8", 2, 2, 4, bytes(8)), "step 4 is shorter than a 2-pixel row of rgb8"),
        (("mono8", 2, 3, 3, bytes(5)), "5 bytes of data, expected height x step = 6"),
    ],
)
def test_size_and_encoding_errors_say_what_is_wrong(args: tuple, message: str) -> None:
    with pytest.raises(ImageDecodeError, match=f"^{message}$".replace("(", r"\(").replace(")", r"\)")):
        decode_image(*args)


def test_compressed_errors_say_how_many_bytes() -> None:
    with pytest.raises(ImageDecodeError, match=r"^cannot decode 7 bytes of compressed image$"):
        decode_compressed(b"garbage")
    with pytest.raises(ImageDecodeError, match=r"^cannot decode \d+ bytes of compressed image: "):
        decode_compressed(png_claiming_pixels(100_000, 100_000))


@pytest.mark.parametrize(("bits", "accepted"), [(0, False), (1, True), (16, True), (17, False)])
def test_significant_bits_from_1_to_16(bits: int, accepted: bool) -> None:
    pixels = np.array([[0, 1]], "<u2").tobytes()
    if accepted:
        np.testing.assert_array_equal(decode_image("mono16", 1, 2, 4, pixels, significant_bits=bits) > 0, [[False, True]])
    else:
        with pytest.raises(ValueError, match=r"^significant_bits must be in 1\.\.16, got "):
            decode_image("mono16", 1, 2, 4, pixels, significant_bits=bits)
