"""r2d2_node: camera images in; keypoints, descriptors and heatmaps out.

The node starts serving at once (configure and activate as soon as it exists); its managed
twin, :mod:`.lifecycle_node`, waits for lifecycle transitions. Both are :class:`.server.R2D2Server`
on an rclpy node, and share :func:`run` for signals, spinning and exit codes:

- 0: stopped by SIGINT/SIGTERM (within ``shutdown_timeout`` in all, below launch's 5 s escalation);
- 1: a runtime fault (the inference worker died or hung): a respawning launch file restarts it;
- 78 (``EX_CONFIG``): a configuration error at start-up (bad model path, device or parameter):
  restarting would fail the same way, so the launch files do not respawn it.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from .server import R2D2Server, StartupError

__all__ = ["EXIT_CONFIGURATION_ERROR", "EXIT_RUNTIME_FAULT", "R2D2Node", "main", "run"]

EXIT_RUNTIME_FAULT = 1
EXIT_CONFIGURATION_ERROR = os.EX_CONFIG  # 78, sysexits.h: "configuration error"


class R2D2Node(Node):
    """Publishes R2D2 keypoints for every image it can keep up with (serving as soon as it starts)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("r2d2_node", **kwargs)
        self.server = R2D2Server(self)

    def start(self) -> None:
        """Loads the model and subscribes (StartupError when the model cannot serve)."""
        self.server.configure()
        self.server.activate()


def _stop_requested_by_signals() -> threading.Event:
    """SIGINT and SIGTERM set the returned event, instead of rclpy's handlers.

    Those shut the context down at once, which also ends logging and publishing before the
    frame in progress is finished; with the event, :func:`run` stops the node in order instead.
    """
    requested = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: requested.set())
    return requested


def run(make_node: Callable[[], Node], start: Callable[[Any], None] | None, args: list[str] | None = None) -> int:
    """Creates a node, spins it until a signal or a runtime fault, stops it within ``shutdown_timeout``.

    Args:
        make_node: builds the node (its ``server`` attribute is the R2D2Server); may raise StartupError.
        start: called with the node once the executor spins (so /diagnostics flows while the model
            loads); None for a managed node, which waits for its transitions.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop_requested = _stop_requested_by_signals()
    logger = rclpy.logging.get_logger("r2d2_node")
    node = None
    executor = MultiThreadedExecutor(num_threads=3)  # frames, diagnostics, parameters and transitions
    spinner = threading.Thread(target=executor.spin, name="r2d2_executor", daemon=True)
    code, worker_finished = 0, True
    try:
        node = make_node()
        executor.add_node(node)
        spinner.start()
        if start is not None:
            start(node)
        while rclpy.ok() and not stop_requested.is_set() and node.server.exit_reason is None:
            stop_requested.wait(0.1)
        code = EXIT_RUNTIME_FAULT if node.server.exit_reason is not None else 0
    except StartupError as error:
        logger.fatal(f"cannot start: {error} (exit {EXIT_CONFIGURATION_ERROR}: a configuration error, not respawned)")
        code = EXIT_CONFIGURATION_ERROR
    finally:
        # One bounded wait for the whole stop: the frame in progress, then the executor.
        timeout = node.get_parameter("shutdown_timeout").value if node is not None else 0.0
        deadline = time.monotonic() + timeout
        if node is not None:
            worker_finished = node.server.stop_worker(timeout)
        executor.shutdown(timeout_sec=max(0.0, deadline - time.monotonic()))
        if spinner.ident:
            # Destroying the node under a thread still inside rclpy's wait aborts the process
            # ("terminate called without an active exception").
            spinner.join(max(0.1, deadline - time.monotonic()))
            worker_finished &= not spinner.is_alive()
        if node is not None and not spinner.is_alive():
            node.destroy_node()
        rclpy.try_shutdown()
    if not worker_finished:
        # The worker (or the executor) is still inside native code: letting the interpreter finalise
        # under a running native thread can crash at exit, so leave now, with the exit code already decided.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run r2d2_ros r2d2_node``."""
    return run(R2D2Node, R2D2Node.start, args)


if __name__ == "__main__":
    sys.exit(main())
