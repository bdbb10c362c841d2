"""r2d2_player on bags: recorded EuRoC frames replayed over DDS into r2d2_node, headers and CameraInfo intact."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from test.ros_dds.conftest import FAST_PARAMETERS, REPO, NodeProcess, ros_context, spin_until, test_node  # noqa: F401

from r2d2_ros.bags import IMAGE_TYPES, TopicReader, stamp_ns  # noqa: E402
from r2d2_ros.msg import Keypoints  # noqa: E402
from r2d2_ros.ros import player  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402

from .conftest import FRAMES, TOPIC  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.mark.parametrize(("storage", "compressed"), [("mcap", False), ("sqlite3", False), ("sqlite3", True)])
def test_replayed_bag_reaches_the_node(make_bag: Callable[..., Path], random_checkpoint: Path, test_node: Node,
                                       storage: str, compressed: bool) -> None:
    bag = make_bag(storage, compressed)
    topic = f"{TOPIC}/compressed" if compressed else TOPIC
    with TopicReader(bag, topic, IMAGE_TYPES) as reader:
        recorded = {stamp_ns(item.message.header) for item in reader.messages()}
    keypoints: dict[int, Keypoints] = {}
    infos: dict[int, CameraInfo] = {}
    test_node.create_subscription(Keypoints, "/cam0/keypoints", lambda m: keypoints.setdefault(stamp_ns(m.header), m),
                                  QoSProfile(depth=10))
    test_node.create_subscription(CameraInfo, "/cam0/camera_info", lambda m: infos.setdefault(stamp_ns(m.header), m),
                                  qos_profile_sensor_data)
    # In the camera's namespace the node reads /cam0/image (or /cam0/image/compressed): the recorded topics.
    node = NodeProcess({**FAST_PARAMETERS, "model": random_checkpoint, "use_compressed": compressed}, namespace="cam0")
    replay = None
    try:
        node.wait_ready()
        # Looping, so that frames published before the test's subscriptions were matched come round again.
        replay = subprocess.Popen([sys.executable, "-m", "r2d2_ros.ros.player", str(bag), "--topic", topic,
                                   "--rate", "4", "--loop"], cwd=REPO)
        done = spin_until(test_node, lambda: recorded <= set(keypoints) and recorded <= set(infos), timeout_s=90)
        assert done, f"keypoints for {len(set(keypoints) & recorded)} and CameraInfo for " \
                     f"{len(set(infos) & recorded)} of {FRAMES} frames:\n{node.log()[-3000:]}"
    finally:
        if replay is not None:
            replay.terminate()
            replay.wait(timeout=20)
        node.stop()
    assert set(keypoints) == recorded  # the recorded stamps, not the time of the replay
    for message in keypoints.values():
        assert message.header.frame_id == "camera_optical_frame"
        assert (message.image_width, message.image_height, message.count) == (160, 100, 200)
    assert {(info.width, info.height, info.distortion_model) for info in infos.values()} == {(160, 100, "plumb_bob")}


def test_lists_image_topics_without_a_topic(make_bag: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert player.main(["r2d2_player", str(make_bag("mcap", compressed=True))]) == 0
    out = capsys.readouterr().out
    assert "/cam0/image/compressed  sensor_msgs/msg/CompressedImage  4 messages" in out and "camera_info" not in out


@pytest.mark.parametrize(("topic", "message"), [(TOPIC, "not a readable rosbag2"), ("/cam0/camera_info", "holds")])
def test_bad_bag_is_one_error_line(make_bag: Callable[..., Path], capsys: pytest.CaptureFixture[str], topic: str,
                                   message: str) -> None:
    bag = make_bag("sqlite3")
    if topic == TOPIC:
        storage = bag / f"{bag.name}.db3"
        storage.write_bytes(storage.read_bytes()[:4096])
    with pytest.raises(SystemExit) as exit_info:
        player.main(["r2d2_player", str(bag), "--topic", topic])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and error.count("\n") == 1 and message in error
