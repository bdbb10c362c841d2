"""r2d2_node in its own process, driven over real DDS."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from r2d2_ros.msg import Keypoints
from r2d2_ros.ros.messages import message_to_arrays
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from .conftest import FAST_PARAMETERS, NodeProcess, spin_until

HEIGHT, WIDTH = 120, 160


def _grey_frame() -> np.ndarray:
    rng = np.random.default_rng(3)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8), (5, 5), 0)
    return frame


GREY = _grey_frame()
RGB = np.dstack([GREY] * 3)


def _image(encoding: str, pixels: np.ndarray, step: int | None = None, stamp: int = 0, data: bytes | None = None,
           frame_id: str = "camera_optical_frame", height: int = HEIGHT, width: int = WIDTH) -> Image:
    payload = np.ascontiguousarray(pixels).tobytes() if data is None else data
    message = Image(height=height, width=width, encoding=encoding, is_bigendian=0,
                    step=step if step is not None else len(payload) // max(height, 1))
    message.header.frame_id = frame_id
    message.header.stamp.sec = stamp
    message.data = payload
    return message


# The same grey picture in every encoding that can carry it losslessly.
EQUIVALENT = {
    "mono8": _image("mono8", GREY),
    "8UC1": _image("8UC1", GREY),
    "rgb8": _image("rgb8", RGB),
    "bgr8": _image("bgr8", RGB),
    "rgba8": _image("rgba8", np.dstack([RGB, np.zeros_like(GREY)])),
    "bgra8": _image("bgra8", np.dstack([RGB, np.zeros_like(GREY)])),
    "mono16": _image("mono16", GREY.astype("<u2") * 257),
    "16UC1": _image("16UC1", GREY.astype("<u2") * 257),
    "32FC1": _image("32FC1", (GREY / 255.0).astype("<f4")),
}


class Client:
    """The test's side: publishes images, collects the node's outputs."""

    def __init__(self, node: Node, prefix: str = "") -> None:
        self.node = node
        self.keypoints: list[Keypoints] = []
        self.heatmaps: dict[str, list[Image]] = {"heatmap/repeatability": [], "heatmap/reliability": [],
                                                 "keypoints/image": []}
        self.diagnostics: list[DiagnosticArray] = []
        self.image_pub = node.create_publisher(Image, f"{prefix}image", qos_profile_sensor_data)
        self.compressed_pub = node.create_publisher(CompressedImage, f"{prefix}image/compressed",
                                                    qos_profile_sensor_data)
        node.create_subscription(Keypoints, f"{prefix}keypoints", self.keypoints.append, QoSProfile(depth=100))
        for topic, store in self.heatmaps.items():
            node.create_subscription(Image, f"{prefix}{topic}", store.append, QoSProfile(depth=10))
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, QoSProfile(depth=10))

    def _publish(self, message: Image | CompressedImage) -> None:
        (self.compressed_pub if isinstance(message, CompressedImage) else self.image_pub).publish(message)

    def send(self, message: Image | CompressedImage, timeout_s: float = 30.0) -> Keypoints | None:
        """Publishes a frame until the keypoints stamped like it come back (None after the timeout).

        The input is best effort (sensor-data QoS), so a frame sent while discovery is still
        settling can be lost: it is sent again every few seconds.
        """
        before = len(self.keypoints)
        stamp = message.header.stamp.sec
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._publish(message)
            if spin_until(self.node, lambda: any(k.header.stamp.sec == stamp for k in self.keypoints[before:]),
                          min(3.0, max(0.0, deadline - time.monotonic()))):
                return next(k for k in self.keypoints[before:] if k.header.stamp.sec == stamp)
        return None

    def send_bad(self, message: Image | CompressedImage, node_name: str, cause: str) -> None:
        """Publishes an invalid frame until the node counts it as dropped for ``cause``; no keypoints may come."""
        before_count = self.dropped(node_name).get(cause, 0)
        before = len(self.keypoints)
        deadline = time.monotonic() + 30
        while self.dropped(node_name).get(cause, 0) <= before_count:
            assert time.monotonic() < deadline, f"the node never counted a '{cause}' drop"
            self._publish(message)
            spin_until(self.node, lambda: False, 1.0)
        stamp = message.header.stamp.sec
        assert not any(k.header.stamp.sec == stamp for k in self.keypoints[before:]), "keypoints for a bad frame"

    def dropped(self, node_name: str) -> dict[str, int]:
        """The node's latest dropped_* counters from /diagnostics."""
        self.diagnostics.clear()
        spin_until(self.node, lambda: any(s.name.startswith(node_name) for d in self.diagnostics for s in d.status),
                   timeout_s=5)
        status = [s for d in self.diagnostics for s in d.status if s.name.startswith(node_name)][-1]
        return {kv.key[len("dropped_"):]: int(kv.value) for kv in status.values if kv.key.startswith("dropped_")}

    def set_parameters(self, service: str, **values: object) -> list[tuple[bool, str]]:
        client = self.node.create_client(SetParameters, service)
        assert client.wait_for_service(timeout_sec=10)
        request = SetParameters.Request()
        for name, value in values.items():
            if isinstance(value, bool):
                parameter_value = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
            elif isinstance(value, int):
                parameter_value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
            elif isinstance(value, float):
                parameter_value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
            else:
                parameter_value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(value))
            request.parameters.append(Parameter(name=name, value=parameter_value))
        future = client.call_async(request)
        assert spin_until(self.node, future.done, timeout_s=10)
        self.node.destroy_client(client)
        return [(result.successful, result.reason) for result in future.result().results]


