"""Which launch arguments override r2d2_node's parameters file, and the cameras' topics; shared by the launch files.

Kept free of the launch library (and of torch) so that it loads fast and is tested without either.
"""
from __future__ import annotations

# Launch arguments that, when given, override the parameter of the same name in params_file.
OVERRIDABLE = ("model", "device")


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
    """Remappings from the node's image topics to ``/<camera>/<image_suffix>`` (raw and compressed).

    ``node_topic_prefix`` is where the node reads the camera: "" for a node in the camera's
    namespace, "<camera>/" for one node serving several cameras.
    """
    suffix = image_suffix.strip("/")
    return [(f"{node_topic_prefix}image", f"/{camera}/{suffix}"),
            (f"{node_topic_prefix}image/compressed", f"/{camera}/{suffix}/compressed")]


def camera_info_beside(image_topic: str) -> str:
    """The camera_info topic beside an image topic, as image_transport lays them out
    (/camera/image_raw -> /camera/camera_info)."""
    parent = image_topic.rstrip("/").rpartition("/")[0]
    return f"{parent}/camera_info" if parent or image_topic.startswith("/") else "camera_info"
