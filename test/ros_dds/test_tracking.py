"""Tracking, intrinsics and rectified keypoints of r2d2_node, over real DDS."""
from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from r2d2_ros.conversions.keypoints_message import message_to_arrays
from r2d2_ros.tracking import CameraModel, rectify_points
from r2d2_ros.weights import DEFAULT_MODEL
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo

from .client import value, Client, image_message
from .conftest import FAST_PARAMETERS, NodeProcess, spin_until

NAMESPACE = "tracked_camera"
K = [150.0, 0, 80, 0, 150, 60, 0, 0, 1]


@pytest.fixture(scope="module")
def node_process() -> Iterator[NodeProcess]:
    # The bundled network: a random one's descriptors are too alike for guided search to pick the true
    # match among look-alikes on the same epipolar line (7% of the steps wrong at 3 px in this scene).
    process = NodeProcess({**FAST_PARAMETERS, "model": str(DEFAULT_MODEL), "diagnostics_period": 0.2,
                           "tracking": True, "track_max_distance": 0.5, "track_ransac_px": 2.0},
                          namespace=NAMESPACE)
    process.wait_ready()
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture
def client(node_process: NodeProcess, test_node: Node) -> Client:
    client = Client(test_node, prefix=f"/{NAMESPACE}/")
    assert spin_until(test_node, lambda: client.image_pub.get_subscription_count() > 0, 20)
    return client


def _panning_frames(count: int, step: int) -> list[np.ndarray]:
    """120x160 views of a wider scene, moving ``step`` px right per frame (image content moves left)."""
    rng = np.random.default_rng(5)
    scene = cv2.GaussianBlur(rng.integers(0, 256, (120, 160 + step * count), dtype=np.uint8), (5, 5), 0)
    return [np.ascontiguousarray(scene[:, step * i : step * i + 160]) for i in range(count)]


def _camera_info(stamp: int) -> CameraInfo:
    info = CameraInfo(width=160, height=120, distortion_model="plumb_bob", d=[-0.2, 0.05, 0.0, 0.0, 0.0], k=K,
                      r=[1.0, 0, 0, 0, 1, 0, 0, 0, 1], p=[150.0, 0, 80, 0, 0, 150, 60, 0, 0, 0, 1, 0])
    info.header.stamp.sec = stamp
    return info


@pytest.mark.parametrize(("guided_radius", "mode"), [(0.0, "descriptor"), (8.0, "descriptor"), (0.0, "flow")],
                         ids=["mutual", "guided", "flow"])
def test_track_ids_persist_over_a_panning_camera(client: Client, guided_radius: float, mode: str) -> None:
    node_name = f"/{NAMESPACE}/r2d2_node"
    assert client.set_parameters(f"{node_name}/set_parameters", track_guided_radius=guided_radius,
                                 track_mode=mode) == [(True, "")] * 2
    step = 3
    arrays = []
    try:
        for index, frame in enumerate(_panning_frames(4, step)):
            first_stamp = 3000 if mode == "flow" else 2000 if guided_radius else 1000
            keypoints = client.send(image_message("mono8", frame, stamp=first_stamp + index))
            assert keypoints is not None
            arrays.append(message_to_arrays(keypoints))
    finally:
        client.set_parameters(f"{node_name}/set_parameters", track_guided_radius=0.0, track_mode="descriptor")
    assert (arrays[0]["track_lengths"] == 1).all() and len(np.unique(arrays[0]["track_ids"])) == len(arrays[0]["track_ids"])
    first_position = dict(zip(arrays[0]["track_ids"].tolist(), arrays[0]["keypoints"][:, :2]))
    last = arrays[-1]
    full = last["track_lengths"] == 4
    assert full.sum() >= 0.3 * len(last["track_ids"]), "most keypoints are tracked through all four frames"
    moved = np.array([first_position[i] - p for i, p in zip(last["track_ids"][full].tolist(), last["keypoints"][full, :2])])
    with_the_scene = (np.abs(moved - [3 * step, 0]) <= 1.0).all(axis=1)
    # The network can also fire on the zero padding at the image border, the same in every frame,
    # and a wrong match along the motion stays on its epipolar line: RANSAC cannot see either.
    at_border = (last["keypoints"][full, 0] < 8) | (last["keypoints"][full, 0] > 160 - 8)
    assert with_the_scene[~at_border].mean() >= 0.95, moved[~(with_the_scene | at_border)]
    assert with_the_scene.sum() >= 0.25 * len(last["track_ids"])
    new = last["track_lengths"] == 1
    assert not set(last["track_ids"][new].tolist()) & set(first_position), "new tracks get new ids"