@pytest.fixture(scope="module")
def node_process(random_checkpoint: Path) -> Iterator[NodeProcess]:
    process = NodeProcess({**FAST_PARAMETERS, "model": random_checkpoint, "diagnostics_period": 0.2})
    process.wait_ready()
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture
def client(node_process: NodeProcess, test_node: Node) -> Client:
    client = Client(test_node)
    assert spin_until(test_node, lambda: client.image_pub.get_subscription_count() > 0, 20)
    return client


class TestOutputs:
    def test_header_passes_through_and_top_k_holds(self, client: Client) -> None:
        keypoints = client.send(_image("mono8", GREY, stamp=11, frame_id="front_camera_optical"))
        assert keypoints is not None
        assert keypoints.header.frame_id == "front_camera_optical" and keypoints.header.stamp.sec == 11
        assert 0 < keypoints.count <= FAST_PARAMETERS["top_k"]
        assert (keypoints.image_width, keypoints.image_height) == (WIDTH, HEIGHT)
        arrays = message_to_arrays(keypoints)
        assert arrays["descriptors"].shape == (keypoints.count, 128)
        assert np.allclose(np.linalg.norm(arrays["descriptors"], axis=1), 1, atol=1e-4)
        assert np.all(np.diff(arrays["scores"]) <= 0)
        assert keypoints.model_name == "random_n16"

    def test_heatmaps_and_overlay_have_the_image_size_and_header(self, client: Client) -> None:
        spin_until(client.node, lambda: False, 1.0)  # let the node see the heatmap subscriptions
        client.send(_image("mono8", GREY, stamp=12))
        assert spin_until(client.node, lambda: all(client.heatmaps.values()), 10)
        for topic, images in client.heatmaps.items():
            image = images[-1]
            assert (image.height, image.width, image.encoding) == (HEIGHT, WIDTH, "rgb8"), topic
            assert image.header.stamp.sec == 12 and image.header.frame_id == "camera_optical_frame"

    def test_equivalent_encodings_give_identical_keypoints(self, client: Client) -> None:
        results = {}
        for stamp, (encoding, message) in enumerate(EQUIVALENT.items(), start=100):
            message.header.stamp.sec = stamp
            keypoints = client.send(message)
            assert keypoints is not None, f"{encoding}: no keypoints"
            results[encoding] = message_to_arrays(keypoints)["keypoints"]
        for encoding, keypoints in results.items():
            np.testing.assert_allclose(keypoints, results["mono8"], atol=1e-4, err_msg=encoding)

    @pytest.mark.parametrize("encoding", ["bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8"])
    def test_bayer_frames_are_processed(self, client: Client, encoding: str) -> None:
        assert client.send(_image(encoding, GREY, stamp=200)) is not None

    @pytest.mark.parametrize(("encoding", "width_bytes"), [("yuv422", 2), ("yuv422_yuy2", 2), ("uyvy", 2), ("yuyv", 2)])
    def test_yuv_frames_are_processed(self, client: Client, encoding: str, width_bytes: int) -> None:
        packed = np.full((HEIGHT, WIDTH * width_bytes), 128, np.uint8)
        packed[:, 1::2] = GREY  # luma on odd bytes (UYVY); either way a valid frame
        assert client.send(_image(encoding, packed, stamp=201)) is not None

    def test_padded_rows_are_handled(self, client: Client) -> None:
        padded = np.hstack([GREY, np.full((HEIGHT, 32), 255, np.uint8)])
        with_padding = client.send(_image("mono8", padded, step=WIDTH + 32, stamp=202))
        without = client.send(_image("mono8", GREY, stamp=203))
        np.testing.assert_allclose(message_to_arrays(with_padding)["keypoints"],
                                   message_to_arrays(without)["keypoints"])


