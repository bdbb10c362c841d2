"""The node's parameters as data: defaults, descriptions, ranges and validation (no rclpy).

The node turns each :class:`ParamSpec` into a declared ROS parameter with a descriptor, and
its on-set callback calls :func:`validate_update` so that bad values are refused with a reason.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from ..backends import BACKENDS
from ..extraction import PRECISION_CHOICES, ExtractionConfig
from ..tracking.tracker import TRACKING_MODES
from ..viz import COLORMAPS
from ..conversions.keypoints_message import DESCRIPTOR_ENCODINGS

__all__ = ["ParamSpec", "PARAMETERS", "HEATMAP_COLORMAPS", "defaults", "spec", "validate_update", "extraction_config"]

HEATMAP_COLORMAPS = tuple(COLORMAPS)
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
# A relative ROS name (namespace tokens): each camera's topics live under it.
_CAMERA = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter. ``minimum``/``maximum`` bound numbers, ``choices`` bound strings."""

    name: str
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False

    def coerce(self, value: Any) -> Any:
        """The value as this parameter's type where that is lossless (an integer for a float)."""
        if isinstance(self.default, float) and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable, or None."""
        expected = type(self.default)
        value = self.coerce(value)
        if type(value) is not expected:
            return f"{self.name} must be a {expected.__name__}, got {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"{self.name} must be >= {self.minimum}, got {value}"
        if self.maximum is not None and value > self.maximum:
            return f"{self.name} must be <= {self.maximum}, got {value}"
        if self.choices is not None and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}"
        if self.name == "device" and not _DEVICE.match(value):
            return f"device must be auto, cpu, cuda or cuda:N, got {value!r}"
        if self.name == "hang_timeout" and 0 < value < 1:  # shorter would count ordinary frames as hangs
            return f"hang_timeout must be 0 (never) or at least 1 s, got {value}"
        if isinstance(value, list):
            return _camera_names_problem(self.name, value)
        return None


def _camera_names_problem(name: str, cameras: list[Any]) -> str | None:
    bad = [camera for camera in cameras if not isinstance(camera, str) or not _CAMERA.match(camera)]
    if bad:
        return f"{name} must be relative topic namespaces such as left or stereo/left, got {bad!r}"
    if len(set(cameras)) != len(cameras):
        return f"{name} must not repeat a camera, got {cameras!r}"
    return None


_EXTRACTION = ExtractionConfig()
PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model", "", "checkpoint path (original R2D2 or r2d2_ros format); empty = the bundled model"),
    ParamSpec("device", "auto", "auto, cpu, cuda or cuda:N; auto takes the first GPU if any"),
    ParamSpec("precision", _EXTRACTION.precision, "network arithmetic; auto = fp16 on CUDA, bf16 on CPUs with "
              "native bf16 (AVX512-BF16, AMX), else fp32", choices=PRECISION_CHOICES),
    ParamSpec("backend", "torch", "what runs the network: torch, or onnxruntime (TensorRT, else CUDA, on a GPU; "
              "the CPU provider on the CPU)", choices=BACKENDS),
    ParamSpec("engine_cache", "", "TensorRT engine cache folder (backend onnxruntime on a GPU), an absolute path: "
              "engines take minutes to build, so keep it on persistent storage; empty = "
              "$XDG_CACHE_HOME/r2d2_ros/tensorrt (~/.cache/r2d2_ros/tensorrt)", read_only=True),
    ParamSpec("top_k", _EXTRACTION.top_k, "keypoints kept per image, best first", 1, 100_000),
    ParamSpec("scale_f", _EXTRACTION.scale_f, "ratio between two pyramid levels", 1.01, 4.0),
    ParamSpec("min_scale", _EXTRACTION.min_scale, "smallest pyramid level, fraction of the input", 0.0, 1.0),
    ParamSpec("max_scale", _EXTRACTION.max_scale, "largest pyramid level, fraction of the input", 0.0, 4.0),
    ParamSpec("min_size", _EXTRACTION.min_size, "smallest level's longest side, pixels", 0, 16_384),
    ParamSpec("max_size", _EXTRACTION.max_size, "largest level's longest side, pixels", 0, 16_384),
    ParamSpec("reliability_threshold", _EXTRACTION.reliability_threshold, "minimum reliability", 0.0, 1.0),
    ParamSpec("repeatability_threshold", _EXTRACTION.repeatability_threshold, "minimum repeatability", 0.0, 1.0),
    # On for the node, unlike the library (whose default keeps the original's outputs): a VO consumer's
    # trajectory error through a stereo back end is 5% lower with it on KITTI (docs/evaluation.md).
    ParamSpec("subpixel", True, "sub-pixel keypoint positions (parabola through the repeatability "
              "peak, pixel centres mapped exactly); false = the original's whole level pixels"),
    ParamSpec("cuda_graphs", _EXTRACTION.cuda_graphs, "on CUDA with backend torch: replay the pyramid of an image "
              "size seen before (from its second frame) from a captured CUDA graph, same detections; ignored on the "
              "CPU and with onnxruntime"),
    ParamSpec("descriptor_encoding", "float32", "descriptor encoding in Keypoints messages",
              choices=tuple(DESCRIPTOR_ENCODINGS)),
    ParamSpec("heatmap_colormap", "turbo", "colour map of the heatmap images", choices=HEATMAP_COLORMAPS),
    ParamSpec("overlay_max_keypoints", 1000, "keypoints drawn on keypoints/image (best first)", 0, 100_000),
    ParamSpec("significant_bits", 16, "significant (low) bits of mono16/16UC1 pixels: 12 for a 12-bit sensor "
              "that writes 0..4095, 16 when white is 65535", 1, 16),
    ParamSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", 0.1, 60.0, read_only=True),
    ParamSpec("stale_timeout", 30.0, "seconds that input may wait with no output before /diagnostics says "
              "ERROR (stale); above the slowest expected frame", 0.1, 3600.0),
    ParamSpec("shutdown_timeout", 3.0, "seconds that Ctrl-C or SIGTERM waits for the frame in progress, in all "
              "(below the 5 s after which ros2 launch escalates to SIGTERM)", 0.0, 600.0),
    ParamSpec("silence_warn", 2.0, "seconds a camera may send nothing before /diagnostics says WARN; 0 = never",
              0.0, 3600.0),
    ParamSpec("silence_error", 10.0, "seconds a camera may send nothing before /diagnostics says ERROR; 0 = never",
              0.0, 3600.0),
    ParamSpec("hang_timeout", 300.0, "seconds one frame may run before the worker counts as hung: /diagnostics "
              "ERROR and exit status 1, so that a respawning launch file restarts the node; far above the "
              "slowest expected frame; 0 = never", 0.0, 86400.0),
    ParamSpec("cameras", [], "synchronised cameras served by this node, e.g. [left, right]: each reads "
              "<camera>/image and <camera>/camera_info and publishes <camera>/keypoints...; their frames are "
              "paired by stamp and run as one batch. Empty: one camera on image", read_only=True),
    ParamSpec("sync_tolerance", 0.0, "largest stamp difference (s) of paired camera frames; 0 = identical stamps "
              "(hardware trigger); keep it below half the frame period", 0.0, 1.0),
    ParamSpec("use_compressed", False, "subscribe image/compressed (CompressedImage) instead of image",
              read_only=True),
    ParamSpec("tracking", False, "match each frame to the previous one and give keypoints persistent track ids"),
    ParamSpec("track_mode", "descriptor", "how tracked points reach the next frame: descriptor (matched to the "
              "frame's detections) or flow (carried by pyramidal optical flow, checked against a detection's "
              "descriptor within 2 px and the epipolar geometry; new points from detections)",
              choices=TRACKING_MODES),
    ParamSpec("track_max_distance", 1.0, "largest descriptor distance of a tracked match (unit descriptors: "
              "1.0 = cosine 0.5)", 0.05, 2.0),
    ParamSpec("track_ransac_px", 1.0, "largest Sampson distance (first-order distance to the epipolar "
              "geometry) of a tracked match, pixels", 0.1, 20.0),
    # The tracking defaults are the configuration with the lowest trajectory error through a stereo back end
    # on KITTI (r2d2-eval --stereo; docs/evaluation.md): 1,000 of the top_k 5,000 detections, guided search.
    ParamSpec("track_max_points", 1000, "keypoints a tracking frame keeps: its tracked points first, wherever they "
              "rank among the top_k detections, then the best new ones, more than 4 px apart (set top_k several "
              "times higher); 0 = every detection", 0, 100_000),
    ParamSpec("track_guided_radius", 10.0, "pixels around an unmatched point's predicted position (its verified "
              "neighbours' motion) searched again after RANSAC: the nearest detection on its epipolar line "
              "continues the track; 0 = off",
              0.0, 200.0),
    ParamSpec("stereo_ids", False, "with 2+ cameras and tracking: a further camera's keypoint that is the same "
              "point as one of the first camera's (same rectified row within 1 px, disparity >= 0, mutual nearest "
              "by descriptor within track_max_distance) takes that point's track id, for the rest of its track, as "
              "stereo VIO front ends expect; needs rectified stereo camera_infos (P[0,3] = -fx*baseline)"),
    ParamSpec("rectify_keypoints", False, "publish keypoints in rectified pixels (K, D, R, P of camera_info); "
              "frames are dropped until a camera_info arrives"),
)
_BY_NAME = {spec.name: spec for spec in PARAMETERS}


def spec(name: str) -> ParamSpec:
    """The spec of a parameter (KeyError when it is not one of the node's)."""
    return _BY_NAME[name]


def defaults() -> dict[str, Any]:
    """Every parameter's default value."""
    return {spec.name: spec.default for spec in PARAMETERS}


def extraction_config(values: dict[str, Any]) -> ExtractionConfig:
    """The ExtractionConfig that a full parameter set describes (ValueError when inconsistent)."""
    return ExtractionConfig(**{f.name: values[f.name] for f in dataclasses.fields(ExtractionConfig)})


def validate_update(current: dict[str, Any], changes: dict[str, Any]) -> str | None:
    """Why applying ``changes`` to ``current`` is refused, or None when it is valid.

    Checks read-only parameters, every resulting value's type and range (so ``changes`` {} checks
    the start-up values), and the extraction settings as a whole (e.g. min_size <= max_size).
    """
    candidate = dict(current)
    for name, value in changes.items():
        spec = _BY_NAME.get(name)
        if spec is None:
            continue  # parameters that are not ours (e.g. use_sim_time, qos_overrides.*)
        if spec.read_only and value != current.get(name):
            return f"{name} is read-only at runtime; set it at start-up"
        candidate[name] = spec.coerce(value)
    for name, value in candidate.items():
        spec = _BY_NAME.get(name)
        reason = spec.check(value) if spec is not None else None
        if reason:
            return reason
    if 0 < candidate.get("silence_error", 0) < candidate.get("silence_warn", 0):
        return "silence_error must be 0 (never) or at least silence_warn"
    try:
        extraction_config(candidate)
    except ValueError as error:
        return str(error)
    return None
