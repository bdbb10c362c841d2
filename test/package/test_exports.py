"""The names the package and its subpackages export: each one resolves, the top level's only on first use (so
that importing r2d2_ros costs nothing until a name is used), and the bundled model's path (no ROS)."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import r2d2_ros
from r2d2_ros import weights

SUBPACKAGES = ["bags", "extraction", "model", "tracking", "training", "weights"]


def test_importing_the_package_imports_no_name_until_it_is_used() -> None:
    code = ("import sys, r2d2_ros\n"
            "print(sorted(m for m in ('torch', 'r2d2_ros.model', 'r2d2_ros.extraction') if m in sys.modules))\n"
            "print('load_model' in vars(r2d2_ros))\n"
            "r2d2_ros.load_model\n"
            "print(vars(r2d2_ros).get('load_model') is sys.modules['r2d2_ros.model'].load_model)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # Nothing heavy at import; the name is looked up once, then kept in the module (later lookups are plain).
    assert result.stdout.split("\n")[:3] == ["[]", "False", "True"]


def test_every_top_level_name_is_its_modules_object() -> None:
    assert r2d2_ros.__all__ == ["ExtractionConfig", "Features", "extract_multiscale", "load_model", "load_r2d2",
                                "prepare_for_inference", "save_r2d2"]
    homes = {"ExtractionConfig": "extraction", "extract_multiscale": "extraction", "Features": "features",
             "load_r2d2": "features", "save_r2d2": "features", "load_model": "model",
             "prepare_for_inference": "model"}
    for name, home in homes.items():
        assert getattr(r2d2_ros, name) is getattr(importlib.import_module(f"r2d2_ros.{home}"), name), name


def test_an_unknown_top_level_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"^module 'r2d2_ros' has no attribute 'Keypoints'$"):
        r2d2_ros.Keypoints  # noqa: B018 (the lookup is the test)
    assert not hasattr(r2d2_ros, "trainer")


@pytest.mark.parametrize("subpackage", SUBPACKAGES)
def test_every_exported_name_of_a_subpackage_exists(subpackage: str) -> None:
    module = importlib.import_module(f"r2d2_ros.{subpackage}")
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert module.__all__ and missing == []
    star: dict[str, object] = {}
    exec(f"from r2d2_ros.{subpackage} import *", star)  # noqa: S102 (what a star import gives)
    assert sorted(set(star) - {"__builtins__"}) == sorted(module.__all__)


def test_the_bundled_model_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert weights.default_model_path() == weights.DEFAULT_MODEL
    assert weights.DEFAULT_MODEL.name == "r2d2_ros_default.pt" and weights.DEFAULT_MODEL.is_file()
    assert weights.DEFAULT_MODEL.parent == Path(weights.__file__).parent
    missing = tmp_path / "r2d2_ros_default.pt"
    monkeypatch.setattr(weights, "DEFAULT_MODEL", missing)
    with pytest.raises(FileNotFoundError, match=rf"^the bundled default model {missing} is missing; pass a model "
                                                r"path$"):
        weights.default_model_path()
