"""The launch files pass model and device to the node only when the user gave them (not over params_file)."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parents[2] / "launch"


def _helper():
    spec = importlib.util.spec_from_file_location("r2d2_launch_overrides", LAUNCH / "r2d2_launch_overrides.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"model": "", "device": ""}, {}),  # nothing given: params_file decides
        ({"model": "/robot/r2d2.pt", "device": " "}, {"model": "/robot/r2d2.pt"}),
        ({"model": "", "device": "cuda:1"}, {"device": "cuda:1"}),
    ],
)
def test_only_given_arguments_override_the_params_file(arguments: dict, expected: dict) -> None:
    assert _helper().given_overrides(arguments) == expected


@pytest.mark.parametrize("launch_file", ["r2d2.launch.py", "r2d2_multi_camera.launch.py"])
def test_launch_files_declare_model_and_device_empty_and_filter_them(launch_file: str) -> None:
    tree = ast.parse((LAUNCH / launch_file).read_text())
    defaults = {
        call.args[0].value: next(k.value.value for k in call.keywords if k.arg == "default_value")
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DeclareLaunchArgument"
        and call.args[0].value in _helper().OVERRIDABLE
    }
    assert defaults == {"model": "", "device": ""}
    called = {call.func.id for call in ast.walk(tree) if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)}
    assert "given_overrides" in called