class TestBadInput:
    @pytest.mark.parametrize(
        ("message", "cause"),
        [
            (_image("rgb16", RGB, stamp=300), "encoding"),
            (_image("mono8", GREY, step=WIDTH - 1, stamp=301, data=GREY.tobytes()), "size"),
            (_image("mono8", GREY, step=WIDTH, stamp=302, data=GREY.tobytes()[:-100]), "size"),
            (_image("mono8", GREY, step=0, stamp=303, data=b"", height=0, width=0), "size"),
        ],
    )
    def test_dropped_counted_and_node_keeps_serving(self, client: Client, message: Image, cause: str) -> None:
        client.send_bad(message, "r2d2_node", cause)
        assert client.send(_image("mono8", GREY, stamp=message.header.stamp.sec + 50)) is not None


class TestParameters:
    def test_update_applies_without_restart(self, client: Client) -> None:
        assert client.set_parameters("/r2d2_node/set_parameters", top_k=7) == [(True, "")]
        try:
            keypoints = client.send(_image("mono8", GREY, stamp=400))
            assert keypoints.count == 7
        finally:
            client.set_parameters("/r2d2_node/set_parameters", top_k=FAST_PARAMETERS["top_k"])

    def test_descriptor_encoding_update(self, client: Client) -> None:
        assert client.set_parameters("/r2d2_node/set_parameters", descriptor_encoding="uint8") == [(True, "")]
        try:
            keypoints = client.send(_image("mono8", GREY, stamp=401))
            assert keypoints.descriptor_encoding == Keypoints.ENCODING_UINT8
            assert len(keypoints.descriptors) == keypoints.count * 128
        finally:
            client.set_parameters("/r2d2_node/set_parameters", descriptor_encoding="float32")

    @pytest.mark.parametrize(
        ("values", "reason"),
        [
            ({"top_k": 0}, "top_k"),
            ({"min_size": 5000}, "min_size <= max_size"),
            ({"precision": "int8"}, "precision"),
            ({"device": "cuda:9"}, "cuda"),
            ({"model": "/nonexistent/model.pt"}, "no such file"),
            ({"use_compressed": True}, "read-only"),
        ],
    )
    def test_invalid_update_is_rejected_with_reason(self, client: Client, values: dict, reason: str) -> None:
        [(successful, message)] = client.set_parameters("/r2d2_node/set_parameters", **values)
        assert not successful and reason in message
        assert client.send(_image("mono8", GREY, stamp=402)).count == FAST_PARAMETERS["top_k"]


