"""Several cameras: one r2d2_node per camera, each in the camera's namespace.

    ros2 launch r2d2_ros r2d2_multi_camera.launch.py cameras:=front,left,right image_suffix:=image_raw

Camera ``front`` is read from /front/<image_suffix> and published under /front/keypoints, ...

One node (and one model copy) per camera, rather than one node serving all: the N16 weights are
2 MB and a frame's activations are freed after each frame, so the extra GPU memory per camera is
the CUDA context (a few hundred MB); in exchange each camera keeps its own latest-frame queue,
rate and diagnostics, cameras run concurrently on the GPU, and one failing camera or node does
not stop the others. Pass device:=cuda:N per launch to spread cameras over several GPUs.
"""
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _camera_nodes(context: LaunchContext) -> list[Node]:
    cameras = [c.strip().strip("/") for c in LaunchConfiguration("cameras").perform(context).split(",") if c.strip()]
    if not cameras:
        raise ValueError("cameras must name at least one camera namespace, e.g. cameras:=front,rear")
    suffix = LaunchConfiguration("image_suffix").perform(context).strip("/")
    overrides = {"model": LaunchConfiguration("model"), "device": LaunchConfiguration("device")}
    return [
        Node(
            package="r2d2_ros",
            executable="r2d2_node",
            name="r2d2_node",
            namespace=camera,
            parameters=[LaunchConfiguration("params_file"), overrides],
            remappings=[("image", f"/{camera}/{suffix}"), ("image/compressed", f"/{camera}/{suffix}/compressed")],
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
        DeclareLaunchArgument("model", default_value="", description="checkpoint path; empty = bundled model"),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cpu, cuda or cuda:N"),
        OpaqueFunction(function=_camera_nodes),
    ])
