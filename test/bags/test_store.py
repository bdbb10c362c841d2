"""Opening bags (ROS-free, no ../shared): what counts as a bag, where the Keypoints type comes from, the
topic choice's errors word for word, and where a damaged storage stops."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rosbags.rosbag2 import Writer

from r2d2_ros.bags import store
from r2d2_ros.bags.store import CAMERA_INFO, IMAGE, KEYPOINTS, BagError, TopicReader, is_bag, typestore

REPOSITORY = Path(__file__).resolve().parents[2]


def test_what_counts_as_a_bag(tmp_path: Path) -> None:
    for name, expected in (("a.mcap", True), ("a.db3", True), ("a.bag", False), ("a.yaml", False)):
        (tmp_path / name).touch()
        assert is_bag(tmp_path / name) == expected
    folders = {"with_metadata": ["metadata.yaml"], "with_mcap": ["x.mcap", "notes.txt"], "with_db3": ["x.db3"],
               "other_files": ["notes.txt", "x.yaml"], "empty": []}
    for folder, files in folders.items():
        (tmp_path / folder).mkdir()
        for file in files:
            (tmp_path / folder / file).touch()
    assert {folder: is_bag(tmp_path / folder) for folder in folders} == {
        "with_metadata": True, "with_mcap": True, "with_db3": True, "other_files": False, "empty": False}


def test_the_keypoints_type_comes_from_the_source_tree_then_an_ament_share(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert typestore() is typestore(), "built once"
    source = (REPOSITORY / "msg" / "Keypoints.msg").read_text()
    share = tmp_path / "install" / "share" / "r2d2_ros" / "msg"
    share.mkdir(parents=True)
    (share / "Keypoints.msg").write_text(source + "\n# installed copy\n")
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"{tmp_path / 'nothing'}:{tmp_path / 'install'}")
    assert store._keypoints_definition() == source  # the source tree first
    monkeypatch.setattr(store, "__file__", str(tmp_path / "elsewhere" / "r2d2_ros" / "bags" / "store.py"))
    assert store._keypoints_definition().endswith("# installed copy\n")  # else an ament install's share
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path / "nothing"))
    with pytest.raises(BagError, match="msg/Keypoints.msg not found"):
        store._keypoints_definition()


def _bag(path: Path, topics: dict[str, str]) -> Path:
    with Writer(path, version=9) as writer:
        for topic, msgtype in topics.items():
            writer.add_connection(topic, msgtype, typestore=typestore())
    return path


@pytest.mark.parametrize(("topics", "topic", "message"), [
    ({}, None, "no sensor_msgs/msg/CompressedImage or sensor_msgs/msg/Image topic (topics: none)"),
    ({"/x": CAMERA_INFO, "/info": CAMERA_INFO}, None,
     "no sensor_msgs/msg/CompressedImage or sensor_msgs/msg/Image topic (topics: /info, /x)"),
    ({"/b": IMAGE, "/a": IMAGE}, None, "several sensor_msgs/msg/CompressedImage or sensor_msgs/msg/Image topics "
                                       "(/a, /b); name one"),
    ({}, "/a", "no topic /a (topics: none)"),
    ({"/b": IMAGE, "/info": CAMERA_INFO}, "/a", "no topic /a (topics: /b, /info)"),
    ({"/info": CAMERA_INFO}, "/info", "/info holds sensor_msgs/msg/CameraInfo, not sensor_msgs/msg/CompressedImage or "
                                      "sensor_msgs/msg/Image"),
], ids=["empty", "other-types", "two", "named-empty", "named-absent", "named-wrong-type"])
def test_topic_choice_errors_word_for_word(tmp_path: Path, topics: dict[str, str], topic: str | None,
                                           message: str) -> None:
    bag = _bag(tmp_path / "bag", topics)
    with pytest.raises(BagError) as error:
        TopicReader(bag, topic, ["sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"])
    assert str(error.value) == f"{bag}: {message}"


@pytest.mark.parametrize(("skip", "good", "expected"), [(0, 0, 0), (0, 2, 2), (3, 0, 3), (1, 3, 4)])
def test_a_damaged_storage_says_how_far_it_was_read(tmp_path: Path, skip: int, good: int, expected: int) -> None:
    bag = _bag(tmp_path / "bag", {"/image": IMAGE})
    image = typestore().types[IMAGE]
    raw = typestore().serialize_cdr(image(header=typestore().types["std_msgs/msg/Header"](
        stamp=typestore().types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="c"), height=1, width=1,
        encoding="mono8", is_bigendian=0, step=1, data=np.array([7], np.uint8)), IMAGE)

    def damaged(connections: object, start: object = None):  # type: ignore[no-untyped-def]
        for index in range(skip + good):
            yield None, index, raw
        raise OSError("chunk cut short")

    with TopicReader(bag, "/image", [IMAGE]) as reader:
        reader._reader = SimpleNamespace(messages=damaged, close=reader._reader.close)
        with pytest.raises(BagError, match=rf"unreadable after message {expected} of /image: chunk cut short"):
            list(reader.messages(skip=skip))


def test_keypoints_bags_name_the_type_as_ros_2_does_and_start_at_the_first_message(tmp_path: Path) -> None:
    # `ros2 bag record` of the node's topic stores the package's message name: readers must look for that one.
    assert KEYPOINTS == "r2d2_ros/msg/Keypoints"
    bag = tmp_path / "bag"
    image = typestore().types[IMAGE]
    header = typestore().types["std_msgs/msg/Header"](stamp=typestore().types["builtin_interfaces/msg/Time"](
        sec=1, nanosec=0), frame_id="c")
    raw = typestore().serialize_cdr(image(header=header, height=1, width=1, encoding="mono8", is_bigendian=0, step=1,
                                          data=np.array([7], np.uint8)), IMAGE)
    with Writer(bag, version=9) as writer:
        connection = writer.add_connection("/image", IMAGE, typestore=typestore())
        writer.write(connection, 1_500, raw)
        writer.write(connection, 2_500, raw)
    with TopicReader(bag, "/image", [IMAGE]) as reader:
        assert reader.start_time_ns == 1_500
