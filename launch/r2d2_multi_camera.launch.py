"""Several cameras: one r2d2_node per camera, each in the camera's namespace.

    ros2 launch r2d2_ros r2d2_multi_camera.launch.py cameras:=front,left,right image_suffix:=image_raw

Camera ``front`` is read from /front/<image_suffix> and published under /front/keypoints, ...

One node (and one model copy) per camera, rather than one node serving all: the N16 weights are
2 MB and a frame's activations are freed after each frame, so the extra GPU memory per camera is
the CUDA context (a few hundred MB); in exchange each camera keeps its own latest-frame queue,
rate and diagnostics, cameras run concurrently on the GPU, and one failing camera or node does
not stop the others. Pass device:=cuda:N per launch to spread cameras over several GPUs.
``model`` and ``device`` override params_file only when given; each node is respawned when it
exits, unless ``respawn:=false``.
"""
import sys
from pathlib import Path

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helper beside this file
from r2d2_launch_overrides import OVERRIDABLE, given_overrides  # noqa: E402


def _camera_nodes(context: LaunchContext) -> list[Node]:
    cameras = [c.strip().strip("/") for c in LaunchConfiguration("cameras").perform(context).split(",") if c.strip()]
    if not cameras:
        raise ValueError("cameras must name at least one camera namespace, e.g. cameras:=front,rear")
    suffix = LaunchConfiguration("image_suffix").perform(context).strip("/")
    overrides = given_overrides({name: LaunchConfiguration(name).perform(context) for name in OVERRIDABLE})
    respawn = LaunchConfiguration("respawn").perform(context).lower() == "true"
    return [
        Node(
            package="r2d2_ros",
            executable="r2d2_node",
            name="r2d2_node",
            namespace=camera,
            parameters=[LaunchConfiguration("params_file"), overrides],
            remappings=[("image", f"/{camera}/{suffix}"), ("image/compressed", f"/{camera}/{suffix}/compressed")],
            respawn=respawn,
            respawn_delay=2.0,
            output="screen",
        )
        for camera in cameras
    ]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("r2d2_ros")
    return LaunchDescription([
        DeclareLaunchArgument("cameras", default_value="front,rear", description="comma-separated camera namespaces"),
        DeclareLaunchArgument("image_suffix", default_value="image_raw", description="image topic in each namespace"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "r2d2.yaml"]),
                              description="YAML parameters shared by every node"),
        DeclareLaunchArgument("model", default_value="", description="checkpoint path; empty = as in params_file"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu, cuda or cuda:N; empty = as in params_file"),
        DeclareLaunchArgument("respawn", default_value="true", description="restart a node when it exits"),
        OpaqueFunction(function=_camera_nodes),
    ])
