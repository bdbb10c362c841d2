"""Camera bags and feature bags without ROS: recording, reading back field by field, bad bags, resuming."""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from r2d2_ros.bags import (IMAGE_TYPES, BagError, FeatureBag, FeatureBagWriter, TopicReader, camera_info_topic,
                           decode_frame, feature_bag_settings, image_topics, keypoints_message, stamp_ns, typestore,
                           with_stamp)
from r2d2_ros.bags.store import CAMERA_INFO, IMAGE, KEYPOINTS
from r2d2_ros.features import Features
from r2d2_ros.image_io import read_rgb
from r2d2_ros.conversions.keypoints_message import DESCRIPTOR_ENCODINGS
from r2d2_ros.sequences import Sequence

from .conftest import FRAMES, SIZE, TOPIC


def _read_all(path: Path, topic: str | None = TOPIC) -> list:
    with TopicReader(path, topic, IMAGE_TYPES) as reader:
        return list(reader.messages())


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "compressed"])
def test_recorded_frames_decode_to_the_sequence(make_bag: Callable[..., Path], euroc: Sequence, storage: str,
                                                compressed: bool) -> None:
    bag = make_bag(storage, compressed)
    topic = f"{TOPIC}/compressed" if compressed else TOPIC
    assert image_topics(bag) == {topic: ("sensor_msgs/msg/CompressedImage" if compressed else IMAGE, FRAMES)}
    with TopicReader(bag, None, IMAGE_TYPES) as reader:  # the only image topic
        frames = list(reader.messages())
        msgtype = reader.msgtype
    assert [frame.index for frame in frames] == list(range(FRAMES))
    stamps = [stamp_ns(frame.message.header) for frame in frames]
    assert stamps == [frame.log_time_ns for frame in frames] == euroc.timestamps_ns[:FRAMES]
    for frame, path in zip(frames, euroc.frames):
        expected = cv2.resize(read_rgb(path), SIZE, interpolation=cv2.INTER_AREA)
        decoded = decode_frame(frame.message, msgtype)
        np.testing.assert_array_equal(decoded if decoded.ndim == 3 else np.dstack([decoded] * 3), expected)
        assert frame.message.header.frame_id == "camera_optical_frame"
    with TopicReader(bag, camera_info_topic(topic), [CAMERA_INFO]) as reader:
        infos = [item.message for item in reader.messages()]
    scale = np.diag([SIZE[0] / 752, SIZE[1] / 480, 1.0])
    np.testing.assert_allclose(infos[0].k.reshape(3, 3), scale @ euroc.calibration.K)
    assert (infos[0].width, infos[0].height, len(infos)) == (*SIZE, FRAMES)


