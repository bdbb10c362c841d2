"""Several cameras, in one of two modes.

    ros2 launch r2d2_ros r2d2_multi_camera.launch.py cameras:=front,left,right image_suffix:=image_raw
    ros2 launch r2d2_ros r2d2_multi_camera.launch.py cameras:=left,right synchronised:=true sync_tolerance:=0.005

Camera ``front`` is read from /front/<image_suffix> (and /front/camera_info) and published under
/front/keypoints, ... in both modes.

- Independent (default): one node per camera, in the camera's namespace. Each camera keeps its
  own latest-frame queue, rate and diagnostics, cameras run concurrently on the GPU, and one
  failing camera or node does not stop the others; the extra GPU memory per camera is the CUDA
  context (a few hundred MB). Pass device:=cuda:N per launch to spread cameras over several GPUs.
- Synchronised (``synchronised:=true``): one node for a rig whose frames belong together (stereo
  for visual odometry), in ``namespace`` (default: the cameras' names joined, /left_right/r2d2_node,
  so that two rigs do not collide): frames are paired by stamp, exact or within ``sync_tolerance``
  seconds, run through the network as one batch; each camera's outputs keep its own image's stamp
  and carry the set's stamp in ``set_stamp``; unpaired frames are counted in /diagnostics.

``model`` and ``device`` override params_file only when given; nodes are respawned when they
exit with a runtime fault, unless ``respawn:=false``; a configuration error (exit 78) is not respawned.
"""
import sys
from pathlib import Path

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helper beside this file
from r2d2_launch_actions import no_respawn_after_configuration_error, params_file  # noqa: E402
from r2d2_launch_overrides import (OVERRIDABLE, camera_names, given_overrides, image_remappings,  # noqa: E402
                                   output_remappings, rig_namespace)


def _with_respawn_rule(nodes: list[Node]) -> list:
    return [action for node in nodes for action in (node, no_respawn_after_configuration_error(node))]


def _camera_nodes(context: LaunchContext) -> list:
    cameras = camera_names(LaunchConfiguration("cameras").perform(context))
    suffix = LaunchConfiguration("image_suffix").perform(context)
    overrides = given_overrides({name: LaunchConfiguration(name).perform(context) for name in OVERRIDABLE})
    respawn = LaunchConfiguration("respawn").perform(context).lower() == "true"
    common = {"package": "r2d2_ros", "executable": "r2d2_node", "name": "r2d2_node", "respawn": respawn,
              "respawn_delay": 2.0, "output": "screen"}
    if LaunchConfiguration("synchronised").perform(context).lower() == "true":
        synchronisation = {"cameras": cameras,
                           "sync_tolerance": float(LaunchConfiguration("sync_tolerance").perform(context))}
        remappings = [pair for camera in cameras
                      for pair in image_remappings(camera, suffix, f"{camera}/") + output_remappings(camera)]
        namespace = LaunchConfiguration("namespace").perform(context) or rig_namespace(cameras)
        return _with_respawn_rule([Node(namespace=namespace, remappings=remappings,
                                        parameters=[params_file(context), overrides, synchronisation],
                                        **common)])
    prefix = LaunchConfiguration("namespace").perform(context).strip("/")
    return _with_respawn_rule([
        Node(namespace=f"{prefix}/{camera}" if prefix else camera, remappings=image_remappings(camera, suffix),
             parameters=[params_file(context), overrides], **common)
        for camera in cameras
    ])


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("cameras", default_value="front,rear", description="comma-separated camera namespaces"),
        DeclareLaunchArgument("image_suffix", default_value="image_raw", description="image topic in each namespace"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="synchronised: the node's namespace (empty = the cameras' names joined); "
                                          "independent: a prefix of each camera's namespace"),
        DeclareLaunchArgument("preset", default_value="default",
                              description="parameters for the hardware: default, cpu (no GPU) or gpu; see docs/node.md"),
        DeclareLaunchArgument("params_file", default_value="",
                              description="YAML parameters shared by every node; empty = the preset's file"),
        DeclareLaunchArgument("model", default_value="", description="checkpoint path; empty = as in params_file"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu, cuda or cuda:N; empty = as in params_file"),
        DeclareLaunchArgument("respawn", default_value="true", description="restart a node when it exits"),
        DeclareLaunchArgument("synchronised", default_value="false",
                              description="true: one node pairs the cameras' frames by stamp and runs them as one batch"),
        DeclareLaunchArgument("sync_tolerance", default_value="0.0",
                              description="synchronised mode: largest stamp difference (s) of paired frames; 0 = exact"),
        OpaqueFunction(function=_camera_nodes),
    ])
