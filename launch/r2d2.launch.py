"""One camera: r2d2_node on an image topic, optionally with rviz2 showing the heatmaps.

    ros2 launch r2d2_ros r2d2.launch.py image:=/camera/image_raw device:=cuda rviz:=true

The intrinsics are read beside the image (/camera/camera_info for /camera/image_raw).

``model`` and ``device`` override params_file only when given. The node is respawned when it
exits (its watchdog exits non-zero when its inference worker dies), unless ``respawn:=false``.
"""
import sys
from pathlib import Path

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helper beside this file
from r2d2_launch_overrides import OVERRIDABLE, camera_info_beside, given_overrides  # noqa: E402


def _r2d2_node(context: LaunchContext) -> list[Node]:
    image = LaunchConfiguration("image").perform(context)
    overrides = given_overrides({name: LaunchConfiguration(name).perform(context) for name in OVERRIDABLE})
    return [Node(
        package="r2d2_ros",
        executable="r2d2_node",
        name="r2d2_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[("image", image), ("image/compressed", f"{image}/compressed"),
                    ("camera_info", camera_info_beside(image))],
        respawn=LaunchConfiguration("respawn").perform(context).lower() == "true",
        respawn_delay=2.0,
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("r2d2_ros")
    arguments = [
        DeclareLaunchArgument("image", default_value="/camera/image_raw", description="input sensor_msgs/Image topic"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "r2d2.yaml"]),
                              description="YAML parameters of r2d2_node"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its outputs"),
        DeclareLaunchArgument("model", default_value="",
                              description="checkpoint path; empty = as in params_file"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu, cuda or cuda:N; empty = as in params_file"),
        DeclareLaunchArgument("respawn", default_value="true", description="restart the node when it exits"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start rviz2 with config/r2d2.rviz"),
    ]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", PathJoinSubstitution([share, "config", "r2d2.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, OpaqueFunction(function=_r2d2_node), rviz])
