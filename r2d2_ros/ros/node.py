"""r2d2_node: camera images in; keypoints, descriptors and heatmaps out.

A thin adapter: image conversion, extraction, message filling, parameters and statistics
live in ROS-free modules; this file wires them to rclpy. Inference runs on a worker thread
that always takes the newest frame, so a slow device drops frames instead of queueing them.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ..device import resolve_device
from ..extraction import ExtractionConfig, extract_multiscale
from ..features import Features
from ..model import CheckpointError, R2D2Net, load_model, prepare_for_inference
from ..msg import Keypoints
from ..viz import colorize_heatmap, draw_keypoints
from ..weights import default_model_path
from .image_codec import ImageDecodeError, decode_compressed, decode_image
from .messages import DESCRIPTOR_ENCODINGS, features_to_message
from .params import PARAMETERS, ParamSpec, extraction_config, validate_update
from .pipeline import LatestFrameSlot, NodeStats

__all__ = ["R2D2Node", "StartupError", "main"]

_WARMUP_SHAPE = (240, 320, 3)


class StartupError(RuntimeError):
    """The node cannot start: bad model, device or parameters."""


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.choices:
        descriptor.additional_constraints = f"one of: {', '.join(spec.choices)}"
    if spec.minimum is not None and isinstance(spec.default, float):
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.minimum),
                                                              to_value=float(spec.maximum), step=0.0)]
    elif spec.minimum is not None and isinstance(spec.default, int) and not isinstance(spec.default, bool):
        descriptor.integer_range = [IntegerRange(from_value=int(spec.minimum), to_value=int(spec.maximum), step=1)]
    return descriptor


def _load(model_path: str, device_name: str) -> tuple[R2D2Net, torch.device, str]:
    """Loads and prepares a model; StartupError-friendly ValueError on any problem."""
    device = resolve_device(device_name)
    path = Path(model_path) if model_path else default_model_path()
    return prepare_for_inference(load_model(path, device)), device, path.stem


def _image_message(array: np.ndarray, header: Any) -> Image:
    message = Image(header=header, height=array.shape[0], width=array.shape[1], encoding="rgb8",
                    is_bigendian=0, step=array.shape[1] * 3)
    message.data = array.tobytes()
    return message


class R2D2Node(Node):
    """Publishes R2D2 keypoints for every image it can keep up with."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("r2d2_node", **kwargs)
        for spec in PARAMETERS:
            try:
                self.declare_parameter(spec.name, spec.default, _descriptor(spec))
            except ParameterException as error:  # out of range or wrong type on the command line
                raise StartupError(f"invalid parameter {spec.name}: {error}") from error
        self._values = {spec.name: spec.coerce(self.get_parameter(spec.name).value) for spec in PARAMETERS}
        reason = validate_update(self._values, {})
        if reason:
            raise StartupError(f"invalid parameters: {reason}")
        try:
            self._model, self._device, self._model_name = _load(self._values["model"], self._values["device"])
        except (ValueError, FileNotFoundError, CheckpointError) as error:
            raise StartupError(str(error)) from error
        self._config: ExtractionConfig = extraction_config(self._values)
        self._settings_lock = threading.Lock()
        self._warm_up()

        self._stats = NodeStats()
        self._slot: LatestFrameSlot[tuple[Any, float]] = LatestFrameSlot()
        output_qos = QoSProfile(depth=5)
        self._keypoints_pub = self.create_publisher(Keypoints, "keypoints", output_qos)
        self._repeatability_pub = self.create_publisher(Image, "heatmap/repeatability", output_qos)
        self._reliability_pub = self.create_publisher(Image, "heatmap/reliability", output_qos)
        self._overlay_pub = self.create_publisher(Image, "keypoints/image", output_qos)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        compressed = self._values["use_compressed"]
        self.create_subscription(
            CompressedImage if compressed else Image, "image/compressed" if compressed else "image",
            self._on_image, qos_profile_sensor_data,
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(self._values["diagnostics_period"], self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name="r2d2_inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: model {self._model_name} ({self._model.arch}) on {self._device}, {self._config.precision}, "
            f"subscribed to {'image/compressed' if compressed else 'image'}"
        )

    # --- start-up and parameters -------------------------------------------------------------

    def _warm_up(self) -> None:
        """Runs the network once so that the first real frame does not pay for kernel selection."""
        warm = self._config.replace(min_size=0)
        extract_multiscale(self._model, np.zeros(_WARMUP_SHAPE, np.uint8), warm).numpy()

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters}
        with self._settings_lock:
            reason = validate_update(self._values, changes)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            values = {**self._values, **{k: v for k, v in changes.items() if k in self._values}}
            values = {spec.name: spec.coerce(values[spec.name]) for spec in PARAMETERS}
            model = (self._model, self._device, self._model_name)
            if (values["model"], values["device"]) != (self._values["model"], self._values["device"]):
                try:
                    model = _load(values["model"], values["device"])
                except (ValueError, FileNotFoundError, CheckpointError) as error:
                    return SetParametersResult(successful=False, reason=str(error))
            self._model, self._device, self._model_name = model
            self._values, self._config = values, extraction_config(values)
        self.get_logger().info(f"parameters updated: {', '.join(sorted(changes))}")
        return SetParametersResult(successful=True)

    # --- frames ------------------------------------------------------------------------------

    def _on_image(self, message: Image | CompressedImage) -> None:
        self._stats.frame_received()
        if self._slot.put((message, time.monotonic())):
            self._stats.frame_dropped("superseded")

    def _work(self) -> None:
        while self.context.ok():
            item = self._slot.take(timeout=0.2)
            if item is None:
                continue
            try:
                self._process(*item)
            except Exception:
                if self.context.ok():
                    raise
                return  # shut down (Ctrl-C) mid-frame: there is nothing left to publish to

    def _decode(self, message: Image | CompressedImage) -> np.ndarray:
        if isinstance(message, CompressedImage):
            return decode_compressed(message.data)
        return decode_image(message.encoding, message.height, message.width, message.step, message.data,
                            bool(message.is_bigendian))

    def _process(self, message: Image | CompressedImage, received: float) -> None:
        try:
            image = self._decode(message)
        except ImageDecodeError as error:
            self._stats.frame_dropped(error.reason)
            self.get_logger().warning(f"dropped a frame: {error}", throttle_duration_sec=5.0)
            return
        with self._settings_lock:
            model, config, values, model_name = self._model, self._config, self._values, self._model_name
        want_heatmaps = self._repeatability_pub.get_subscription_count() + self._reliability_pub.get_subscription_count() > 0
        try:
            features = extract_multiscale(model, image, config, return_maps=want_heatmaps)
        except (RuntimeError, ValueError) as error:  # e.g. out of GPU memory on a huge frame
            self._stats.frame_dropped("inference_error")
            self.get_logger().error(f"extraction failed: {error}", throttle_duration_sec=5.0)
            return
        keypoints = features_to_message(features, Keypoints(header=message.header), model_name,
                                        DESCRIPTOR_ENCODINGS[values["descriptor_encoding"]])
        self._keypoints_pub.publish(keypoints)
        self._stats.frame_published(time.monotonic() - received)
        self._publish_pictures(message.header, image, features, values)

    def _publish_pictures(self, header: Any, image: np.ndarray, features: Features, values: dict[str, Any]) -> None:
        """Heatmaps and the overlay, built only for topics that someone subscribes to."""
        if features.maps is not None:
            for publisher, heatmap in ((self._repeatability_pub, features.maps.repeatability),
                                       (self._reliability_pub, features.maps.reliability)):
                if publisher.get_subscription_count():
                    picture = colorize_heatmap(heatmap.float().cpu().numpy(), values["heatmap_colormap"])
                    publisher.publish(_image_message(picture, header))
        if self._overlay_pub.get_subscription_count():
            limit = values["overlay_max_keypoints"]  # best first: download only what is drawn
            keypoints = features.keypoints[:limit].float().cpu().numpy()
            overlay = draw_keypoints(image, keypoints, features.scores[:limit].float().cpu().numpy())
            self._overlay_pub.publish(_image_message(overlay, header))

    # --- diagnostics and shutdown --------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        stats = self._stats.snapshot()
        bad_input = sum(count for cause, count in stats.dropped.items() if cause != "superseded")
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if bad_input else DiagnosticStatus.OK,
            name=f"{self.get_name()}: R2D2 extraction",
            message=f"{stats.output_rate_hz:.1f} Hz out of {stats.input_rate_hz:.1f} Hz in",
            hardware_id=str(self._device),
        )
        values = {
            "input_rate_hz": f"{stats.input_rate_hz:.2f}",
            "output_rate_hz": f"{stats.output_rate_hz:.2f}",
            "latency_mean_ms": f"{stats.latency_mean_ms:.1f}",
            "latency_max_ms": f"{stats.latency_max_ms:.1f}",
            "frames_received": str(stats.received),
            "frames_published": str(stats.published),
            "device": str(self._device),
            "model": self._model_name,
            "precision": self._config.precision,
            **{f"dropped_{cause}": str(count) for cause, count in sorted(stats.dropped.items())},
        }
        status.values = [KeyValue(key=key, value=value) for key, value in values.items()]
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diagnostics_pub.publish(DiagnosticArray(header=header, status=[status]))

    def stop(self) -> None:
        """Stops the worker thread."""
        self._slot.close()
        self._worker.join(timeout=5.0)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run r2d2_ros r2d2_node``; 1 when the node cannot start."""
    rclpy.init(args=args)
    node = None
    try:
        node = R2D2Node()
        rclpy.spin(node)
    except StartupError as error:
        rclpy.logging.get_logger("r2d2_node").fatal(f"cannot start: {error}")
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
