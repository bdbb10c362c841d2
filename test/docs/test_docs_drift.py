"""The generated parameter documentation and parameters files say what PARAMETERS says."""
from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pytest
import yaml

from r2d2_ros.serving.params import PARAMETERS, ParamSpec, defaults, validate_update

from ..conftest import REPO


def test_generated_files_are_up_to_date(param_docs: ModuleType) -> None:
    stale = [str(path.relative_to(REPO)) for path in param_docs.stale_files()]
    assert not stale, f"run python tools/param_docs.py --write: {stale} differ from r2d2_ros/serving/params.py"


def test_check_exits_non_zero_when_a_parameter_is_added(param_docs: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """What the other files lag behind when params.py gains a parameter and --write was not run."""
    added = ParamSpec("new_parameter", 1, "a parameter the files do not have yet", 0, 10)
    monkeypatch.setattr(param_docs, "PARAMETERS", (*PARAMETERS, added))
    assert param_docs.main(["--check"]) == 1
    stale = capsys.readouterr().err
    for path in ("docs/node.md", "config/r2d2.yaml", "config/r2d2_cpu.yaml", "config/r2d2_gpu.yaml"):
        assert f"{path} is stale" in stale


def test_check_runs_as_a_script() -> None:
    result = subprocess.run([sys.executable, "tools/param_docs.py", "--check"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["r2d2", "r2d2_cpu", "r2d2_gpu"])
def test_parameters_files_read_back_as_valid_values(param_docs: ModuleType, name: str) -> None:
    """Each file is a ROS 2 parameters file whose values the node accepts: the defaults and the preset's."""
    document = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
    values = document["/**"]["ros__parameters"]
    preset = {p.name: p for p in param_docs.PRESETS}.get(name.removeprefix("r2d2_"))
    expected = {name: value for name, value in {**defaults(), **(preset.overrides if preset else {})}.items()
                if value != []}  # an empty list is written as a comment: rcl's parser cannot read one
    assert values == pytest.approx(expected)
    assert validate_update({**defaults(), **values}, {}) is None


def test_every_parameter_has_a_row_in_the_full_table(param_docs: ModuleType) -> None:
    table = param_docs.parameter_table()
    assert [line.split("`")[1] for line in table.splitlines()[2:]] == [p.name for p in PARAMETERS]


@pytest.mark.parametrize("value", [True, 3, 0.1, 1e-05, 2.0**0.25, "", "auto", "yes", "1.5", "a: b", ["left", "right"]])
def test_yaml_values_read_back_as_themselves(param_docs: ModuleType, value: object) -> None:
    assert yaml.safe_load(f"key: {param_docs.yaml_value(value)}")["key"] == value


def test_a_preset_of_an_unknown_parameter_is_refused(param_docs: ModuleType) -> None:
    with pytest.raises(ValueError, match="no_such_parameter"):
        param_docs.params_file_text(param_docs.Preset("test", "tests", {"no_such_parameter": 1}))