@pytest.mark.parametrize("little_endian", [True, False])
def test_restamping_changes_only_the_stamp(make_bag: Callable[..., Path], little_endian: bool) -> None:
    recorded = _read_all(make_bag("mcap"))[0].message
    raw = bytes(typestore().serialize_cdr(recorded, IMAGE, little_endian=little_endian))
    restamped = typestore().deserialize_cdr(with_stamp(raw, 1_700_000_000_123_456_789), IMAGE)
    assert (restamped.header.stamp.sec, restamped.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert restamped.header.frame_id == recorded.header.frame_id and restamped.encoding == recorded.encoding
    np.testing.assert_array_equal(restamped.data, recorded.data)


def _truncate(bag: Path) -> Path:
    storage = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    os.truncate(storage, storage.stat().st_size // 2)
    return bag


def _unknown_storage(bag: Path) -> Path:
    metadata = bag / "metadata.yaml"
    metadata.write_text(metadata.read_text().replace("storage_identifier: mcap", "storage_identifier: tape"))
    return bag


def _with_custom_topic(bag: Path) -> Path:
    """A bag whose only topic has a type that no standard type store knows."""
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg("int32 value", "my_msgs/msg/Thing"))
    with Writer(bag.with_name("custom"), version=9) as writer:
        connection = writer.add_connection("/thing", "my_msgs/msg/Thing", typestore=store)
        writer.write(connection, 1, store.serialize_cdr(store.types["my_msgs/msg/Thing"](value=1), "my_msgs/msg/Thing"))
    return bag.with_name("custom")


@pytest.mark.parametrize(
    ("damage", "topic", "message"),
    [
        (_truncate, TOPIC, "not a readable rosbag2"),
        (_unknown_storage, TOPIC, "Storage plugin 'tape' not supported"),
        (lambda bag: bag, "/cam0/camera_info", "/cam0/camera_info holds sensor_msgs/msg/CameraInfo, not"),
        (_with_custom_topic, "/thing", "/thing holds my_msgs/msg/Thing, not"),
        (lambda bag: bag, "/nothing", "no topic /nothing (topics: /cam0/camera_info, /cam0/image)"),
        (lambda bag: (bag / "metadata.yaml").unlink() or bag, TOPIC, "no metadata.yaml"),
        (lambda bag: bag.with_name("absent"), TOPIC, "no such bag"),
    ],
    ids=["truncated", "unknown-storage", "not-an-image", "unknown-type", "no-topic", "no-metadata", "absent"],
)
def test_bad_bags_are_one_line_errors(make_bag: Callable[..., Path], damage: Callable[[Path], Path], topic: str,
                                      message: str) -> None:
    bag = damage(make_bag("mcap"))
    with pytest.raises(BagError, match=re.escape(message)) as error:
        _read_all(bag, topic)
    assert "\n" not in str(error.value)


def test_truncated_sqlite_is_an_error_too(make_bag: Callable[..., Path]) -> None:
    with pytest.raises(BagError, match="euroc_sqlite3_raw"):
        _read_all(_truncate(make_bag("sqlite3")))


def test_corrupt_message_is_skipped_and_counted(make_bag: Callable[..., Path], tmp_path: Path) -> None:
    good = _read_all(make_bag("sqlite3"))
    bag = tmp_path / "with_corrupt"
    with Writer(bag, version=9) as writer:
        connection = writer.add_connection(TOPIC, IMAGE, typestore=typestore())
        for frame in good[:2]:
            writer.write(connection, frame.log_time_ns, frame.raw)
        writer.write(connection, good[1].log_time_ns + 1, frame.raw[:100])  # cut mid-pixels
        for frame in good[2:]:
            writer.write(connection, frame.log_time_ns, frame.raw)
        writer.write(connection, good[-1].log_time_ns + 1, frame.raw[:50])  # and one more at the end
    with TopicReader(bag, TOPIC, IMAGE_TYPES) as reader:
        read = list(reader.messages())
        assert reader.corrupt == 2 and reader.count == FRAMES + 2
    assert [frame.raw for frame in read] == [frame.raw for frame in good]
    assert [frame.index for frame in read] == [0, 1, 3, 4]


def _features(seed: int, count: int = 7) -> Features:
    generator = torch.Generator().manual_seed(seed)
    descriptors = torch.nn.functional.normalize(torch.randn(count, 128, generator=generator), dim=1)
    keypoints = torch.rand(count, 3, generator=generator) * torch.tensor([160.0, 100.0, 64.0])
    scores = torch.sort(torch.rand(count, generator=generator), descending=True).values
    return Features(keypoints, descriptors, scores, (160, 100))


def _header(index: int) -> object:
    types = typestore().types
    return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=100 + index, nanosec=index),
                                        frame_id=f"cam{index}")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("encoding", ["float32", "uint8"])
def test_feature_bag_reads_back_field_by_field(tmp_path: Path, storage: str, encoding: str) -> None:
    path, written = tmp_path / "features", [_features(seed) for seed in range(5)]
    code = DESCRIPTOR_ENCODINGS[encoding]
    with FeatureBagWriter(path, "/cam0/keypoints", {"what": "test"}, storage=storage, chunk_frames=2) as writer:
        for index, features in enumerate(written):
            writer.write(keypoints_message(features, _header(index), "model", code), 10 + index, frames_read=index + 1)
    assert len([p for p in path.iterdir() if p.suffix in (".mcap", ".db3")]) == 3  # 2 + 2 + 1 messages
    with TopicReader(path, "/cam0/keypoints", [KEYPOINTS]) as reader:
        messages = [item.message for item in reader.messages()]
    first = messages[0]
    assert (first.image_width, first.image_height, first.count, first.descriptor_dim) == (160, 100, 7, 128)
    assert (first.descriptor_encoding, first.model_name, first.header.frame_id) == (code, "model", "cam0")
    np.testing.assert_array_equal(first.x, written[0].keypoints[:, 0].numpy())
    np.testing.assert_array_equal(first.scale, written[0].keypoints[:, 2].numpy())
    assert first.descriptors.size == 7 * 128 * (4 if encoding == "float32" else 1)
    with FeatureBag(path) as bag:
        assert bag.settings["what"] == "test" and bag.count == 5
        read = list(bag)
        assert bag.corrupt == 0
    assert [(h.stamp.sec, h.stamp.nanosec, h.frame_id) for h, _ in read] == [(100 + i, i, f"cam{i}") for i in range(5)]
    for (_, got), expected in zip(read, written):
        torch.testing.assert_close(got.keypoints, expected.keypoints, rtol=0, atol=0)
        torch.testing.assert_close(got.scores, expected.scores, rtol=0, atol=0)
        tolerance = 0.0 if encoding == "float32" else 1 / 255
        torch.testing.assert_close(got.descriptors, expected.descriptors, rtol=0, atol=tolerance)
        assert got.image_size == (160, 100)


