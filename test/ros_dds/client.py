"""The test's side of a node over DDS: frames to send, and a client that sends them and reads the outputs."""
from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from r2d2_ros.msg import Keypoints
from rclpy.node import Node
from rclpy.task import Future
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from .conftest import spin_until

HEIGHT, WIDTH = 120, 160


def _grey_frame() -> np.ndarray:
    rng = np.random.default_rng(3)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8), (5, 5), 0)
    return frame


GREY = _grey_frame()
RGB = np.dstack([GREY] * 3)


def _colour_frame() -> np.ndarray:
    """Three different channels: any swap of red and blue, or a grey conversion, changes the picture."""
    rng = np.random.default_rng(4)
    other = cv2.GaussianBlur(rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8), (9, 9), 0)
    ramp = np.tile(np.linspace(0, 255, WIDTH, dtype=np.uint8), (HEIGHT, 1))
    return np.dstack([GREY, other, ramp])


COLOUR = _colour_frame()


def image_message(encoding: str, pixels: np.ndarray, step: int | None = None, stamp: int = 0,
                  data: bytes | None = None, frame_id: str = "camera_optical_frame", height: int = HEIGHT,
                  width: int = WIDTH) -> Image:
    """An Image of ``pixels`` (or of raw ``data``) with the given header stamp (seconds)."""
    payload = np.ascontiguousarray(pixels).tobytes() if data is None else data
    message = Image(height=height, width=width, encoding=encoding, is_bigendian=0,
                    step=step if step is not None else len(payload) // max(height, 1))
    message.header.frame_id = frame_id
    message.header.stamp.sec = stamp
    message.data = payload
    return message


# The same grey picture in every encoding that can carry it losslessly.
EQUIVALENT = {
    "mono8": image_message("mono8", GREY),
    "8UC1": image_message("8UC1", GREY),
    "rgb8": image_message("rgb8", RGB),
    "bgr8": image_message("bgr8", RGB),
    "rgba8": image_message("rgba8", np.dstack([RGB, np.zeros_like(GREY)])),
    "bgra8": image_message("bgra8", np.dstack([RGB, np.zeros_like(GREY)])),
    "mono16": image_message("mono16", GREY.astype("<u2") * 257),
    "16UC1": image_message("16UC1", GREY.astype("<u2") * 257),
    "32FC1": image_message("32FC1", (GREY / 255.0).astype("<f4")),
}

# A colour picture in every encoding that carries it losslessly.
EQUIVALENT_COLOUR = {
    "rgb8": image_message("rgb8", COLOUR),
    "bgr8": image_message("bgr8", COLOUR[:, :, ::-1]),
    "rgba8": image_message("rgba8", np.dstack([COLOUR, np.full_like(GREY, 9)])),
    "bgra8": image_message("bgra8", np.dstack([COLOUR[:, :, ::-1], np.full_like(GREY, 9)])),
}


def level(status: DiagnosticStatus) -> str:
    """OK, WARN or ERROR."""
    return {DiagnosticStatus.OK: "OK", DiagnosticStatus.WARN: "WARN", DiagnosticStatus.ERROR: "ERROR"}.get(
        status.level, str(status.level))


def value(status: DiagnosticStatus, key: str) -> str:
    """One of a status's values."""
    return next(kv.value for kv in status.values if kv.key == key)


class Client:
    """The test's side: publishes images, collects the node's outputs."""

    def __init__(self, node: Node, prefix: str = "") -> None:
        self.node = node
        self.keypoints: list[Keypoints] = []
        self.heatmaps: dict[str, list[Image]] = {"keypoints/heatmap/repeatability": [], "keypoints/heatmap/reliability": [],
                                                 "keypoints/image": []}
        self.diagnostics: list[DiagnosticArray] = []
        self.image_pub = node.create_publisher(Image, f"{prefix}image", qos_profile_sensor_data)
        self.compressed_pub = node.create_publisher(CompressedImage, f"{prefix}image/compressed",
                                                    qos_profile_sensor_data)
        self.arrivals: dict[int, float] = {}  # stamp (seconds) -> when its keypoints arrived
        node.create_subscription(Keypoints, f"{prefix}keypoints", self._on_keypoints, QoSProfile(depth=100))
        for topic, store in self.heatmaps.items():
            node.create_subscription(Image, f"{prefix}{topic}", store.append, QoSProfile(depth=10))
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, QoSProfile(depth=10))

    def _on_keypoints(self, keypoints: Keypoints) -> None:
        self.keypoints.append(keypoints)
        self.arrivals.setdefault(keypoints.header.stamp.sec, time.monotonic())

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

    def status(self, node_name: str, timeout_s: float = 5.0) -> DiagnosticStatus:
        """The next /diagnostics status of the node whose fully qualified name is ``node_name``."""
        name = f"{node_name}: R2D2 extraction"
        self.diagnostics.clear()
        assert spin_until(self.node, lambda: any(s.name == name for d in self.diagnostics for s in d.status),
                          timeout_s), f"no /diagnostics status named {name!r}"
        return [s for d in self.diagnostics for s in d.status if s.name == name][-1]

    def wait_status(self, node_name: str, accept: Callable[[DiagnosticStatus], bool], timeout_s: float,
                    while_waiting: Callable[[], object] = lambda: None) -> DiagnosticStatus:
        """Polls the node's status until ``accept`` holds, calling ``while_waiting`` between polls."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status(node_name)
            if accept(status):
                return status
            assert time.monotonic() < deadline, f"status never accepted; last: {level(status)} {status.message}"
            while_waiting()

    def dropped(self, node_name: str) -> dict[str, int]:
        """The node's latest dropped_* counters from /diagnostics."""
        status = self.status(node_name)
        return {kv.key[len("dropped_"):]: int(kv.value) for kv in status.values if kv.key.startswith("dropped_")}

    def set_parameters_async(self, service: str, **values: object) -> Future:
        """Sends a SetParameters request; the future holds the response."""
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
        return client.call_async(request)

    def set_parameters(self, service: str, **values: object) -> list[tuple[bool, str]]:
        future = self.set_parameters_async(service, **values)
        assert spin_until(self.node, future.done, timeout_s=120)
        return [(result.successful, result.reason) for result in future.result().results]

    def get_parameter(self, node_name: str, name: str) -> object:
        """One parameter's value, read through the node's get_parameters service."""
        client = self.node.create_client(GetParameters, f"{node_name}/get_parameters")
        assert client.wait_for_service(timeout_sec=10)
        future = client.call_async(GetParameters.Request(names=[name]))
        assert spin_until(self.node, future.done, timeout_s=30)
        parameter = future.result().values[0]
        return {ParameterType.PARAMETER_STRING: parameter.string_value, ParameterType.PARAMETER_INTEGER:
                parameter.integer_value, ParameterType.PARAMETER_DOUBLE: parameter.double_value,
                ParameterType.PARAMETER_BOOL: parameter.bool_value}.get(parameter.type)
