"""Issue 2's DDS check: another process publishes a Keypoints message; this one receives it field by field."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
from r2d2_ros.msg import Keypoints
from rclpy.node import Node
from rclpy.qos import QoSProfile

from .conftest import REPO, spin_until

PUBLISHER = textwrap.dedent(
    """
    import array, time, rclpy
    from r2d2_ros.msg import Keypoints
    rclpy.init()
    node = rclpy.create_node("keypoints_publisher")
    publisher = node.create_publisher(Keypoints, "dds_check/keypoints", 10)
    message = Keypoints(image_width=640, image_height=480, count=3, descriptor_dim=2,
                        descriptor_encoding=Keypoints.ENCODING_UINT8, descriptor_scale=0.5,
                        descriptor_offset=-1.0, model_name="dds-check")
    message.header.frame_id = "camera_optical_frame"
    message.header.stamp.sec, message.header.stamp.nanosec = 1234, 5678
    message.x = array.array("f", [1.5, 2.5, 3.5])
    message.y = array.array("f", [4.0, 5.0, 6.0])
    message.scale = array.array("f", [32.0, 45.25, 64.0])
    message.score = array.array("f", [0.9, 0.8, 0.7])
    message.descriptors = array.array("B", [0, 1, 2, 3, 4, 255])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        publisher.publish(message)
        time.sleep(0.1)
    """
)


def test_keypoints_message_crosses_processes(test_node: Node) -> None:
    received: list[Keypoints] = []
    test_node.create_subscription(Keypoints, "dds_check/keypoints", received.append, QoSProfile(depth=10))
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER], cwd=REPO)
    try:
        assert spin_until(test_node, lambda: received, timeout_s=30), "no message received over DDS"
    finally:
        publisher.terminate()
        publisher.wait(timeout=10)
    message = received[0]
    assert message.header.frame_id == "camera_optical_frame"
    assert (message.header.stamp.sec, message.header.stamp.nanosec) == (1234, 5678)
    assert (message.image_width, message.image_height, message.count, message.descriptor_dim) == (640, 480, 3, 2)
    assert message.descriptor_encoding == Keypoints.ENCODING_UINT8 == 2
    assert (message.descriptor_scale, message.descriptor_offset) == (0.5, -1.0)
    np.testing.assert_array_equal(message.x, np.float32([1.5, 2.5, 3.5]))
    np.testing.assert_array_equal(message.y, np.float32([4, 5, 6]))
    np.testing.assert_array_equal(message.scale, np.float32([32, 45.25, 64]))
    np.testing.assert_array_equal(message.score, np.float32([0.9, 0.8, 0.7]))
    assert list(message.descriptors) == [0, 1, 2, 3, 4, 255]
    assert message.model_name == "dds-check"