def test_feature_bag_resumes_only_with_the_same_settings(tmp_path: Path) -> None:
    path = tmp_path / "features"
    with FeatureBagWriter(path, "/kp", {"model": "a"}, chunk_frames=1) as writer:
        writer.write(keypoints_message(_features(0), _header(0), "a", 0), 1, frames_read=3)
    with FeatureBagWriter(path, "/kp", {"model": "a"}, chunk_frames=1) as writer:
        assert (writer.frames_read, writer.written) == (3, 1)
        writer.write(keypoints_message(_features(1), _header(1), "a", 0), 2, frames_read=4)
    with FeatureBag(path) as bag:
        assert [header.frame_id for header, _ in bag] == ["cam0", "cam1"]
    with pytest.raises(BagError, match="written with other settings"):
        FeatureBagWriter(path, "/kp", {"model": "b"})
    with pytest.raises(BagError, match="written with other settings"):
        FeatureBagWriter(path, "/kp", {"model": "a"}, storage="sqlite3")
    (tmp_path / "other").mkdir()
    with pytest.raises(BagError, match="is not a feature bag"):
        FeatureBagWriter(tmp_path / "other", "/kp", {})


def test_unfinished_file_of_a_killed_run_is_dropped(tmp_path: Path) -> None:
    """A run killed without cleanup leaves its current file outside the bag; the bag stays valid."""
    path = tmp_path / "features"
    writer = FeatureBagWriter(path, "/kp", {}, chunk_frames=2)
    for index in range(3):  # the third message goes into a file that is never finished
        writer.write(keypoints_message(_features(index), _header(index), "m", 0), index + 1, frames_read=index + 1)
    with FeatureBag(path) as bag:
        assert [header.frame_id for header, _ in bag] == ["cam0", "cam1"]
    resumed = FeatureBagWriter(path, "/kp", {}, chunk_frames=2)
    assert (resumed.frames_read, resumed.written) == (2, 2)
    assert not (tmp_path / ".features.chunk").exists()


def test_a_chunked_feature_bag_has_the_metadata_of_one_recording(tmp_path: Path) -> None:
    # Three storage files of two messages each, the log times 10 ms apart, in a folder not made yet:
    # `ros2 bag info` must show one recording, its first message's time, the span to its last, every message once.
    path = tmp_path / "runs" / "today" / "features"
    with FeatureBagWriter(path, "/kp", {"b": 1, "a": 2}, chunk_frames=2) as writer:
        for index in range(6):
            writer.write(keypoints_message(_features(index), _header(index), "m", 0), 1_000 + 10_000_000 * index,
                         frames_read=index + 1)
        assert writer.written == 6 and writer.frames_read == 6
    metadata = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["message_count"] == 6 and len(metadata["relative_file_paths"]) == 3 == len(metadata["files"])
    assert metadata["starting_time"]["nanoseconds_since_epoch"] == 1_000
    assert metadata["duration"]["nanoseconds"] == 50_000_000
    assert [(entry["topic_metadata"]["name"], entry["message_count"])
            for entry in metadata["topics_with_message_count"]] == [("/kp", 6)]
    assert feature_bag_settings(path) == {"a": 2, "b": 1, "storage": "mcap", "topic": "/kp"}
    # The same settings given in another order are the same settings: the run resumes; closing it with the
    # input position and nothing new written records the position and adds no file.
    with FeatureBagWriter(path, "/kp", {"a": 2, "b": 1}, chunk_frames=2) as writer:
        assert writer.written == 6 and writer.frames_read == 6
        writer.close(frames_read=9)
    with FeatureBagWriter(path, "/kp", {"a": 2, "b": 1}, chunk_frames=2) as writer:
        assert writer.frames_read == 9
    assert len(yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["files"]) == 3
    # A run that writes nothing still leaves a valid, empty bag.
    FeatureBagWriter(tmp_path / "empty", "/kp", {}).close(frames_read=0)
    with FeatureBag(tmp_path / "empty") as bag:
        assert bag.count == 0 and list(bag) == []


def test_a_keypoints_message_whose_arrays_disagree_with_its_count_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "features"
    with FeatureBagWriter(path, "/kp", {}, chunk_frames=10) as writer:
        for index in range(5):
            message = keypoints_message(_features(index), _header(index), "m", 0)
            if index in (1, 3):
                message.count = 6  # the arrays hold 7
            writer.write(message, 10 + index, frames_read=index + 1)
    with FeatureBag(path) as bag:
        read = [header.frame_id for header, _ in bag]
        assert read == ["cam0", "cam2", "cam4"] and bag.corrupt == 2
