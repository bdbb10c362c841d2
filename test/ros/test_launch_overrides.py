"""The launch files' helpers: model and device only when given (not over params_file), and the cameras' topics."""
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


@pytest.mark.parametrize(("text", "expected"), [("front,rear", ["front", "rear"]), (" left , /right/ ", ["left", "right"]),
                                                 ("stereo/left,stereo/right", ["stereo/left", "stereo/right"])])
def test_camera_names(text: str, expected: list[str]) -> None:
    assert _helper().camera_names(text) == expected


@pytest.mark.parametrize("text", ["", " , ", "left,left"])
def test_bad_camera_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        _helper().camera_names(text)


def test_image_remappings_for_a_node_in_the_camera_namespace_and_for_one_serving_several() -> None:
    helper = _helper()
    assert helper.image_remappings("front", "image_raw") == [("image", "/front/image_raw")]
    assert helper.image_remappings("left", "/color/image_raw/", "left/") == [("left/image", "/left/color/image_raw")]
    assert helper.output_remappings("left") == [("left/keypoints", "/left/keypoints")]


@pytest.mark.parametrize(("image", "namespace"), [("/camera/image_raw", "camera"), ("/robot/front/image_rect", "robot/front"),
                                                  ("/image_raw", "r2d2"), ("image_raw", "r2d2")])
def test_a_node_goes_beside_its_camera_by_default(image: str, namespace: str) -> None:
    assert _helper().namespace_beside(image) == namespace
    assert _helper().rig_namespace(["left", "stereo/right"]) == "left_stereo/right".replace("/", "_")


def test_a_configuration_error_is_not_respawned_and_its_code_is_the_nodes() -> None:
    pytest.importorskip("rclpy", reason="rclpy is not installed: run the tests through 'make test'")
    from r2d2_ros.ros.node import EXIT_CONFIGURATION_ERROR  # rclpy is only needed here, not by the helper

    helper = _helper()
    assert helper.EXIT_CONFIGURATION_ERROR == EXIT_CONFIGURATION_ERROR
    assert not helper.respawn_after(EXIT_CONFIGURATION_ERROR)
    assert helper.respawn_after(1) and helper.respawn_after(-9)


@pytest.mark.parametrize(("preset", "file"), [("default", "r2d2.yaml"), ("cpu", "r2d2_cpu.yaml"), (" GPU ", "r2d2_gpu.yaml")])
def test_a_preset_names_a_parameters_file_that_exists(preset: str, file: str) -> None:
    assert _helper().preset_file(preset) == file
    assert (LAUNCH.parent / "config" / file).is_file()


def test_an_unknown_preset_is_refused() -> None:
    with pytest.raises(ValueError, match="default, cpu, gpu"):
        _helper().preset_file("jetson")
