"""Harness for tests over real DDS: nodes run in their own processes, the test is another participant."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed: run the tests through 'make test'")
try:
    from r2d2_ros.msg import Keypoints  # noqa: F401
except ImportError:
    pytest.skip("r2d2_ros.msg is not built: run the tests through 'make test' (colcon build)", allow_module_level=True)

from rclpy.node import Node  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# Each test session gets its own DDS domain, so parallel or leftover runs do not cross-talk.
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture(scope="session")
def ros_context() -> Iterator[None]:
    # Modules outside test/ros_dds (test/bags) import this fixture, which makes it a second
    # session fixture: only the first to run initialises rclpy (and shuts it down).
    owner = not rclpy.ok()
    if owner:
        rclpy.init()
    yield
    if owner:
        rclpy.try_shutdown()


@pytest.fixture
def test_node(ros_context: None) -> Iterator[Node]:
    node = rclpy.create_node(f"r2d2_test_{os.getpid()}_{time.monotonic_ns()}")
    yield node
    node.destroy_node()


def spin_until(node: Node, condition: Callable[[], Any], timeout_s: float) -> bool:
    """Spins ``node`` until ``condition()`` is truthy or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        rclpy.spin_once(node, timeout_sec=0.05)
    return bool(condition())


class NodeProcess:
    """An r2d2_node in a subprocess, with its log kept for assertions."""

    def __init__(self, parameters: dict[str, Any], name: str = "r2d2_node", namespace: str = "",
                 python_code: str | None = None, remaps: dict[str, str] | None = None,
                 module: str = "r2d2_ros.ros.node") -> None:
        """Starts ``python -m module`` (the node), or ``python -c python_code`` (which must run the node)."""
        program = ["-c", python_code] if python_code else ["-m", module]
        args = [sys.executable, *program, "--ros-args", "-r", f"__node:={name}"]
        if namespace:
            args += ["-r", f"__ns:=/{namespace}"]
        for topic, target in (remaps or {}).items():
            args += ["-r", f"{topic}:={target}"]
        for key, value in parameters.items():
            args += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{name}_{os.getpid()}_{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)
        self.name = name

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "ready:" in self.log():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"node exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"node not ready after {timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:  # still running; after stop() the file is complete
            self._log.flush()
        return self.log_path.read_text()

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self) -> int:
        self.process.terminate()
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            self._log.close()


@pytest.fixture(scope="session")
def big_random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The "big" N8 architecture (mchan=6) with fixed random weights: slower to warm up than N16."""
    import torch

    from r2d2_ros.model import save_checkpoint
    from r2d2_ros.model.nets import Quad_L2Net_ConfCFS

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "random_big.pt"
    save_checkpoint(path, Quad_L2Net_ConfCFS(mchan=6))
    return path


# Single scale on small images, thresholds off: every frame yields keypoints quickly on CPU; fp32,
# so that the nodes compute alike on every CPU (precision auto is bf16 where the CPU has it).
FAST_PARAMETERS = {"device": "cpu", "precision": "fp32", "min_scale": 1.0, "min_size": 0, "max_size": 4096,
                   "reliability_threshold": 0.0, "repeatability_threshold": 0.0, "top_k": 200}
