"""r2d2_node: camera images in; keypoints, descriptors and heatmaps out.

A thin adapter: image conversion, extraction, message filling, parameters, statistics, health
and model loading live in ROS-free modules; this file wires them to rclpy. Inference runs on a
worker thread that always takes the newest frame, so a slow device drops frames instead of
queueing them. Whatever goes wrong with one frame drops that frame only (counted by cause); a
worker that stops anyway, or hangs in one frame for longer than ``hang_timeout``, makes /diagnostics
say ERROR and the process exit non-zero, so that a launch file's ``respawn`` restarts it.

With ``cameras: [left, right]`` one node serves a synchronised rig: each camera's frames come
from its own topics, are paired by stamp (:mod:`.camera_sync`), run through the network as one
batch, and are published under the camera's namespace with the stamp of the first camera.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterException, ParameterUninitializedException
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from ..extraction import ExtractionConfig, extract_multiscale_batch
from ..features import Features
from ..msg import Keypoints
from ..tracking import FrontEndResult, TrackerConfig, TrackingFrontEnd
from ..viz import colorize_heatmap, draw_keypoints, draw_tracks
from ..serving.health import assess_health, worker_hang
from ..conversions.image_codec import decode_message
from ..serving.inference import InferenceModel, ModelLoadError, load_inference_model, warm_up
from ..conversions.keypoints_message import DESCRIPTOR_ENCODINGS, features_to_message
from ..serving.params import PARAMETERS, ParamSpec, extraction_config, validate_update
from ..serving.camera_sync import StampSynchronizer
from ..serving.stats import UNPAIRED, FrameDropped, LatestFrameSlot, NodeStats, frame_stage

__all__ = ["R2D2Node", "StartupError", "main"]


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


def _fields(message: Any) -> dict[str, Any]:
    """A ROS message's fields by name (to copy it with one field changed)."""
    return {name: getattr(message, name) for name in message.get_fields_and_field_types()}


def _image_message(array: np.ndarray, header: Any) -> Image:
    message = Image(header=header, height=array.shape[0], width=array.shape[1], encoding="rgb8",
                    is_bigendian=0, step=array.shape[1] * 3)
    message.data = array.tobytes()
    return message


# Frames of one camera that may wait for their partners (a third of a second at 30 Hz).
_SYNC_QUEUE_SIZE = 10


@dataclass
class _Camera:
    """One camera served by the node: its output topics and its tracking and intrinsics state."""

    name: str  # "" for the single camera on ``image``, else the namespace of its topics
    keypoints: Any
    repeatability: Any
    reliability: Any
    overlay: Any
    camera_info_out: Any
    front_end: TrackingFrontEnd = field(default_factory=TrackingFrontEnd)
    camera_info: CameraInfo | None = None


def _camera_topic(camera: str, topic: str) -> str:
    """``topic`` of a camera served by the node: in its namespace, or as is for the single camera ("")."""
    return f"{camera}/{topic}" if camera else topic


@dataclass
class _FrameSet:
    """What the worker takes: one message per camera (in camera order) and when the set was complete."""

    messages: list[Image | CompressedImage]
    received_at: float