def test_overload_keeps_latency_bounded_and_memory_flat(node_process: NodeProcess, client: Client) -> None:
    """Frames arrive far faster than the node processes them: it must drop, not queue."""
    assert client.send(_image("mono8", GREY, stamp=500)) is not None
    rss_before = node_process.rss_kib()
    start = len(client.keypoints)
    sent_at: dict[int, float] = {}
    for stamp in range(1000, 1300):  # ~300 frames as fast as the test can publish
        client.image_pub.publish(_image("mono8", GREY, stamp=stamp))
        sent_at[stamp] = time.monotonic()
        if stamp % 20 == 0:
            spin_until(client.node, lambda: False, 0.01)
    spin_until(client.node, lambda: any(k.header.stamp.sec == 1299 for k in client.keypoints[start:]), 20)
    received = client.keypoints[start:]
    assert received and received[-1].header.stamp.sec == 1299, "the newest frame is always processed"
    assert len(received) < 300, "frames were queued instead of dropped"
    assert client.dropped("r2d2_node").get("superseded", 0) > 0
    rss_after = node_process.rss_kib()
    assert rss_after < rss_before * 1.2 + 20_000, (rss_before, rss_after)


def test_compressed_input_and_broken_jpeg(random_checkpoint: Path, test_node: Node) -> None:
    node = NodeProcess({**FAST_PARAMETERS, "model": random_checkpoint, "use_compressed": True,
                        "diagnostics_period": 0.2}, name="r2d2_compressed", namespace="compressed")
    try:
        node.wait_ready()
        client = Client(test_node, prefix="compressed/")
        assert spin_until(test_node, lambda: client.compressed_pub.get_subscription_count() > 0, 20)
        ok, jpeg = cv2.imencode(".jpg", GREY)
        good = CompressedImage(format="jpeg", data=jpeg.tobytes())
        good.header.stamp.sec = 600
        assert client.send(good) is not None
        broken = CompressedImage(format="jpeg", data=jpeg.tobytes()[:50])
        broken.header.stamp.sec = 601
        client.send_bad(broken, "r2d2_compressed", "decode")
        good.header.stamp.sec = 602
        assert client.send(good) is not None
    finally:
        assert node.stop() == 0, node.log()


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"model": "/nonexistent/model.pt"}, "no such file"),
        ({"device": "cuda:7"}, "no CUDA GPU"),
        ({"top_k": -1}, "invalid parameter top_k"),
        ({"top_k": "many"}, "invalid parameter top_k"),
        ({"precision": "int8"}, "precision must be one of"),
    ],
)
def test_bad_start_up_is_one_clear_error_and_nonzero_exit(random_checkpoint: Path, parameters: dict,
                                                           message: str) -> None:
    process = NodeProcess({**FAST_PARAMETERS, "model": random_checkpoint, **parameters}, name="r2d2_bad")
    code = process.process.wait(timeout=60)
    log = process.log()
    process.stop()
    assert code != 0 and message in log, log
    assert "Traceback" not in log and log.count("cannot start") == 1, log


def test_starts_on_the_bundled_model_without_parameters(test_node: Node) -> None:
    from r2d2_ros.weights import DEFAULT_MODEL

    if not DEFAULT_MODEL.is_file():
        pytest.fail(f"the bundled default model {DEFAULT_MODEL} is missing")
    parameters = {key: value for key, value in FAST_PARAMETERS.items() if key != "top_k"}
    node = NodeProcess(parameters, name="r2d2_default", namespace="default_model")
    try:
        node.wait_ready()
        assert "model r2d2_ros_default" in node.log()
        client = Client(test_node, prefix="default_model/")
        assert spin_until(test_node, lambda: client.image_pub.get_subscription_count() > 0, 20)
        keypoints = client.send(_image("mono8", GREY, stamp=700))
        assert keypoints is not None and keypoints.model_name == "r2d2_ros_default" and keypoints.count > 0
    finally:
        assert node.stop() == 0, node.log()
