"""The package builds with colcon (plain and symlink) and installs with pip, as a user would do it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)


def _run(command: list[str] | str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, shell=isinstance(command, str), capture_output=True,
                            text=True, timeout=600, executable="/bin/bash" if isinstance(command, str) else None)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.mark.parametrize("symlink", [False, True], ids=["plain", "symlink-install"])
def test_colcon_build_in_a_fresh_workspace(tmp_path: Path, symlink: bool) -> None:
    if shutil.which("colcon") is None or not (VENV / "share" / "rosidl_default_generators").exists():
        pytest.skip("colcon and the ROS 2 build wheels are not installed: run the tests through 'make test'")
    source = tmp_path / "src"
    source.mkdir()
    (source / "r2d2_ros").symlink_to(REPO)
    env = {**os.environ, "AMENT_PREFIX_PATH": str(VENV), "CMAKE_PREFIX_PATH": str(VENV)}
    flags = "--symlink-install " if symlink else ""
    _run(f"colcon build {flags}--cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE={sys.executable}", tmp_path, env)
    install = tmp_path / "install" / "r2d2_ros"
    assert (install / "lib" / "r2d2_ros" / "r2d2_node").exists()  # where `ros2 run r2d2_ros r2d2_node` looks
    assert (install / "share" / "r2d2_ros" / "launch" / "r2d2.launch.py").exists()
    assert (install / "share" / "r2d2_ros" / "config" / "r2d2.yaml").exists()
    assert (install / "bin" / "r2d2-extract").exists() and (install / "bin" / "r2d2-export").exists()
    # Import from the install space alone, outside the repository.
    probe = ("import r2d2_ros, r2d2_ros.msg, r2d2_ros.model; "
             "from r2d2_ros.msg import Keypoints; print(r2d2_ros.msg.__file__, Keypoints.ENCODING_UINT8)")
    out = _run(f"unset PYTHONPATH; . install/local_setup.sh && cd / && {sys.executable} -c '{probe}'", tmp_path, env)
    assert str(tmp_path / "install") in out and out.strip().endswith("2")


def test_pip_install_gives_the_ros_free_library_and_console_scripts(tmp_path: Path) -> None:
    target = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet", "--target",
          str(target), str(REPO)], tmp_path)
    scripts = {p.name for p in (target / "bin").iterdir()}
    assert {"r2d2-extract", "r2d2-export", "r2d2-train", "r2d2-eval"} <= scripts
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = _run([sys.executable, "-c", "import r2d2_ros, r2d2_ros.training, r2d2_ros.evaluation; print(r2d2_ros.__file__)"],
               tmp_path, env)
    assert out.startswith(str(target))


def test_library_never_imports_rclpy() -> None:
    """Everything outside r2d2_ros.ros (the rclpy adapters) works with rclpy unavailable."""
    modules = sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts)
        for path in (REPO / "r2d2_ros").rglob("*.py")
        if path.relative_to(REPO / "r2d2_ros").parts[0] != "ros" and "__pycache__" not in path.parts
    )
    probe = (
        "import sys, importlib\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'rclpy' or name.startswith('rclpy.'):\n"
        "            raise ImportError('rclpy is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for module in {[m.removesuffix('.__init__') for m in modules]!r}:\n"
        "    importlib.import_module(module)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
