"""Which launch arguments override r2d2_node's parameters file, the cameras' topics and namespaces, and which
exits are respawned; shared by the launch files.

Kept free of the launch library (and of torch) so that it loads fast and is tested without either.
"""
from __future__ import annotations

# Launch arguments that, when given, override the parameter of the same name in params_file.
OVERRIDABLE = ("model", "device")

# r2d2_node's exit status for a configuration error (r2d2_ros.ros.node.EXIT_CONFIGURATION_ERROR, sysexits'
# EX_CONFIG): a restart would fail the same way, so it is not respawned; runtime faults (1) are.
EXIT_CONFIGURATION_ERROR = 78


# Parameter presets in config/: the defaults, a robot without a GPU, a robot with one (docs/node.md, Presets).
PRESETS = ("default", "cpu", "gpu")


def preset_file(preset: str) -> str:
    """The parameters file of a preset, in the package's config folder."""
    name = preset.strip().lower()
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    return "r2d2.yaml" if name == "default" else f"r2d2_{name}.yaml"


def respawn_after(returncode: int) -> bool:
    """Whether a node that exited with ``returncode`` is worth restarting."""
    return returncode != EXIT_CONFIGURATION_ERROR


def namespace_beside(image_topic: str) -> str:
    """The namespace of an image topic, where the node and its outputs go by default
    (/camera/image_raw -> camera, so that two cameras' launches do not collide); "r2d2" at the root."""
    parent = image_topic.strip("/").rpartition("/")[0]
    return parent or "r2d2"


def rig_namespace(cameras: list[str]) -> str:
    """The default namespace of one node serving several cameras: their names joined (left_right)."""
    return "_".join(camera.replace("/", "_") for camera in cameras)


def given_overrides(arguments: dict[str, str]) -> dict[str, str]:
    """The arguments the user gave: an empty value means "not given", so params_file's value stands."""
    return {name: value for name, value in arguments.items() if value.strip()}


def camera_names(text: str) -> list[str]:
    """The camera namespaces of a comma-separated launch argument ("front, /rear" -> ["front", "rear"])."""
    cameras = [camera.strip().strip("/") for camera in text.split(",") if camera.strip().strip("/")]
    if not cameras:
        raise ValueError("cameras must name at least one camera namespace, e.g. cameras:=front,rear")
    if len(set(cameras)) != len(cameras):
        raise ValueError(f"cameras must not repeat a camera, got {text!r}")
    return cameras


def image_remappings(camera: str, image_suffix: str, node_topic_prefix: str = "") -> list[tuple[str, str]]:
    """The node's image topic remapped to ``/<camera>/<image_suffix>``; ``image/compressed`` and ``camera_info``
    follow it (the node reads them beside the remapped image, as image_pipeline nodes do).

    ``node_topic_prefix`` is where the node reads the camera: "" for a node in the camera's
    namespace, "<camera>/" for one node serving several cameras.
    """
    return [(f"{node_topic_prefix}image", f"/{camera}/{image_suffix.strip('/')}")]


def output_remappings(camera: str) -> list[tuple[str, str]]:
    """One node serving several cameras publishes each camera's outputs under ``/<camera>/keypoints``:
    one remap moves keypoints, keypoints/camera_info, keypoints/image and keypoints/heatmap/* together."""
    return [(f"{camera}/keypoints", f"/{camera}/keypoints")]