class R2D2Node(Node):
    """Publishes R2D2 keypoints for every image it can keep up with."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("r2d2_node", **kwargs)
        for spec in PARAMETERS:
            # rclpy cannot tell the type of an empty list: such a parameter is declared by type.
            default = Parameter.Type.STRING_ARRAY if spec.default == [] else spec.default
            try:
                self.declare_parameter(spec.name, default, _descriptor(spec))
            except ParameterException as error:  # out of range or wrong type on the command line
                raise StartupError(f"invalid parameter {spec.name}: {error}") from error
        self._values = {spec.name: spec.coerce(self._declared_value(spec)) for spec in PARAMETERS}
        reason = validate_update(self._values, {})
        if reason:
            raise StartupError(f"invalid parameters: {reason}")
        self._config: ExtractionConfig = extraction_config(self._values)
        try:
            self._model = _load_model(self._values, self._config)
        except ModelLoadError as error:
            raise StartupError(str(error)) from error
        if self._model.device_note:
            self.get_logger().warning(self._model.device_note)
        self._settings_lock = threading.Lock()  # the worker reads model + settings as one consistent set

        self._stats = NodeStats()
        self._slot: LatestFrameSlot[_FrameSet] = LatestFrameSlot()
        self._stopping = threading.Event()
        self._worker_failure = ""  # why the worker thread ended, when it did so by an exception
        self._frame_started: float | None = None  # monotonic start of the frame in progress, for the watchdog
        # Set by the watchdog when the worker is gone: main() then exits non-zero.
        self.exit_reason: str | None = None
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # Frames and diagnostics have their own callback group: a parameter change (the default
        # group, where rclpy puts the parameter services) that loads and warms up a model runs on
        # another executor thread and stalls neither of them. One group also means one callback at
        # a time, which the synchroniser relies on.
        frames_group = MutuallyExclusiveCallbackGroup()
        names = self._values["cameras"] or [""]
        self._cameras = [self._serve_camera(name, frames_group) for name in names]
        self._synchronizer: StampSynchronizer[Image | CompressedImage] | None = None
        if len(names) > 1:
            self._synchronizer = StampSynchronizer(names, self._tolerance_ns(self._values), _SYNC_QUEUE_SIZE)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(self._values["diagnostics_period"], self._watchdog, callback_group=frames_group)
        self._worker = threading.Thread(target=self._run_worker, name="r2d2_inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: model {self._model.name} ({self._model.arch}) on {self._model.device}, backend "
            f"{self._model.backend}, precision {self._config.precision} -> "
            f"{self._model.network.precision(self._config.precision)}, "
            f"subscribed to {', '.join(self.resolve_topic_name(_camera_topic(c.name, self._image_topic())) for c in self._cameras)}"
            + (f", paired within {self._values['sync_tolerance']:g} s" if self._synchronizer else "")
        )

    def _declared_value(self, spec: ParamSpec) -> Any:
        try:
            return self.get_parameter(spec.name).value
        except ParameterUninitializedException:  # a list declared by type and not given
            return spec.default

    def _image_topic(self) -> str:
        return "image/compressed" if self._values["use_compressed"] else "image"

    def _serve_camera(self, name: str, frames_group: MutuallyExclusiveCallbackGroup) -> _Camera:
        """Publishers and subscriptions of one camera; ``name`` "" is the single camera on ``image``."""
        output_qos = QoSProfile(depth=5)
        camera = _Camera(
            name,
            keypoints=self.create_publisher(Keypoints, _camera_topic(name, "keypoints"), output_qos),
            repeatability=self.create_publisher(Image, _camera_topic(name, "heatmap/repeatability"), output_qos),
            reliability=self.create_publisher(Image, _camera_topic(name, "heatmap/reliability"), output_qos),
            overlay=self.create_publisher(Image, _camera_topic(name, "keypoints/image"), output_qos),
            camera_info_out=self.create_publisher(CameraInfo, _camera_topic(name, "keypoints/camera_info"), output_qos),
        )
        compressed = self._values["use_compressed"]
        self.create_subscription(
            CompressedImage if compressed else Image, _camera_topic(camera.name, self._image_topic()),
            lambda message: self._on_image(camera, message), qos_profile_sensor_data, callback_group=frames_group,
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
        # The usual topic beside the image (image_transport's layout): follows calibration changes.
        self.create_subscription(CameraInfo, _camera_topic(name, "camera_info"),
                                 lambda message: self._on_camera_info(camera, message), qos_profile_sensor_data,
                                 callback_group=frames_group)
        return camera

    @staticmethod
    def _tolerance_ns(values: dict[str, Any]) -> int:
        return round(values["sync_tolerance"] * 1e9)

    # --- parameters ----------------------------------------------------------------------------

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        # rclpy runs parameter callbacks one at a time (one callback group), so _values and
        # _model only change here; the lock makes the worker see them change together.
        changes = {p.name: p.value for p in parameters}
        reason = validate_update(self._values, changes)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        values = {**self._values, **{k: v for k, v in changes.items() if k in self._values}}
        values = {spec.name: spec.coerce(values[spec.name]) for spec in PARAMETERS}
        config = extraction_config(values)
        try:
            model = self._model_for(values, config)
        except ModelLoadError as error:
            self.get_logger().error(f"refused the change of {', '.join(sorted(changes))}: {error}")
            return SetParametersResult(successful=False, reason=str(error))
        with self._settings_lock:
            self._model, self._values, self._config = model, values, config
        if self._synchronizer is not None:  # read by frame callbacks: one int assignment, atomic
            self._synchronizer.tolerance_ns = self._tolerance_ns(values)
        if model.device_note:
            self.get_logger().warning(model.device_note)
        self.get_logger().info(f"parameters updated: {', '.join(sorted(changes))}")
        return SetParametersResult(successful=True)

    def _model_for(self, values: dict[str, Any], config: ExtractionConfig) -> InferenceModel:
        """The model that ``values`` ask for, loaded and warmed up while the current one keeps serving."""
        # An onnxruntime session (and its TensorRT engine) is built for one precision and size range.
        session_changed = values["backend"] != "torch" and (config.precision, config.max_size) != (
            self._config.precision, self._config.max_size)
        if session_changed or any(values[name] != self._values[name] for name in ("model", "device", "backend")):
            return _load_model(values, config)
        if config.precision != self._config.precision:
            warm_up(self._model.network, config)
        return self._model

    # --- frames ----------------------------------------------------------------------------------

    def _on_camera_info(self, camera: _Camera, message: CameraInfo) -> None:
        camera.camera_info = message
        camera.front_end.set_camera_info(message)
        if camera.front_end.camera is None:
            self.get_logger().warning(f"unusable {_camera_topic(camera.name, 'camera_info')}: "
                                      f"{camera.front_end.camera_problem}", throttle_duration_sec=10.0)

    def _on_image(self, camera: _Camera, message: Image | CompressedImage) -> None:
        if self._synchronizer is None:
            self._offer(_FrameSet([message], self._stats.frame_received()))
            return
        stamp_ns = message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec
        result = self._synchronizer.add(camera.name, stamp_ns, message)
        for _ in result.unpaired:
            self._stats.frame_discarded(UNPAIRED)
        if result.restarted:
            self.get_logger().warning(f"{_camera_topic(camera.name, 'image')}: stamps jumped back (a replay loop?): "
                                      "pairing starts over")
        elif result.unpaired:
            self.get_logger().warning(
                f"frames without a partner within sync_tolerance {self._values['sync_tolerance']:g} s were dropped; "
                "raise it for cameras without a shared trigger", throttle_duration_sec=10.0)
        if result.matched is not None:
            self._offer(_FrameSet(list(result.matched.values()), self._stats.frame_received()))

    def _offer(self, frames: _FrameSet) -> None:
        """Hands a frame set to the worker, replacing the one it has not taken yet."""
        if self._slot.put(frames):
            self._stats.frame_discarded()

    def _run_worker(self) -> None:
        """The worker thread: remembers why it ended, for the watchdog."""
        try:
            self._work()
        except BaseException as error:
            self._worker_failure = f"{type(error).__name__}: {error}"
            raise  # threading's excepthook prints the traceback

    def _work(self) -> None:
        while not self._stopping.is_set():
            frames = self._slot.take(timeout=0.2)
            if frames is None:
                continue
            self._frame_started = time.monotonic()
            try:
                self._process(frames)
            except FrameDropped as drop:
                if not self.context.ok():
                    return  # shut down (Ctrl-C) mid-frame: there is nothing left to publish to
                self._stats.frame_dropped(drop.reason, frames.received_at)
                self.get_logger().warning(f"dropped a frame: {drop}", throttle_duration_sec=5.0)
            finally:
                self._frame_started = None

    def _process(self, frames: _FrameSet) -> None:
        """Answers one frame set (one frame per camera); every stage that can fail raises FrameDropped
        naming the stage, and a set is published for every camera or for none."""
        with self._settings_lock:
            model, config, values = self._model, self._config, self._values
        if values["rectify_keypoints"]:
            with frame_stage("no_camera_info"):  # checked first: no network time for a frame that is dropped
                for camera in self._cameras:
                    camera.front_end.require_camera()
        compressed = isinstance(frames.messages[0], CompressedImage)
        with frame_stage("decode"):
            images = [decode_message(message, compressed, values["significant_bits"]) for message in frames.messages]
        with frame_stage("inference_error"):
            want_heatmaps = any(camera.repeatability.get_subscription_count()
                                + camera.reliability.get_subscription_count() for camera in self._cameras)
            features = extract_multiscale_batch(model.network, images, config, return_maps=want_heatmaps)
        with frame_stage("tracking_error"):
            tracker_config = TrackerConfig(values["track_max_distance"], values["track_ransac_px"],
                                           max_points=values["track_max_points"],
                                           guided_radius_px=values["track_guided_radius"])
            results = [camera.front_end.process(found, values["rectify_keypoints"], values["tracking"], tracker_config)
                       for camera, found in zip(self._cameras, features)]
        # One stamp for the whole set (the first camera's), each camera's own frame id.
        headers = [Header(stamp=frames.messages[0].header.stamp, frame_id=message.header.frame_id)
                   for message in frames.messages]
        with frame_stage("publish_error"):
            for camera, header, result in zip(self._cameras, headers, results):
                camera.keypoints.publish(features_to_message(
                    result.features, Keypoints(header=header), model.name,
                    DESCRIPTOR_ENCODINGS[values["descriptor_encoding"]], result.tracks, result.rectified))
                if camera.camera_info is not None:  # the intrinsics of these keypoints, stamped as they are
                    camera.camera_info_out.publish(CameraInfo(**{**_fields(camera.camera_info), "header": header}))
        self._stats.frame_published(frames.received_at)
        for camera, header, image, found, result in zip(self._cameras, headers, images, features, results):
            published = found if result.kept is None else found.select(result.kept)  # in image pixels
            self._publish_pictures(camera, header, image, published, result, values)

    def _publish_pictures(self, camera: _Camera, header: Any, image: np.ndarray, features: Features,
                          result: FrontEndResult, values: dict[str, Any]) -> None:
        """Heatmaps and the overlay (keypoints in image pixels, and track trails), built only for
        topics that someone subscribes to."""
        with frame_stage("heatmap_error"):
            if features.maps is not None:
                for publisher, heatmap in ((camera.repeatability, features.maps.repeatability),
                                           (camera.reliability, features.maps.reliability)):
                    if publisher.get_subscription_count():
                        picture = colorize_heatmap(heatmap.float().cpu().numpy(), values["heatmap_colormap"])
                        publisher.publish(_image_message(picture, header))
        with frame_stage("overlay_error"):
            if camera.overlay.get_subscription_count():
                limit = values["overlay_max_keypoints"]  # best first: download only what is drawn
                keypoints = features.keypoints[:limit].float().cpu().numpy()
                overlay = draw_keypoints(image, keypoints, features.scores[:limit].float().cpu().numpy())
                if result.tracks is not None and not result.rectified:  # trails are in the published coordinates
                    overlay = draw_tracks(overlay, camera.front_end.trails()[:limit])
                camera.overlay.publish(_image_message(overlay, header))

    # --- diagnostics, watchdog and shutdown ------------------------------------------------------

    def _worker_stopped(self) -> str | None:
        """Why the worker is gone or hung, or None while it serves (or stops because the node does)."""
        if self._stopping.is_set():
            return None
        if self._worker.is_alive():
            with self._settings_lock:
                hang_timeout = self._values["hang_timeout"]
            return worker_hang(self._frame_started, time.monotonic(), hang_timeout)
        return self._worker_failure or "it returned"

    def _watchdog(self) -> None:
        """Publishes /diagnostics; when the worker is gone or hung, asks main() to exit non-zero."""
        worker_failure = self._worker_stopped()
        self._publish_diagnostics(worker_failure)
        if worker_failure is not None and self.exit_reason is None:
            self.get_logger().fatal(f"inference worker stopped ({worker_failure}): exiting so that "
                                    "a respawning launch file restarts the node")
            self.exit_reason = worker_failure

    def _publish_diagnostics(self, worker_failure: str | None) -> None:
        stats = self._stats.snapshot()
        with self._settings_lock:
            model, stale_timeout, precision = self._model, self._values["stale_timeout"], self._config.precision
        health = assess_health(stats, stale_timeout, worker_failure)
        status = DiagnosticStatus(
            level=bytes([health.level]),
            # Fully qualified: several cameras' nodes must not overwrite each other's status.
            name=f"{self.get_fully_qualified_name()}: R2D2 extraction",
            message=f"{health.message}; {model.device_note}" if model.device_note else health.message,
            hardware_id=str(model.device),
        )
        fields = {
            "input_rate_hz": f"{stats.input_rate_hz:.2f}",
            "output_rate_hz": f"{stats.output_rate_hz:.2f}",
            "latency_mean_ms": f"{stats.latency_mean_ms:.1f}",
            "latency_max_ms": f"{stats.latency_max_ms:.1f}",
            "cameras": ", ".join(camera.name for camera in self._cameras) or "image",
            "frames_received": str(stats.received),  # frame sets, when cameras are synchronised
            "frames_published": str(stats.published),
            "unanswered_s": f"{stats.unanswered_s:.1f}",
            "worker": "running" if worker_failure is None else f"stopped: {worker_failure}",
            "device": str(model.device),
            "device_note": model.device_note,
            "model": model.name,
            "backend": model.backend,
            "precision": model.network.precision(precision),  # what auto resolved to
            "precision_setting": precision,
            **{f"dropped_{cause}": str(count) for cause, count in sorted(stats.dropped.items())},
        }
        status.values = [KeyValue(key=key, value=value) for key, value in fields.items()]
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diagnostics_pub.publish(DiagnosticArray(header=header, status=[status]))

    def stop(self) -> bool:
        """Stops the worker, waiting up to ``shutdown_timeout`` for the frame in progress.

        Returns:
            True when the worker has finished; False when it is still inside a frame.
        """
        self._stopping.set()
        self._slot.close()
        # A worker that the watchdog found hung will not finish its frame: waiting only delays the respawn.
        timeout = 0.0 if self.exit_reason is not None else self._values["shutdown_timeout"]
        self._worker.join(min(0.1, timeout))  # an idle worker wakes from the closed slot at once
        if self._worker.is_alive():
            self.get_logger().info(f"stopping: waiting up to {timeout:g} s for the frame in progress")
            self._worker.join(timeout)
        if self._worker.is_alive():
            self.get_logger().warning(f"the frame in progress did not finish within {timeout:g} s; exiting without it")
        return not self._worker.is_alive()


def _load_model(values: dict[str, Any], config: ExtractionConfig) -> InferenceModel:
    """The model that the parameter ``values`` name, built for the rig's batch (one image per camera).

    Raises:
        ModelLoadError: for any failure, with its reason.
    """
    return load_inference_model(values["model"], values["device"], config, values["backend"],
                                engine_cache=values["engine_cache"], max_batch=max(1, len(values["cameras"])))


def _stop_requested_by_signals() -> threading.Event:
    """SIGINT and SIGTERM set the returned event, instead of rclpy's handlers.

    Those shut the context down at once, which also ends logging and publishing before the
    frame in progress is finished; with the event, main() stops the node in order instead.
    """
    requested = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: requested.set())
    return requested


def _spin(node: R2D2Node, stop_requested: threading.Event) -> int:
    """Runs the node until a stop is requested (0) or its watchdog finds the worker gone or hung (1)."""
    # Two threads: one for frames and diagnostics, one for parameter changes (see R2D2Node).
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        while rclpy.ok() and not stop_requested.is_set() and node.exit_reason is None:
            executor.spin_once(timeout_sec=0.2)  # signal handlers run between two waits
    finally:
        executor.remove_node(node)
        executor.shutdown(timeout_sec=node.get_parameter("shutdown_timeout").value)
    return 1 if node.exit_reason is not None else 0


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run r2d2_ros r2d2_node``; 1 when the node cannot start or its worker died or hung."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop_requested = _stop_requested_by_signals()
    node = None
    code = 0
    worker_finished = True
    try:
        node = R2D2Node()
        code = _spin(node, stop_requested)
    except StartupError as error:
        rclpy.logging.get_logger("r2d2_node").fatal(f"cannot start: {error}")
        code = 1
    finally:
        if node is not None:
            worker_finished = node.stop()
            node.destroy_node()
        rclpy.try_shutdown()
    if not worker_finished:
        # The worker is still inside torch: letting the interpreter finalise under a running
        # native thread can crash at exit, so leave now, with the exit code already decided.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
