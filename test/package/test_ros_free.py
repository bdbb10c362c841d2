"""Only r2d2_ros/ros imports rclpy (statically here; test_build_and_install imports every other module with rclpy
blocked), and reading the Keypoints message costs what a message package costs."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "r2d2_ros"


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_nothing_outside_ros_imports_rclpy() -> None:
    offenders = [str(path.relative_to(PACKAGE)) for path in sorted(PACKAGE.rglob("*.py"))
                 if path.relative_to(PACKAGE).parts[0] != "ros"
                 and any(module == "rclpy" or module.startswith("rclpy.") for module in _imported_modules(path))]
    assert offenders == []


def test_the_checker_sees_an_rclpy_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from rclpy.node import Node\n    return Node\n")
    assert "rclpy.node" in _imported_modules(sample)


def test_importing_the_message_does_not_import_torch_or_the_library() -> None:
    pytest.importorskip("r2d2_ros.msg", reason="r2d2_ros.msg is not built: run the tests through 'make test'")
    code = ("import sys\nfrom r2d2_ros.msg import Keypoints\n"
            "print(sorted(m for m in ('torch', 'cv2', 'r2d2_ros.extraction', 'r2d2_ros.model') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
