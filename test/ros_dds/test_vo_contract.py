"""What a VO stack relies on, over real DDS: liveness on a paused sim clock, topics that follow remapping,
QoS overrides on outputs, and the managed (lifecycle) node's transitions."""
from __future__ import annotations

import time
from pathlib import Path

from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo

from r2d2_ros.msg import Keypoints

from .client import GREY, HEIGHT, WIDTH, Client, image_message, level, value
from .conftest import FAST_PARAMETERS, NodeProcess, spin_until


def test_diagnostics_go_on_while_a_simulation_clock_is_paused(random_checkpoint: Path, test_node: Node) -> None:
    """use_sim_time with a bag paused (one /clock message, then none): the watchdog and /diagnostics use the
    steady clock, so the status keeps coming, and a silent camera still becomes an error."""
    clock = test_node.create_publisher(Clock, "/clock", 10)
    process = NodeProcess({**FAST_PARAMETERS, "model": random_checkpoint, "diagnostics_period": 0.2,
                           "use_sim_time": True, "silence_warn": 0.5, "silence_error": 1.0},
                          name="r2d2_sim", namespace="sim")
    try:
        process.wait_ready()
        client = Client(test_node, prefix="sim/")
        paused = Clock()
        paused.clock.sec = 42

        def stamped_42() -> bool:
            return any((d.header.stamp.sec, d.header.stamp.nanosec) == (42, 0) for d in client.diagnostics)

        # Sent until the node's clock has it (discovery may lose the first ones), then never again: paused.
        deadline = time.monotonic() + 20
        while not stamped_42():
            assert time.monotonic() < deadline, "the node never took the simulated time"
            clock.publish(paused)
            spin_until(test_node, stamped_42, 0.5)
        client.diagnostics.clear()
        assert spin_until(test_node, lambda: sum(s.name == "/sim/r2d2_sim: R2D2 extraction"
                                                 for d in client.diagnostics for s in d.status) >= 5, 10)
        assert {(d.header.stamp.sec, d.header.stamp.nanosec) for d in client.diagnostics} == {(42, 0)}, \
            "stamped with ROS (simulated, paused) time, published on the steady clock"
        status = client.wait_status("/sim/r2d2_sim", lambda s: level(s) == "ERROR", 10)
        assert "no input from image" in status.message
    finally:
        assert process.stop() == 0, process.log()


