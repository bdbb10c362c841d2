"""One r2d2_node serving a stereo rig (cameras: [left, right]) over real DDS: pairing, own stamps, ids, silence."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from r2d2_ros.msg import Keypoints
from r2d2_ros.conversions.keypoints_message import message_to_arrays
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from ..conftest import rectangles_image
from ..parity import match_keypoints
from .client import Client, image_message, value
from .conftest import FAST_PARAMETERS, NodeProcess, spin_until

NAMESPACE = "rig"
NODE = f"/{NAMESPACE}/r2d2_node"
CAMERAS = ("left", "right")
# Two different scenes: a node that published one camera's keypoints for both would show.
SCENES = [np.ascontiguousarray(rectangles_image(120, 160, 40, seed=seed)[:, :, 0]) for seed in (11, 12)]


@pytest.fixture(scope="module")
def node_process(random_checkpoint: Path) -> Iterator[NodeProcess]:
    # track_max_points 0: every detection is published, so a camera's keypoints are its image's extraction
    # whatever that camera tracked before (the scenes swap cameras below).
    process = NodeProcess({**FAST_PARAMETERS, "model": random_checkpoint, "diagnostics_period": 0.2,
                           "cameras": list(CAMERAS), "sync_tolerance": 0.005, "tracking": True,
                           "track_max_points": 0, "silence_warn": 1.0, "silence_error": 2.0}, namespace=NAMESPACE)
    process.wait_ready()
    yield process
    assert process.stop() == 0, process.log()


class Rig:
    """The test's side of the rig: one client per camera and the republished camera_info of the right one."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.clients = {camera: Client(node, prefix=f"/{NAMESPACE}/{camera}/") for camera in CAMERAS}
        self.camera_info_pub = node.create_publisher(CameraInfo, f"/{NAMESPACE}/right/camera_info",
                                                     qos_profile_sensor_data)
        self.camera_info_out: list[CameraInfo] = []
        node.create_subscription(CameraInfo, f"/{NAMESPACE}/right/keypoints/camera_info", self.camera_info_out.append,
                                 QoSProfile(depth=10))

    def frame(self, camera: str, scene: np.ndarray, sec: int, nanosec: int = 0) -> Image:
        message = image_message("mono8", scene, stamp=sec, frame_id=f"{camera}_optical_frame")
        message.header.stamp.nanosec = nanosec
        return message

    def send(self, frames: dict[str, Image], timeout_s: float = 30.0) -> dict[str, Keypoints]:
        """Publishes one frame per camera until both cameras' keypoints of that second come back."""
        sec = frames["left"].header.stamp.sec
        before = {camera: len(client.keypoints) for camera, client in self.clients.items()}

        def answered() -> dict[str, Keypoints] | None:
            found = {camera: [k for k in client.keypoints[before[camera]:] if k.header.stamp.sec == sec]
                     for camera, client in self.clients.items()}
            return {camera: k[0] for camera, k in found.items()} if all(found.values()) else None

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for camera, message in frames.items():
                self.clients[camera].image_pub.publish(message)
            if spin_until(self.node, answered, min(3.0, max(0.0, deadline - time.monotonic()))):
                return answered()  # type: ignore[return-value]
        raise AssertionError(f"no keypoints from both cameras for the frames of second {sec}")

    def unpaired(self) -> int:
        return int(value(self.clients["left"].status(NODE), "unpaired_frames"))


@pytest.fixture
def rig(node_process: NodeProcess, test_node: Node) -> Rig:
    rig = Rig(test_node)
    assert spin_until(test_node, lambda: all(c.image_pub.get_subscription_count() for c in rig.clients.values()), 20)
    return rig


def test_a_pair_keeps_each_cameras_own_stamp_and_keypoints_and_one_set_stamp(rig: Rig) -> None:
    first = rig.send({"left": rig.frame("left", SCENES[0], 10), "right": rig.frame("right", SCENES[1], 10, 2_000_000)})
    for camera, nanosec in (("left", 0), ("right", 2_000_000)):
        keypoints = first[camera]
        assert keypoints.header.frame_id == f"{camera}_optical_frame"
        assert (keypoints.header.stamp.sec, keypoints.header.stamp.nanosec) == (10, nanosec), "its own image's stamp"
        assert (keypoints.set_stamp.sec, keypoints.set_stamp.nanosec) == (10, 0), "the set's stamp: the left camera's"
    # The scenes swapped between the cameras: each camera's keypoints follow its own image.
    second = rig.send({"left": rig.frame("left", SCENES[1], 11), "right": rig.frame("right", SCENES[0], 11)})
    arrays = {(pair, camera): message_to_arrays(keypoints)["keypoints"]
              for pair, found in (("first", first), ("second", second)) for camera, keypoints in found.items()}
    for scene_a, scene_b in ((("first", "left"), ("second", "right")), (("first", "right"), ("second", "left"))):
        matched, _ = match_keypoints(arrays[scene_a], arrays[scene_b])
        assert len(matched) >= 0.95 * len(arrays[scene_a]), f"{scene_a} and {scene_b} saw the same image"
    matched, _ = match_keypoints(arrays["first", "left"], arrays["first", "right"])
    assert len(matched) < 0.5 * len(arrays["first", "left"]), "two different images give different keypoints"


def test_each_camera_keeps_its_intrinsics(rig: Rig) -> None:
    info = CameraInfo(width=160, height=120, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[150.0, 0, 80, 0, 150, 60, 0, 0, 1])
    deadline = time.monotonic() + 30
    sec = 20
    while not any(m.header.stamp.sec >= 20 for m in rig.camera_info_out):
        assert time.monotonic() < deadline, "the right camera's camera_info was never republished"
        rig.camera_info_pub.publish(info)
        rig.send({camera: rig.frame(camera, SCENES[0], sec) for camera in CAMERAS})
        sec += 1
    republished = next(m for m in rig.camera_info_out if m.header.stamp.sec >= 20)
    assert republished.header.frame_id == "right_optical_frame" and list(republished.k) == list(info.k)


