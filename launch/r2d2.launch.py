"""One camera: r2d2_node on an image topic, optionally with rviz2 showing the heatmaps.

    ros2 launch r2d2_ros r2d2.launch.py image:=/camera/image_raw device:=cuda rviz:=true
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("r2d2_ros")
    image = LaunchConfiguration("image")
    arguments = [
        DeclareLaunchArgument("image", default_value="/camera/image_raw", description="input sensor_msgs/Image topic"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "r2d2.yaml"]),
                              description="YAML parameters of r2d2_node"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its outputs"),
        DeclareLaunchArgument("model", default_value="", description="checkpoint path; empty = bundled model"),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cpu, cuda or cuda:N"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start rviz2 with config/r2d2.rviz"),
    ]
    node = Node(
        package="r2d2_ros",
        executable="r2d2_node",
        name="r2d2_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"),
                    {"model": LaunchConfiguration("model"), "device": LaunchConfiguration("device")}],
        remappings=[("image", image), ("image/compressed", [image, "/compressed"])],
        output="screen",
        emulate_tty=True,
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", PathJoinSubstitution([share, "config", "r2d2.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, node, rviz])
