"""The node's parameter documentation and parameter files, generated from one source.

    python tools/param_docs.py --write   # after changing r2d2_ros/serving/params.py or PRESETS below
    python tools/param_docs.py --check   # exit status 1, naming the stale files, when they drift

The source is ``PARAMETERS`` in r2d2_ros/serving/params.py (name, default, description, range,
choices, read-only). From it this writes the parameter table of docs/node.md (between the
``<!-- parameters:begin -->`` and ``<!-- parameters:end -->`` comments), the shipped parameters file
config/r2d2.yaml, and one file per preset, config/r2d2_<preset>.yaml: the defaults with the preset's
few overrides (``PRESETS``), whose table goes between ``<!-- presets:begin -->`` and
``<!-- presets:end -->``; and the README's short table of ``KEY_PARAMETERS`` (between
``<!-- key-parameters:begin -->`` and ``<!-- key-parameters:end -->``). Needs no ROS.
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's parameters, not an installed copy's

from r2d2_ros.serving.params import PARAMETERS, ParamSpec  # noqa: E402

NODE_PAGE = REPO / "docs" / "node.md"
README = REPO / "README.md"
PARAMS_FILE = REPO / "config" / "r2d2.yaml"
COMMENT_WIDTH = 110
# rcl's YAML parser cannot read an empty list, so a parameter whose value is one is written as a
# comment, with an example value where one is given here.
EMPTY_LIST_EXAMPLES = {"cameras": "[left, right]"}
# The parameters a newcomer sets first, in the README's short table.
KEY_PARAMETERS = ("model", "device", "precision", "backend", "top_k", "max_size", "subpixel", "descriptor_encoding",
                  "tracking", "track_max_points", "rectify_keypoints", "cameras")


@dataclass(frozen=True)
class Preset:
    """A parameters file for one kind of robot: the defaults with a few values changed."""

    name: str  # the file is config/r2d2_<name>.yaml
    robot: str  # who it is for, one line
    overrides: Mapping[str, Any] = field(default_factory=dict)


# Chosen by measurement: docs/node.md (Presets) gives the commands and figures behind each value.
PRESETS: tuple[Preset, ...] = (
    Preset("cpu", "a robot without a GPU (measured on 2 CPU cores)", {
        # Two pyramid levels per octave instead of four: 1.7x the frame rate on KITTI, tracks about as
        # long and as consistent. top_k stays 5000: tracking chooses from that many candidates, and with
        # 2000 EuRoC's tracks were less than half as long (default pyramid).
        "scale_f": 2**0.5,
    }),
    Preset("gpu", "a robot with a CUDA GPU (figures from one NVIDIA H200)", {
        "device": "cuda",  # a robot whose GPU fails stops at start-up instead of running on its CPU
        # The VO settings of docs/evaluation.md: cameras up to 1600 px at their own resolution.
        "max_size": 1600,
    }),
)


def yaml_value(value: Any) -> str:
    """``value`` as a YAML scalar or flow list that reads back as the same value and type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        # PyYAML (YAML 1.1) reads 1e-05 as a string: a float needs a '.' in its mantissa.
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    if isinstance(value, list):
        return "[" + ", ".join(yaml_value(item) for item in value) + "]"
    plain = str(value)
    if isinstance(value, str) and (not plain or yaml.safe_load(plain) != value or any(c in plain for c in "#:{}[],")):
        return json.dumps(value)  # a double-quoted YAML string
    return plain


def _constraint(parameter: ParamSpec) -> str:
    """The values a parameter accepts, in words."""
    if parameter.choices is not None:
        return " | ".join(parameter.choices)
    if parameter.minimum is not None and parameter.maximum is not None:
        return f"{parameter.minimum:g} to {parameter.maximum:g}"
    if parameter.minimum is not None:
        return f"at least {parameter.minimum:g}"
    return ""


def _yaml_comment(parameter: ParamSpec) -> list[str]:
    """The comment lines above a parameter in a parameters file: description, accepted values, read-only."""
    notes = [parameter.description.rstrip(".") + "."]
    if _constraint(parameter):
        notes.append(f"Values: {_constraint(parameter)}.")
    if parameter.read_only:
        notes.append("Read-only at runtime.")
    return textwrap.wrap(" ".join(notes), COMMENT_WIDTH, initial_indent="    # ", subsequent_indent="    # ")


