"""One camera: r2d2_node on an image topic, optionally with rviz2 showing the heatmaps.

    ros2 launch r2d2_ros r2d2.launch.py image:=/camera/image_raw device:=cuda rviz:=true
    ros2 launch r2d2_ros r2d2.launch.py image:=/camera/image_raw preset:=cpu

The node goes in the image's namespace by default (/camera for /camera/image_raw), so two cameras'
launches do not collide, and publishes /camera/keypoints, /camera/keypoints/camera_info, ...; the
intrinsics are read beside the image (/camera/camera_info). ``managed:=true`` starts the lifecycle
variant (configure and activate it, e.g. with nav2_lifecycle_manager).

``preset`` (default, cpu, gpu) picks the parameters file unless ``params_file`` is given; ``model``
and ``device`` override it only when given. The node is respawned when it
exits with a runtime fault (its watchdog exits 1 when its inference worker dies or hangs), unless
``respawn:=false``; a configuration error (exit 78) is not respawned.
"""
import sys
from pathlib import Path

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this file
from r2d2_launch_actions import no_respawn_after_configuration_error, params_file  # noqa: E402
from r2d2_launch_overrides import OVERRIDABLE, given_overrides, namespace_beside  # noqa: E402


def _r2d2_node(context: LaunchContext) -> list:
    image = LaunchConfiguration("image").perform(context)
    overrides = given_overrides({name: LaunchConfiguration(name).perform(context) for name in OVERRIDABLE})
    managed = LaunchConfiguration("managed").perform(context).lower() == "true"
    node = Node(
        package="r2d2_ros",
        executable="r2d2_lifecycle_node" if managed else "r2d2_node",
        name="r2d2_node",
        namespace=LaunchConfiguration("namespace").perform(context) or namespace_beside(image),
        parameters=[params_file(context), overrides],
        remappings=[("image", image)],  # image/compressed and camera_info follow it
        respawn=LaunchConfiguration("respawn").perform(context).lower() == "true",
        respawn_delay=2.0,
        output="screen",
        emulate_tty=True,
    )
    return [node, no_respawn_after_configuration_error(node)]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("r2d2_ros")
    arguments = [
        DeclareLaunchArgument("image", default_value="/camera/image_raw", description="input sensor_msgs/Image topic"),
        DeclareLaunchArgument("preset", default_value="default",
                              description="parameters for the hardware: default, cpu (no GPU) or gpu; see docs/node.md"),
        DeclareLaunchArgument("params_file", default_value="",
                              description="YAML parameters of r2d2_node; empty = the preset's file"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node and its outputs; empty = the image's (camera for "
                                          "/camera/image_raw)"),
        DeclareLaunchArgument("model", default_value="",
                              description="checkpoint path; empty = as in params_file"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu, cuda or cuda:N; empty = as in params_file"),
        DeclareLaunchArgument("managed", default_value="false",
                              description="true: the lifecycle node (waits for configure and activate)"),
        DeclareLaunchArgument("respawn", default_value="true",
                              description="restart the node when it exits with a runtime fault"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="also start rviz2 with config/r2d2.rviz (topics under /camera)"),
    ]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", PathJoinSubstitution([share, "config", "r2d2.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, OpaqueFunction(function=_r2d2_node), rviz])
