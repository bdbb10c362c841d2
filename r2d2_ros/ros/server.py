"""What r2d2_node does over ROS, shared by the plain node and the managed (lifecycle) one.

A thin adapter: per-set work, the worker, camera pairing, model loading, statistics and health
live in :mod:`r2d2_ros.serving` (no rclpy); this file declares parameters, creates topics and
timers, and publishes what those modules produce.

Topics follow image_pipeline's conventions: ``camera_info`` is read beside the image after
remapping (``-r image:=/camera/image_raw`` reads ``/camera/camera_info``), ``image/compressed``
is the remapped image topic plus ``/compressed``, and every output lives under one remappable
name, ``keypoints`` (``keypoints/camera_info``, ``keypoints/image``, ``keypoints/heatmap/*``).
Liveness timers (diagnostics, watchdog) run on the steady clock, so a paused or ended bag under
``use_sim_time`` does not stop them; stamps stay on ROS time.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..extraction import ExtractionConfig
from ..msg import Keypoints
from ..serving.camera_info import stamp_ns
from ..serving.camera_sync import StampSynchronizer
from ..serving.frame_set import CameraAnswer, CameraState, FrameSetProcessor, PictureRequest
from ..serving.health import assess_health
from ..serving.inference import InferenceModel, ModelLoadError, load_inference_model, model_problem, model_settings
from ..serving.params import PARAMETERS, ParamSpec, extraction_config, validate_update
from ..serving.reloader import ModelReloader
from ..serving.stats import FrameDropped, NodeStats, frame_stage
from ..serving.topic_status import TopicStatus
from ..serving.worker import InferenceWorker
from ..tracking import TrackIdSequence

__all__ = ["INPUT_TOPICS", "OUTPUT_TOPICS", "R2D2Server", "StartupError", "camera_topic"]

# Each camera's topics (under its namespace with several cameras). The inputs beside the image and every
# output under ``keypoints`` are resolved after remapping, so that they move with one remap.
INPUT_TOPICS = ("image", "image/compressed", "camera_info")
OUTPUT_TOPICS = ("keypoints", "keypoints/camera_info", "keypoints/image", "keypoints/heatmap/repeatability",
                 "keypoints/heatmap/reliability")

# Frames of one camera that may wait for their partners (a third of a second at 30 Hz).
_SYNC_QUEUE_SIZE = 10
# Parameters whose change needs another model; a failed load puts them back.
_MODEL_PARAMETERS = ("model", "device", "backend", "precision", "max_size")


class StartupError(RuntimeError):
    """The node cannot start: bad model, device or parameters (a configuration error, not a fault)."""


def camera_topic(camera: str, topic: str) -> str:
    """``topic`` of a camera served by the node: in its namespace, or as is for the single camera ("")."""
    return f"{camera}/{topic}" if camera else topic


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


def _load_model(values: dict[str, Any], config: ExtractionConfig) -> InferenceModel:
    """The model that the parameter ``values`` name, built for the rig's batch (one image per camera).

    Raises:
        ModelLoadError: for any failure, with its reason.
    """
    return load_inference_model(values["model"], values["device"], config, values["backend"],
                                engine_cache=values["engine_cache"], max_batch=max(1, len(values["cameras"])))


@dataclass
class _Outputs:
    """One camera's publishers and topic statuses."""

    keypoints: Any
    camera_info: Any
    overlay: Any
    repeatability: Any
    reliability: Any
    keypoints_status: TopicStatus
    input_status: TopicStatus
    keypoints_topic: str
    image_topic: str


@dataclass(frozen=True)
class _FrameSet:
    """What the worker takes: one message per camera (in camera order) and when the set was complete."""

    messages: list[Image | CompressedImage]
    received_at: float