def test_camera_info_follows_the_image_and_every_output_follows_one_remap(random_checkpoint: Path,
                                                                         test_node: Node) -> None:
    """-r image:=/cam/image_raw reads /cam/camera_info; -r keypoints:=/vo/features moves camera_info, overlay
    and heatmaps with it; a qos_overrides parameter reaches an output publisher."""
    process = NodeProcess({**FAST_PARAMETERS, "model": random_checkpoint, "rectify_keypoints": True,
                           "qos_overrides./vo/features.publisher.reliability": "best_effort"},
                          name="r2d2_remapped", remaps={"image": "/cam/image_raw", "keypoints": "/vo/features"})
    try:
        process.wait_ready()
        assert "subscribed to /cam/image_raw" in process.log() and "publishing /vo/features" in process.log()
        names = dict(test_node.get_topic_names_and_types())
        client = Client(test_node, prefix="/cam/")
        client.image_pub = test_node.create_publisher(type(image_message("mono8", GREY)), "/cam/image_raw",
                                                      qos_profile_sensor_data)
        received: list[Keypoints] = []
        test_node.create_subscription(Keypoints, "/vo/features", received.append,
                                      QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
        info = CameraInfo(width=WIDTH, height=HEIGHT, distortion_model="plumb_bob", d=[0.0] * 5,
                          k=[150.0, 0, 80, 0, 150, 60, 0, 0, 1])
        info_pub = test_node.create_publisher(CameraInfo, "/cam/camera_info", qos_profile_sensor_data)
        assert spin_until(test_node, lambda: client.image_pub.get_subscription_count() > 0, 20)
        for stamp in range(1, 30):
            info_pub.publish(info)
            client.image_pub.publish(image_message("mono8", GREY, stamp=stamp))
            if spin_until(test_node, lambda: bool(received), 1.0):
                break
        assert received and received[0].rectified, "rectified with the camera_info read beside the remapped image"
        names = dict(test_node.get_topic_names_and_types())
        for topic in ("/vo/features/camera_info", "/vo/features/image", "/vo/features/heatmap/repeatability",
                      "/vo/features/heatmap/reliability"):
            assert topic in names, sorted(names)
        assert "/keypoints/camera_info" not in names and "/keypoints/image" not in names
        [publisher] = test_node.get_publishers_info_by_topic("/vo/features")
        assert publisher.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT, "qos_overrides reach outputs"
    finally:
        assert process.stop() == 0, process.log()


def _transition(node: Node, service: str, transition_id: int) -> bool:
    client = node.create_client(ChangeState, service)
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
    assert spin_until(node, future.done, 120)
    return future.result().success


def _state(node: Node, service: str) -> str:
    client = node.create_client(GetState, service)
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(GetState.Request())
    assert spin_until(node, future.done, 30)
    return future.result().current_state.label


def test_the_managed_node_loads_on_configure_serves_when_active_and_releases_on_cleanup(
        random_checkpoint: Path, test_node: Node) -> None:
    name = "/managed/r2d2_node"
    process = NodeProcess({**FAST_PARAMETERS, "model": random_checkpoint, "diagnostics_period": 0.2},
                          namespace="managed", module="r2d2_ros.ros.lifecycle_node")
    try:
        client = Client(test_node, prefix="managed/")
        status = client.status(name, timeout_s=30)
        assert value(status, "state") == "unconfigured" and level(status) == "OK", "diagnostics from the start"
        assert _state(test_node, f"{name}/get_state") == "unconfigured"
        assert _transition(test_node, f"{name}/change_state", Transition.TRANSITION_CONFIGURE)
        status = client.status(name)
        assert value(status, "state") == "inactive" and value(status, "model") == "random_n16"
        assert client.image_pub.get_subscription_count() == 0, "inactive: not listening"
        assert _transition(test_node, f"{name}/change_state", Transition.TRANSITION_ACTIVATE)
        assert client.send(image_message("mono8", GREY, stamp=5)) is not None
        assert _transition(test_node, f"{name}/change_state", Transition.TRANSITION_DEACTIVATE)
        assert spin_until(test_node, lambda: client.image_pub.get_subscription_count() == 0, 10)
        assert _transition(test_node, f"{name}/change_state", Transition.TRANSITION_CLEANUP)
        status = client.wait_status(name, lambda s: value(s, "state") == "unconfigured", 10)
        assert value(status, "model") == ""
        assert _transition(test_node, f"{name}/change_state", Transition.TRANSITION_CONFIGURE), "configure again"
        assert _transition(test_node, f"{name}/change_state", Transition.TRANSITION_ACTIVATE)
        assert client.send(image_message("mono8", GREY, stamp=6)) is not None
    finally:
        assert process.stop() == 0, process.log()


def test_a_managed_node_with_a_bad_model_fails_configure_and_stays_up(test_node: Node) -> None:
    name = "/managed_bad/r2d2_node"
    process = NodeProcess({**FAST_PARAMETERS, "model": "/nonexistent/model.pt"}, namespace="managed_bad",
                          module="r2d2_ros.ros.lifecycle_node")
    try:
        assert not _transition(test_node, f"{name}/change_state", Transition.TRANSITION_CONFIGURE)
        assert _state(test_node, f"{name}/get_state") == "unconfigured"
        assert process.process.poll() is None and "configure failed" in process.log()
    finally:
        assert process.stop() == 0, process.log()