def test_rectified_keypoints_need_camera_info(client: Client, test_node: Node) -> None:
    node_name = f"/{NAMESPACE}/r2d2_node"
    frame = _panning_frames(1, 3)[0]
    # Every detection published (track_max_points 0): a kept subset would space its points by 4 px in the
    # coordinates it tracks in, rectified or raw, so the two sets could differ by a point or two.
    assert client.set_parameters(f"{node_name}/set_parameters", rectify_keypoints=True,
                                 track_max_points=0) == [(True, "")] * 2
    try:
        client.send_bad(image_message("mono8", frame, stamp=1100), node_name, "no_camera_info")
        info_pub = test_node.create_publisher(CameraInfo, f"/{NAMESPACE}/camera_info", qos_profile_sensor_data)
        republished: list[CameraInfo] = []
        test_node.create_subscription(CameraInfo, f"/{NAMESPACE}/keypoints/camera_info", republished.append,
                                      QoSProfile(depth=10))
        rectified = None
        for attempt in range(10):  # camera_info is best effort, like the images: resend until it is there
            info_pub.publish(_camera_info(1101))
            spin_until(test_node, lambda: False, 0.2)
            rectified = client.send(image_message("mono8", frame, stamp=1102 + attempt), timeout_s=5)
            if rectified is not None:
                break
        assert rectified is not None and rectified.rectified
        assert spin_until(test_node, lambda: any(i.header.stamp.sec == rectified.header.stamp.sec for i in republished), 10)
    finally:
        client.set_parameters(f"{node_name}/set_parameters", rectify_keypoints=False)
    try:
        raw = client.send(image_message("mono8", frame, stamp=1200))
    finally:
        client.set_parameters(f"{node_name}/set_parameters", track_max_points=1000)
    assert not raw.rectified
    camera = CameraModel.from_camera_info(_camera_info(0))
    raw_points = message_to_arrays(raw)["keypoints"][:, :2]
    rectified_points = message_to_arrays(rectified)["keypoints"][:, :2]
    np.testing.assert_allclose(rectified_points, rectify_points(raw_points, camera), atol=1e-3)
    assert np.abs(rectified_points - raw_points).max() > 1, "the lens distortion moved the keypoints"


def test_intrinsics_must_fit_the_image_and_the_one_used_is_republished(client: Client, test_node: Node) -> None:
    """A camera_info of another size (a resized stream) is a counted drop, never rectified with the wrong model;
    a binned one (320x240 sensor, binning 2) is honoured and republished fitted to the 160x120 image."""
    node_name = f"/{NAMESPACE}/r2d2_node"
    frame = _panning_frames(1, 3)[0]
    info_pub = test_node.create_publisher(CameraInfo, f"/{NAMESPACE}/camera_info", qos_profile_sensor_data)
    republished: list[CameraInfo] = []
    test_node.create_subscription(CameraInfo, f"/{NAMESPACE}/keypoints/camera_info", republished.append,
                                  QoSProfile(depth=10))
    restarts_before = int(value(client.status(node_name), "tracks_restarted"))
    assert client.set_parameters(f"{node_name}/set_parameters", rectify_keypoints=True) == [(True, "")]
    try:
        # The camera_info of each frame (same stamp) is of the full sensor, unbinned: not this image's model.
        # It is the frame's own, so an older one that would fit does not stand in for it.
        full_size = _camera_info(1301)
        full_size.width, full_size.height = 320, 240
        for _ in range(3):  # best effort, like the images
            info_pub.publish(full_size)
            spin_until(test_node, lambda: False, 0.1)
        client.send_bad(image_message("mono8", frame, stamp=1301), node_name, "camera_info_mismatch")
        binned = _camera_info(1310)
        binned.width, binned.height, binned.binning_x, binned.binning_y = 320, 240, 2, 2
        binned.k = [300.0, 0, 160, 0, 300, 120, 0, 0, 1]
        binned.p = [300.0, 0, 160, 0, 0, 300, 120, 0, 0, 0, 1, 0]
        rectified = None
        for attempt in range(10):  # best effort, like the images: resend until it is there
            info_pub.publish(binned)
            spin_until(test_node, lambda: False, 0.2)
            rectified = client.send(image_message("mono8", frame, stamp=1311 + attempt), timeout_s=5)
            if rectified is not None:
                break
        assert rectified is not None and rectified.rectified
        assert spin_until(test_node, lambda: any(i.header.stamp == rectified.header.stamp for i in republished), 10)
        used = next(i for i in republished if i.header.stamp == rectified.header.stamp)
        assert (used.width, used.height, used.binning_x, used.binning_y) == (160, 120, 0, 0)
        assert list(used.k) == K, "K of the binned image: the sensor's divided by 2"
    finally:
        client.set_parameters(f"{node_name}/set_parameters", rectify_keypoints=False)
    raw = client.send(image_message("mono8", frame, stamp=1400))
    assert raw is not None and not raw.rectified
    status = client.status(node_name)
    assert int(value(status, "tracks_restarted")) >= restarts_before + 2, "rectification on, then off: tracks restart"