class R2D2Server:
    """Parameters, topics, worker and diagnostics of one node, in lifecycle steps.

    ``configure`` loads and warms up the model and creates the publishers, ``activate`` subscribes,
    ``deactivate`` unsubscribes, ``cleanup`` stops the worker and releases the model and publishers.
    /diagnostics is published from construction on, with the state.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.log = node.get_logger()
        for spec in PARAMETERS:
            # rclpy cannot tell the type of an empty list: such a parameter is declared by type.
            default = Parameter.Type.STRING_ARRAY if spec.default == [] else spec.default
            try:
                node.declare_parameter(spec.name, default, _descriptor(spec))
            except ParameterException as error:  # out of range or wrong type on the command line
                raise StartupError(f"invalid parameter {spec.name}: {error}") from error
        self._values = {spec.name: spec.coerce(self._declared_value(spec)) for spec in PARAMETERS}
        reason = validate_update(self._values, {})
        if reason:
            raise StartupError(f"invalid parameters: {reason}")
        self._config: ExtractionConfig = extraction_config(self._values)
        self._requested = (self._values, self._config)  # the newest accepted parameters (a load may be pending)
        self._model: InferenceModel | None = None
        self._settings_lock = threading.Lock()  # the worker reads model + settings as one consistent set
        self._reload_failure = ""
        self._loading_settings: tuple | None = None  # the model settings of the load requested last
        self.state = "unconfigured"
        self.exit_reason: str | None = None  # set when the worker is gone or hung: the process exits non-zero
        self._names = self._values["cameras"] or [""]
        self._stats = NodeStats(self._names)
        self._ids = TrackIdSequence()  # one id sequence for every camera of the node
        self._processor: FrameSetProcessor | None = None
        self._worker: InferenceWorker[_FrameSet] | None = None
        self._reloader: ModelReloader[dict[str, Any], InferenceModel] | None = None
        self._synchronizer: StampSynchronizer[Image | CompressedImage] | None = None
        self._outputs: list[_Outputs] = []
        self._subscriptions: list[Any] = []
        self._logged_restarts: set[tuple[str, str]] = set()
        self._logged_stereo_skips: set[tuple[str, str]] = set()
        # Frames, and diagnostics, each in their own group: a parameter change or a lifecycle
        # transition (the default group) does not stall them. One group for frames also means one
        # frame callback at a time, which the synchroniser relies on.
        self._frames_group = MutuallyExclusiveCallbackGroup()
        self._diagnostics_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        node.add_on_set_parameters_callback(self._on_set_parameters)
        node.create_timer(self._values["diagnostics_period"], self._watchdog,
                          callback_group=MutuallyExclusiveCallbackGroup(), clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _declared_value(self, spec: ParamSpec) -> Any:
        try:
            return self.node.get_parameter(spec.name).value
        except ParameterUninitializedException:  # a list declared by type and not given
            return spec.default

    # --- lifecycle steps -------------------------------------------------------------------------

    def configure(self) -> None:
        """Loads and warms up the model; creates the publishers and starts the worker.

        Raises:
            StartupError: the model cannot be loaded or run.
        """
        self.state = "configuring"
        try:
            model = _load_model(self._values, self._config)
        except ModelLoadError as error:
            self.state = "unconfigured"
            raise StartupError(str(error)) from error
        if model.device_note:
            self.log.warning(model.device_note)
        with self._settings_lock:
            self._model = model
        self._processor = FrameSetProcessor(self._names, self._ids)
        self._outputs = [self._create_outputs(name) for name in self._names]
        if len(self._names) > 1:
            self._synchronizer = StampSynchronizer(self._names, self._tolerance_ns(self._values), _SYNC_QUEUE_SIZE)
        self._worker = InferenceWorker(self._answer_set, self._set_dropped)
        self._worker.start()
        self._reloader = ModelReloader(self._load_requested, self._reloaded)
        self.state = "inactive"

    def activate(self) -> None:
        """Subscribes to every camera's image and camera_info."""
        assert self._processor is not None, "configure first"
        self._stats.restart_silence()
        compressed = self._values["use_compressed"]
        for camera, outputs in zip(self._processor.cameras, self._outputs):
            self._subscriptions.append(self.node.create_subscription(
                CompressedImage if compressed else Image,
                f"{outputs.image_topic}/compressed" if compressed else outputs.image_topic,
                lambda message, camera=camera, outputs=outputs: self._on_image(camera, outputs, message),
                qos_profile_sensor_data, callback_group=self._frames_group,
                qos_overriding_options=QoSOverridingOptions.with_default_policies()))
            # Beside the image after remapping, as image_transport lays them out.
            self._subscriptions.append(self.node.create_subscription(
                CameraInfo, f"{outputs.image_topic.rpartition('/')[0]}/camera_info",
                lambda message, camera=camera: camera.camera_infos.add(message), qos_profile_sensor_data,
                callback_group=self._frames_group, qos_overriding_options=QoSOverridingOptions.with_default_policies()))
        self.state = "active"
        model = self._model
        self.log.info(
            f"ready: model {model.name} ({model.arch}) on {model.device}, backend {model.backend}, precision "
            f"{self._config.precision} -> {model.network.precision(self._config.precision)}, subscribed to "
            f"{', '.join(outputs.image_topic for outputs in self._outputs)}, publishing "
            f"{', '.join(outputs.keypoints_topic for outputs in self._outputs)}"
            + (f", paired within {self._values['sync_tolerance']:g} s" if self._synchronizer else ""))

    def deactivate(self) -> None:
        """Stops listening; the set in progress still finishes and is published."""
        for subscription in self._subscriptions:
            self.node.destroy_subscription(subscription)
        self._subscriptions = []
        self.state = "inactive"

    def cleanup(self, timeout_s: float | None = None) -> bool:
        """Stops the worker (waiting up to ``timeout_s``, default ``shutdown_timeout``) and releases the model
        and publishers. Returns False when the worker is still inside a set."""
        self.deactivate()
        finished = self.stop_worker(self._values["shutdown_timeout"] if timeout_s is None else timeout_s)
        for outputs in self._outputs:
            for publisher in (outputs.keypoints, outputs.camera_info, outputs.overlay, outputs.repeatability,
                              outputs.reliability):
                self.node.destroy_publisher(publisher)
        self._outputs, self._processor, self._synchronizer = [], None, None
        with self._settings_lock:
            self._model = None
        self.state = "unconfigured"
        return finished

    def stop_worker(self, timeout_s: float) -> bool:
        """Stops the reload and inference threads within ``timeout_s`` in all; False if the worker is still busy."""
        deadline = time.monotonic() + timeout_s
        if self._reloader is not None:
            self._reloader.stop(0.0)
        if self._worker is None:
            return True
        if self._worker.busy and timeout_s > 0:
            self.log.info(f"stopping: waiting up to {timeout_s:g} s for the frame in progress")
        # A worker that the watchdog found hung will not finish its set: waiting only delays the respawn.
        finished = self._worker.stop(0.0 if self.exit_reason else deadline - time.monotonic())
        if not finished:
            self.log.warning(f"the frame in progress did not finish within {timeout_s:g} s; exiting without it")
        return finished

    # --- topics ----------------------------------------------------------------------------------

    def _create_outputs(self, name: str) -> _Outputs:
        node, qos = self.node, QoSProfile(depth=5)
        overrides = QoSOverridingOptions.with_default_policies()
        # Resolved once (remapping applied), so that everything under it moves with one remap.
        base = node.resolve_topic_name(camera_topic(name, OUTPUT_TOPICS[0]))
        image_topic = node.resolve_topic_name(camera_topic(name, INPUT_TOPICS[0]))

        def publisher(message_type: type, topic: str) -> Any:
            """A publisher of ``topic`` (one of OUTPUT_TOPICS) under the resolved ``keypoints``."""
            return node.create_publisher(message_type, base + topic[len(OUTPUT_TOPICS[0]):], qos,
                                         qos_overriding_options=overrides)

        keypoints, camera_info, overlay, repeatability, reliability = OUTPUT_TOPICS
        return _Outputs(
            keypoints=publisher(Keypoints, keypoints),
            camera_info=publisher(CameraInfo, camera_info),
            overlay=publisher(Image, overlay),
            repeatability=publisher(Image, repeatability),
            reliability=publisher(Image, reliability),
            keypoints_status=TopicStatus(),
            input_status=TopicStatus(stamp_delay_s=None),
            keypoints_topic=base,
            image_topic=image_topic,
        )

    @staticmethod
    def _tolerance_ns(values: dict[str, Any]) -> int:
        return round(values["sync_tolerance"] * 1e9)

    # --- parameters ------------------------------------------------------------------------------

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validates and applies a change at once, or hands it to the reload thread when it needs another model.

        Never waits for a load: parameter services stay responsive during a TensorRT build. A change
        that needs a model applies, with every change made meanwhile, when that model is ready; a
        failed load puts the model parameters back (logged, and in /diagnostics).
        """
        changes = {p.name: p.value for p in parameters if p.name in self._values}
        if not changes:  # not ours (use_sim_time, the qos_overrides.* that creating a topic declares)
            return SetParametersResult(successful=True)
        with self._settings_lock:
            current = self._requested[0]
            reason = validate_update(current, changes)
            if not reason and any(name in changes for name in ("model", "device")):
                reason = model_problem({**current, **changes})
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            values = {**current, **changes}
            values = {spec.name: spec.coerce(values[spec.name]) for spec in PARAMETERS}
            try:
                config = extraction_config(values)
            except ValueError as error:
                return SetParametersResult(successful=False, reason=str(error))
            self._requested = (values, config)
            needs_model = self._model is not None and model_settings(values, config) != model_settings(
                self._values, self._config)
            if not needs_model:
                self._values, self._config = values, config
                self._loading_settings = None
            else:  # the other changes apply at once, on the model that serves until the new one is ready
                self._apply_beside_model(values)
                settings = model_settings(values, config)
                needs_model, self._loading_settings = settings != self._loading_settings, settings
        if self._synchronizer is not None:  # read by frame callbacks: one int assignment, atomic
            self._synchronizer.tolerance_ns = self._tolerance_ns(values)
        if needs_model and self._reloader is not None:
            self._reloader.request(values)
            self.log.info(f"parameters accepted: {', '.join(sorted(changes))}; loading the model they need")
        elif self._loading_settings is not None:
            self.log.info(f"parameters accepted: {', '.join(sorted(changes))}; the rest applies with the model "
                          "being loaded")
        else:
            self.log.info(f"parameters updated: {', '.join(sorted(changes))}")
        return SetParametersResult(successful=True)

    def _apply_beside_model(self, values: dict[str, Any]) -> None:
        """Applies ``values`` but the model parameters to the serving model, when that combination is valid."""
        serving = {**values, **{name: self._values[name] for name in _MODEL_PARAMETERS}}
        try:
            config = extraction_config(serving)
        except ValueError:
            return  # e.g. a min_size that fits only the requested max_size: it waits for the new model
        if model_settings(serving, config) == model_settings(self._values, self._config):
            self._values, self._config = serving, config

    def _load_requested(self, values: dict[str, Any]) -> InferenceModel:
        """The reload thread's load: a new model, never the one the worker is using."""
        return _load_model(values, extraction_config(values))

    def _reloaded(self, values: dict[str, Any], model: InferenceModel | None, reason: str) -> None:
        """Swaps in a loaded model with the newest parameters, or puts the model parameters back."""
        revert: dict[str, Any] = {}
        with self._settings_lock:
            requested, requested_config = self._requested
            if model_settings(requested, requested_config) != model_settings(values, extraction_config(values)):
                return  # a newer request is pending: its own load follows
            self._loading_settings = None
            if model is not None:
                self._model, self._values, self._config = model, requested, requested_config
                self._reload_failure = ""
            else:
                self._reload_failure = reason
                revert = {name: self._values[name] for name in _MODEL_PARAMETERS if requested[name] != self._values[name]}
                self._requested = ({**requested, **revert}, extraction_config({**requested, **revert}))
        if model is not None:
            if model.device_note:
                self.log.warning(model.device_note)
            self.log.info(f"model {model.name} loaded on {model.device}: serving with the new parameters")
            return
        self.log.error(f"model reload failed ({reason}); still serving {self._model.name}; "
                       f"parameters put back: {', '.join(f'{k}={v!r}' for k, v in revert.items())}")
        self.node.set_parameters([Parameter(name, value=value) for name, value in revert.items()])

    # --- frames ----------------------------------------------------------------------------------

    def _on_image(self, camera: CameraState, outputs: _Outputs, message: Image | CompressedImage) -> None:
        self._stats.camera_frame(camera.name)
        outputs.input_status.tick()
        if self._synchronizer is None:
            self._offer(_FrameSet([message], self._stats.set_received()))
            return
        result = self._synchronizer.add(camera.name, stamp_ns(message.header.stamp), message)
        for _ in result.unpaired:
            self._stats.frame_unpaired()
        if result.restarted:
            self.log.warning(f"{outputs.image_topic}: stamps jumped back (a replay loop?): pairing starts over")
        elif result.unpaired:
            silent = [name for name, rate in self._stats.snapshot().camera_rates_hz.items() if rate == 0]
            hint = (f"camera {', '.join(silent)} sends nothing" if silent else
                    "raise it for cameras without a shared trigger")
            self.log.warning(f"frames without a partner within sync_tolerance {self._values['sync_tolerance']:g} s "
                             f"were dropped; {hint}", throttle_duration_sec=10.0)
        if result.matched is not None:
            self._offer(_FrameSet(list(result.matched.values()), self._stats.set_received()))

    def _offer(self, frames: _FrameSet) -> None:
        if self._worker is not None and self._worker.offer(frames):
            self._stats.set_superseded()

    def _set_dropped(self, frames: _FrameSet, drop: FrameDropped) -> None:
        """The worker could not answer a set: count it (unless the node is shutting down)."""
        if not self.node.context.ok():
            return
        self._stats.set_dropped(drop.reason, frames.received_at)
        self.log.warning(f"dropped a frame: {drop}", throttle_duration_sec=5.0)

    def _answer_set(self, frames: _FrameSet) -> None:
        """The worker's work for one set: every camera's keypoints, then the pictures someone watches."""
        with self._settings_lock:
            model, config, values = self._model, self._config, self._values
        processor, all_outputs = self._processor, self._outputs
        if model is None or processor is None:
            raise FrameDropped("inactive", "the node was cleaned up while the set waited")
        want_maps = any(o.repeatability.get_subscription_count() + o.reliability.get_subscription_count()
                        for o in all_outputs)
        answers = processor.answer(frames.messages, model, config, values, want_maps)
        with frame_stage("publish_error"):
            for outputs, answer in zip(all_outputs, answers):
                outputs.keypoints.publish(answer.keypoints)
                if answer.camera_info is not None:  # the intrinsics of these keypoints, stamped as they are
                    outputs.camera_info.publish(answer.camera_info)
        self._stats.set_published(frames.received_at)
        now_s = self.node.get_clock().now().nanoseconds * 1e-9
        for camera, outputs, answer in zip(processor.cameras, all_outputs, answers):
            outputs.keypoints_status.tick(stamp_ns(answer.header.stamp) * 1e-9, now_s)
            self._note_restart(camera, answer)
            self._note_stereo_skip(camera, answer)
        for camera, outputs, answer in zip(processor.cameras, all_outputs, answers):
            self._publish_pictures(camera, outputs, answer, values)

    def _note_restart(self, camera: CameraState, answer: CameraAnswer) -> None:
        """Counts a tracker that started over; logs each (camera, cause) once."""
        restart = answer.result.restart
        if not restart:
            return
        self._stats.tracks_restarted()
        if (camera.name, restart) not in self._logged_restarts:
            self._logged_restarts.add((camera.name, restart))
            self.log.info(f"{camera.name or 'image'}: tracks start over: {restart} "
                          "(counted as tracks_restarted; logged once per cause)")

    def _note_stereo_skip(self, camera: CameraState, answer: CameraAnswer) -> None:
        """Logs once per (camera, cause) why stereo_ids could not pair a camera with the first."""
        skipped = answer.stereo_skipped
        if skipped and (camera.name, skipped) not in self._logged_stereo_skips:
            self._logged_stereo_skips.add((camera.name, skipped))
            self.log.warning(f"{camera.name}: stereo_ids skipped: {skipped} (its points keep their own ids; "
                             "logged once per cause)")

    def _publish_pictures(self, camera: CameraState, outputs: _Outputs, answer: CameraAnswer,
                          values: dict[str, Any]) -> None:
        request = PictureRequest(outputs.repeatability.get_subscription_count() > 0,
                                 outputs.reliability.get_subscription_count() > 0,
                                 outputs.overlay.get_subscription_count() > 0)
        if request == PictureRequest():
            return
        pictures = self._processor.pictures(camera, answer, request, values)
        for name, picture in pictures.items():
            {"repeatability": outputs.repeatability, "reliability": outputs.reliability,
             "overlay": outputs.overlay}[name].publish(picture)

    # --- diagnostics and watchdog ----------------------------------------------------------------

    def _watchdog(self) -> None:
        """Publishes /diagnostics; when the worker is gone or hung, asks the process to exit non-zero."""
        with self._settings_lock:
            hang_timeout = self._values["hang_timeout"]
        failure = self._worker.failure(hang_timeout) if self._worker is not None else None
        self._publish_diagnostics(failure)
        if failure is not None and self.exit_reason is None:
            self.log.fatal(f"inference worker stopped ({failure}): exiting so that a respawning launch file "
                           "restarts the node")
            self.exit_reason = failure

    def _publish_diagnostics(self, worker_failure: str | None) -> None:
        stats = self._stats.snapshot()
        with self._settings_lock:
            model, values, precision = self._model, self._values, self._config.precision
            reload_failure = self._reload_failure
        reloading = self._reloader is not None and self._reloader.busy
        node_name = self.node.get_fully_qualified_name()
        hardware_id = str(model.device) if model is not None else values["device"]
        if self.state == "active":
            notes = tuple(note for note in (model.device_note, reload_failure and f"model reload failed: {reload_failure}")
                          if note)
            health = assess_health(stats, values["stale_timeout"], worker_failure, values["silence_warn"],
                                   values["silence_error"], notes)
            level, message = health.level, health.message
        else:  # not serving by request (a lifecycle state) or loading: said, not an error
            level, message = (2, f"inference worker stopped ({worker_failure})") if worker_failure else (0, self.state)
        fields = {
            "state": self.state,
            "input_rate_hz": f"{stats.input_rate_hz:.2f}",
            "output_rate_hz": f"{stats.output_rate_hz:.2f}",
            "latency_mean_ms": f"{stats.latency_mean_ms:.1f}",
            "latency_max_ms": f"{stats.latency_max_ms:.1f}",
            "cameras": ", ".join(name or "image" for name in self._names),
            **{f"camera_rate_hz.{name or 'image'}": f"{rate:.2f}" for name, rate in stats.camera_rates_hz.items()},
            **{f"camera_silent_s.{name or 'image'}": f"{silent:.1f}" for name, silent in stats.camera_silent_s.items()},
            **{f"camera_frames.{name or 'image'}": str(count) for name, count in stats.camera_frames.items()},
            "sets_received": str(stats.received),
            "sets_published": str(stats.published),
            "unpaired_frames": str(stats.unpaired_frames),
            "tracks_restarted": str(stats.tracks_restarted),
            "unanswered_s": f"{stats.unanswered_s:.1f}",
            "worker": "running" if worker_failure is None else f"stopped: {worker_failure}",
            "device": hardware_id,
            "device_note": model.device_note if model is not None else "",
            "model": model.name if model is not None else "",
            "model_reload": "loading" if reloading else (f"failed: {reload_failure}" if reload_failure else ""),
            "backend": values["backend"],
            "precision": model.network.precision(precision) if model is not None else "",  # what auto resolved to
            "precision_setting": precision,
            **{f"dropped_{cause}": str(count) for cause, count in sorted(stats.dropped.items())},
        }
        status = DiagnosticStatus(level=bytes([level]), name=f"{node_name}: R2D2 extraction", message=message,
                                  hardware_id=hardware_id,
                                  values=[KeyValue(key=key, value=value) for key, value in fields.items()])
        statuses = [status]
        if self.state == "active":
            for outputs in self._outputs:
                statuses.append(outputs.keypoints_status.status(f"{node_name}: {outputs.keypoints_topic} topic status",
                                                                hardware_id))
                statuses.append(outputs.input_status.status(f"{node_name}: {outputs.image_topic} topic status",
                                                            hardware_id))
        array = DiagnosticArray(status=statuses)
        array.header.stamp = self.node.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)