def params_file_text(preset: Preset | None = None) -> str:
    """config/r2d2.yaml, or with a preset's overrides config/r2d2_<preset>.yaml."""
    overrides = dict(preset.overrides) if preset else {}
    unknown = set(overrides) - {parameter.name for parameter in PARAMETERS}
    if unknown:
        raise ValueError(f"preset {preset.name} overrides unknown parameters: {', '.join(sorted(unknown))}")
    title = f"the {preset.name} preset, for {preset.robot}" if preset else "the defaults"
    lines = [
        f"# Parameters of r2d2_node: {title}.",
        "# Every one is described by `ros2 param describe /r2d2_node <name>`.",
        "# Generated by tools/param_docs.py from r2d2_ros/serving/params.py: edit there, then run",
        "# python tools/param_docs.py --write.",
        "# '/**' applies them to any node name and namespace, so the multi-camera launch shares this file.",
    ]
    if preset:
        lines.append("# Values the preset changes are marked 'preset' (docs/node.md, Presets, says why).")
    lines += ["/**:", "  ros__parameters:"]
    for parameter in PARAMETERS:
        value = overrides.get(parameter.name, parameter.default)
        lines += _yaml_comment(parameter)
        if value == []:
            example = EMPTY_LIST_EXAMPLES.get(parameter.name, "[]")
            lines.append(f"    # {parameter.name}: {example}   (empty by default: left out)")
            continue
        mark = f"  # preset (default {yaml_value(parameter.default)})" if parameter.name in overrides else ""
        lines.append(f"    {parameter.name}: {yaml_value(value)}{mark}")
    lines += [
        "    # The input subscription defaults to sensor-data QoS (best effort, depth 5). Override it per",
        "    # topic, using the topic name after remapping, for example:",
        "    # qos_overrides:",
        "    #   /camera/image_raw:",
        "    #     subscription:",
        "    #       reliability: reliable",
        "    #       depth: 1",
    ]
    return "\n".join(lines) + "\n"


def _markdown_value(value: Any) -> str:
    return f"`{yaml_value(value)}`"


def _cell(text: str) -> str:
    """``text`` inside a Markdown table cell: '|' would end the cell, and <camera> would be read as HTML."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def key_parameter_table() -> str:
    """The README's short table: the parameters a newcomer sets first."""
    by_name = {parameter.name: parameter for parameter in PARAMETERS}
    rows = ["| parameter | default | description |", "|---|---|---|"]
    for name in KEY_PARAMETERS:
        parameter = by_name[name]
        rows.append(f"| `{name}` | {_markdown_value(parameter.default)} | {_cell(parameter.description)} |")
    return "\n".join(rows)


def parameter_table() -> str:
    """The full parameter table of docs/node.md."""
    rows = ["| parameter | default | accepted values | at runtime | description |", "|---|---|---|---|---|"]
    for parameter in PARAMETERS:
        constraint = _cell(_constraint(parameter).replace(" | ", ", "))
        runtime = "read-only" if parameter.read_only else "settable"
        rows.append(f"| `{parameter.name}` | {_markdown_value(parameter.default)} | {constraint} | {runtime} | "
                    f"{_cell(parameter.description)} |")
    return "\n".join(rows)


def preset_table() -> str:
    """The presets' overrides as one table for docs/node.md (every other parameter keeps its default)."""
    names = sorted({name for preset in PRESETS for name in preset.overrides},
                   key=[parameter.name for parameter in PARAMETERS].index)
    defaults = {parameter.name: parameter.default for parameter in PARAMETERS}
    header = ["parameter", "default (`config/r2d2.yaml`)"] + [f"`config/r2d2_{p.name}.yaml`" for p in PRESETS]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        cells = [f"`{name}`", _markdown_value(defaults[name])]
        cells += [_markdown_value(p.overrides[name]) if name in p.overrides else "default" for p in PRESETS]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def replace_generated(text: str, name: str, body: str) -> str:
    """``text`` with what lies between its ``<!-- name:begin -->`` and ``<!-- name:end -->`` replaced by ``body``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"no {begin} ... {end} block to fill")
    return text[:start + len(begin)] + "\n" + body + "\n" + text[stop:]


def generated_files() -> dict[Path, str]:
    """Every generated file and the text it must have."""
    page = NODE_PAGE.read_text()
    page = replace_generated(page, "parameters", parameter_table())
    page = replace_generated(page, "presets", preset_table())
    readme = replace_generated(README.read_text(), "key-parameters", key_parameter_table())
    files = {NODE_PAGE: page, README: readme, PARAMS_FILE: params_file_text()}
    files.update({PARAMS_FILE.with_name(f"r2d2_{preset.name}.yaml"): params_file_text(preset) for preset in PRESETS})
    return files


def stale_files() -> list[Path]:
    """The generated files whose text differs from what PARAMETERS and PRESETS give."""
    return [path for path, text in generated_files().items() if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite the generated files")
    action.add_argument("--check", action="store_true", help="exit status 1 when a generated file is stale")
    args = parser.parse_args(argv)
    if args.write:
        for path, text in generated_files().items():
            path.write_text(text)
        return 0
    stale = stale_files()
    for path in stale:
        print(f"{path.relative_to(REPO)} is stale: run python tools/param_docs.py --write", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
