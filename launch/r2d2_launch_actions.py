"""Launch actions shared by the launch files (needs the launch library; the plain helpers are in
r2d2_launch_overrides.py)."""
from __future__ import annotations

from pathlib import Path

from launch import LaunchContext
from launch.actions import EmitEvent, LogInfo, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import matches_action
from launch.events.process import ShutdownProcess
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare
from r2d2_launch_overrides import EXIT_CONFIGURATION_ERROR, preset_file, respawn_after


def params_file(context: LaunchContext) -> str:
    """The ``params_file`` argument when given, else the file of the ``preset`` argument."""
    given = LaunchConfiguration("params_file").perform(context).strip()
    if given:
        return given
    share = FindPackageShare("r2d2_ros").perform(context)
    return str(Path(share) / "config" / preset_file(LaunchConfiguration("preset").perform(context)))


def no_respawn_after_configuration_error(node: Node) -> RegisterEventHandler:
    """Stops ``node``'s respawning when it exits with a configuration error (a bad model path or
    parameter would fail the same way every 2 s forever); runtime faults are still respawned."""

    def on_exit(event, context):  # noqa: ANN001, ANN202 (launch's callback signature)
        if respawn_after(event.returncode):
            return None
        return [LogInfo(msg=f"{event.action.name} exited with a configuration error (exit "
                            f"{EXIT_CONFIGURATION_ERROR}): not respawned; fix the parameters and launch again"),
                EmitEvent(event=ShutdownProcess(process_matcher=matches_action(node)))]

    return RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_exit))