def test_two_cameras_never_give_one_track_id_to_different_points(rig: Rig) -> None:
    ids: dict[str, set[int]] = {camera: set() for camera in CAMERAS}
    for sec in range(50, 54):  # different scenes per camera: no point is seen by both
        pair = rig.send({"left": rig.frame("left", SCENES[0], sec), "right": rig.frame("right", SCENES[1], sec)})
        for camera, keypoints in pair.items():
            ids[camera] |= set(message_to_arrays(keypoints)["track_ids"].tolist())
    assert ids["left"] and ids["right"]
    assert not ids["left"] & ids["right"], "one id sequence for the whole node"


def test_a_silent_camera_is_a_warning_then_an_error_with_per_camera_rates(rig: Rig) -> None:
    left = rig.clients["left"]

    def send_left_only() -> None:
        left.image_pub.publish(rig.frame("left", SCENES[0], 60))

    status = left.wait_status(NODE, lambda s: "no input from right" in s.message and s.level == b"\x02", 30,
                              send_left_only)
    assert "silence_error 2 s" in status.message and "left" not in status.message.split(";")[0]
    assert float(value(status, "camera_rate_hz.left")) > float(value(status, "camera_rate_hz.right"))
    # Shown to 0.1 s: an ERROR past 2 s may read 2.0.
    assert float(value(status, "camera_silent_s.right")) >= 2.0 > float(value(status, "camera_silent_s.left"))
    pair = rig.send({camera: rig.frame(camera, SCENES[0], 61) for camera in CAMERAS})
    assert pair["right"].header.stamp.sec == 61
    left.wait_status(NODE, lambda s: "no input" not in s.message, 30)


def test_frames_without_a_partner_are_counted_and_never_published(rig: Rig) -> None:
    before = rig.unpaired()
    lonely = rig.frame("left", SCENES[0], 30)
    rig.clients["left"].image_pub.publish(lonely)
    # 8 ms apart, above the 5 ms tolerance: neither frame can be paired.
    rig.clients["left"].image_pub.publish(rig.frame("left", SCENES[0], 31))
    rig.clients["right"].image_pub.publish(rig.frame("right", SCENES[1], 31, 8_000_000))
    pair = rig.send({camera: rig.frame(camera, SCENES[0], 32) for camera in CAMERAS})
    assert pair["left"].header.stamp.sec == 32
    published_seconds = {k.header.stamp.sec for client in rig.clients.values() for k in client.keypoints}
    assert not published_seconds & {30, 31}
    # Best effort input may lose some of the three: only those that arrived are counted.
    assert spin_until(rig.node, lambda: rig.unpaired() > before, 10), "unpaired frames are counted"
    status = rig.clients["left"].status(NODE)
    assert value(status, "cameras") == "left, right"


def test_the_tolerance_can_be_raised_at_runtime(rig: Rig) -> None:
    client = rig.clients["left"]
    assert client.set_parameters(f"{NODE}/set_parameters", sync_tolerance=0.02) == [(True, "")]
    try:
        pair = rig.send({"left": rig.frame("left", SCENES[0], 40), "right": rig.frame("right", SCENES[1], 40, 10_000_000)})
        assert pair["right"].header.stamp.nanosec == 10_000_000 and pair["right"].set_stamp == pair["left"].header.stamp
    finally:
        assert client.set_parameters(f"{NODE}/set_parameters", sync_tolerance=0.005) == [(True, "")]
    refused = client.set_parameters(f"{NODE}/set_parameters", cameras="left")
    assert refused[0][0] is False


def test_stereo_ids_give_the_right_camera_s_points_their_left_partners_ids(rig: Rig) -> None:
    """stereo_ids:=true with a calibrated rig (the right camera 0.1 m to the right): the same scene in both
    cameras (zero disparity) puts most right points under the id of the left point they show."""
    client = rig.clients["left"]
    left_info_pub = rig.node.create_publisher(CameraInfo, f"/{NAMESPACE}/left/camera_info", qos_profile_sensor_data)
    left_info = CameraInfo(width=160, height=120, distortion_model="plumb_bob", d=[0.0] * 5,
                           k=[150.0, 0, 80, 0, 150, 60, 0, 0, 1], p=[150.0, 0, 80, 0, 0, 150, 60, 0, 0, 0, 1, 0])
    right_info = CameraInfo(width=160, height=120, distortion_model="plumb_bob", d=[0.0] * 5,
                            k=[150.0, 0, 80, 0, 150, 60, 0, 0, 1], p=[150.0, 0, 80, -15.0, 0, 150, 60, 0, 0, 0, 1, 0])
    assert client.set_parameters(f"{NODE}/set_parameters", stereo_ids=True) == [(True, "")]
    try:
        shared = []
        for sec in (70, 71, 72):
            for _ in range(3):  # best effort, like the images
                left_info_pub.publish(left_info)
                rig.camera_info_pub.publish(right_info)
                spin_until(rig.node, lambda: False, 0.1)
            pair = rig.send({camera: rig.frame(camera, SCENES[0], sec) for camera in CAMERAS})
            left_ids = set(message_to_arrays(pair["left"])["track_ids"].tolist())
            right_ids = message_to_arrays(pair["right"])["track_ids"]
            shared.append(np.isin(right_ids, list(left_ids)).mean())
        assert shared[-1] >= 0.5, shared
    finally:
        assert client.set_parameters(f"{NODE}/set_parameters", stereo_ids=False) == [(True, "")]