def test_max_points_publishes_the_tracked_points_first(client: Client) -> None:
    node_name = f"/{NAMESPACE}/r2d2_node"
    assert client.set_parameters(f"{node_name}/set_parameters", track_max_points=40) == [(True, "")]
    try:
        arrays = [message_to_arrays(client.send(image_message("mono8", frame, stamp=1300 + index)))
                  for index, frame in enumerate(_panning_frames(4, 3))]
    finally:
        client.set_parameters(f"{node_name}/set_parameters", track_max_points=0)
    assert [len(a["track_ids"]) for a in arrays] == [40] * 4, "top_k 200 detections, 40 kept per frame"
    assert (arrays[0]["track_lengths"] == 1).all(), "changing the setting restarts the tracks"
    scores = arrays[-1]["scores"]
    assert np.all(np.diff(scores) <= 0), "the kept keypoints stay best first"
    previous_ids = set(arrays[-2]["track_ids"].tolist())
    continued = arrays[-1]["track_lengths"] >= 2
    assert continued.mean() >= 0.5 and set(arrays[-1]["track_ids"][continued].tolist()) <= previous_ids


def test_a_point_hidden_for_two_frames_keeps_its_id_in_flow_mode(client: Client) -> None:
    """A flat patch covers the image's centre in frames 2 and 3 of a pan; in frame 4 the points it hid go on
    under the ids they had in frame 1 (flowed from frame 1's image, confirmed by their descriptors)."""
    node_name = f"/{NAMESPACE}/r2d2_node"
    assert client.set_parameters(f"{node_name}/set_parameters", track_mode="flow") == [(True, "")]
    step, patch = 3, (slice(25, 95), slice(45, 115))  # rows, columns of the patch (70x70 px, image centre)
    arrays = []
    try:
        for index, frame in enumerate(_panning_frames(5, step)):
            if index in (2, 3):
                frame = frame.copy()
                frame[patch] = 128
            keypoints = client.send(image_message("mono8", frame, stamp=4000 + index))
            assert keypoints is not None
            arrays.append(message_to_arrays(keypoints))
    finally:
        client.set_parameters(f"{node_name}/set_parameters", track_mode="descriptor")
    before, after = arrays[1], arrays[4]
    x, y = before["keypoints"][:, 0], before["keypoints"][:, 1]
    # Inside the patch in frame 1 and still in it in frame 3 (two steps further left), farther from its edges
    # than half the flow's window (21 px), which would otherwise follow the texture beside the patch.
    margin = 12
    hidden = (y > patch[0].start + margin) & (y < patch[0].stop - margin) & \
        (x > patch[1].start + 2 * step + margin) & (x < patch[1].stop - margin)
    assert hidden.sum() >= 3, "the scene has points under the patch"
    assert not set(before["track_ids"][hidden].tolist()) & set(arrays[3]["track_ids"].tolist()), \
        "while hidden, no point carries their ids"
    position_after = dict(zip(after["track_ids"].tolist(), after["keypoints"][:, :2]))
    resumed = [track_id for track_id in before["track_ids"][hidden].tolist() if track_id in position_after]
    assert len(resumed) >= 0.3 * hidden.sum(), (len(resumed), hidden.sum())
    start = dict(zip(before["track_ids"].tolist(), before["keypoints"][:, :2]))
    moved = np.array([start[i] - position_after[i] for i in resumed])
    assert (np.abs(moved - [3 * step, 0]) <= 1.0).all(), "each resumed id names the point it named before"
