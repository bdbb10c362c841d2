"""Recording a sequence folder as a camera bag (ROS-free, no ../shared): colour and grey frames, raw and PNG,
the camera_info a ROS 2 consumer reads, and the defaults."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from r2d2_ros.bags import IMAGE_TYPES, TopicReader, bag_topics, decode_frame, write_sequence_bag
from r2d2_ros.bags.images import raw_image_layout
from r2d2_ros.bags.store import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE
from r2d2_ros.sequences import CameraCalibration, Sequence


def _sequence(folder: Path) -> Sequence:
    """Two colour frames with every channel different, and a grey one."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(2)]
    frames.append(np.repeat(rng.integers(0, 256, (6, 8, 1), dtype=np.uint8), 3, axis=2))
    paths = []
    for index, rgb in enumerate(frames):
        paths.append(folder / f"{index}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return Sequence("tiny", paths, [1_000_000_000 * (index + 1) for index in range(3)],
                    CameraCalibration(8, 6, np.array([[5.0, 0, 4], [0, 5, 3], [0, 0, 1]]), (0.0,) * 5))


def test_layout_is_mono8_only_when_every_channel_is_equal() -> None:
    image = np.zeros((2, 2, 3), np.uint8)
    assert raw_image_layout(image)[1] == "mono8"
    for red, green, blue in ((5, 5, 9), (5, 9, 9), (9, 5, 9)):  # any two equal is not enough
        image[...] = (red, green, blue)
        pixels, encoding = raw_image_layout(image)
        assert encoding == "rgb8" and pixels.shape == (2, 2, 3)
    image[...] = (7, 7, 7)
    pixels, encoding = raw_image_layout(image)
    assert encoding == "mono8" and pixels.shape == (2, 2) and (pixels == 7).all()


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "png"])
def test_recorded_frames_and_camera_info_read_back_exactly(tmp_path: Path, compressed: bool) -> None:
    sequence = _sequence(tmp_path)
    assert write_sequence_bag(sequence, tmp_path / "bag", "/cam/image_raw", compressed=compressed) == 3
    topic = "/cam/image_raw/compressed" if compressed else "/cam/image_raw"
    with TopicReader(tmp_path / "bag", topic, IMAGE_TYPES) as reader:
        messages = list(reader.messages())
        msgtype = reader.msgtype
    assert msgtype == (COMPRESSED_IMAGE if compressed else IMAGE)
    for message, path in zip(messages, sequence.frames):
        expected = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        decoded = decode_frame(message.message, msgtype)
        np.testing.assert_array_equal(decoded, expected if decoded.ndim == 3 else expected[..., 0])
    first = messages[0].message
    if compressed:
        assert first.format == "rgb8; png compressed rgb8" and messages[2].message.format.startswith("mono8;")
    else:
        assert (first.encoding, first.is_bigendian, first.step) == ("rgb8", 0, 24)
        assert messages[2].message.encoding == "mono8"
    with TopicReader(tmp_path / "bag", "/cam/camera_info", [CAMERA_INFO]) as reader:
        info = next(reader.messages()).message
    assert (info.width, info.height, info.binning_x, info.binning_y) == (8, 6, 0, 0)
    roi = info.roi
    assert (roi.x_offset, roi.y_offset, roi.width, roi.height, roi.do_rectify) == (0, 0, 0, 0, False)


def test_defaults_record_raw_frames_on_camera_image_raw_in_mcap(tmp_path: Path) -> None:
    write_sequence_bag(_sequence(tmp_path), tmp_path / "bag")
    assert bag_topics(tmp_path / "bag") == {"/camera/camera_info": (CAMERA_INFO, 3), "/camera/image_raw": (IMAGE, 3)}
    assert [p.suffix for p in (tmp_path / "bag").iterdir() if p.suffix != ".yaml"] == [".mcap"]
