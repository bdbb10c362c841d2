"""r2d2_lifecycle_node: the same node, managed (rclpy.lifecycle), for Nav2-style bring-up.

- configure: loads and warms up the model, creates the publishers and starts the worker;
- activate: subscribes to the cameras (and camera_info beside them);
- deactivate: unsubscribes (the set in progress still finishes);
- cleanup / shutdown: stops the worker and releases the model and publishers.

/diagnostics is published from the start, with the state (``unconfigured``, ``configuring``,
``inactive``, ``active``); a model that cannot load fails ``configure`` and the node stays
unconfigured, for the lifecycle manager to decide.
"""
from __future__ import annotations

import sys
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from .node import run
from .server import R2D2Server, StartupError

__all__ = ["R2D2LifecycleNode", "main"]


class R2D2LifecycleNode(LifecycleNode):
    """r2d2_node as a managed node."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("r2d2_node", **kwargs)
        self.server = R2D2Server(self)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.server.configure()
        except StartupError as error:
            self.get_logger().error(f"configure failed: {error}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.server.activate()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.server.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.server.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.server.state != "unconfigured":
            self.server.cleanup()
        return TransitionCallbackReturn.SUCCESS


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run r2d2_ros r2d2_lifecycle_node``."""
    return run(R2D2LifecycleNode, None, args)


if __name__ == "__main__":
    sys.exit(main())
