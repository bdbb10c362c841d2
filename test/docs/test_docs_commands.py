"""The README and docs/ cannot rot: their commands run, and their parameters, topics and links exist.

Commands are read from the ```bash blocks and from inline code that starts with a program; each
program is run once with --help (in this interpreter, so that torch is imported once, not once per
program) and must know every option the documents give it.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

from r2d2_ros.serving.params import PARAMETERS

from ..conftest import REPO

DOCUMENTS = (REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md")))
# Checked for links only: its commands are the training log's, as they ran.
LINKED_DOCUMENTS = (*DOCUMENTS, REPO / "r2d2_ros" / "weights" / "MODEL_CARD.md")

# The node's topics, as one camera's node names them (a rig's cameras put <camera>/ before each).
# The one list to update when the node renames a topic: test_the_node_uses_every_topic checks it
# against r2d2_ros/ros/node.py.
NODE_TOPICS = ("image", "image/compressed", "camera_info", "keypoints", "keypoints/camera_info",
               "keypoints/heatmap/repeatability", "keypoints/heatmap/reliability", "keypoints/image", "/diagnostics")

# This repository's programs, as the documents name them, and how to run each (python ...).
PROGRAMS = {
    "r2d2-extract": ["-m", "r2d2_ros.cli.extract"],
    "r2d2-export": ["-m", "r2d2_ros.cli.export"],
    "r2d2-train": ["-m", "r2d2_ros.cli.train"],
    "r2d2-eval": ["-m", "r2d2_ros.cli.evaluate"],
    "r2d2_player": ["-m", "r2d2_ros.ros.player"],
    "r2d2_listener": ["-m", "r2d2_ros.ros.listener"],
}
# Programs that need rclpy and the colcon-built messages to start, even for --help.
ROS_PROGRAMS = {"r2d2_player", "r2d2_listener", "python benchmarks/node_latency.py"}
# Shown in the documents but not run here: other projects' tools, and r2d2_node, whose arguments are
# ROS arguments (its parameters are checked by test_documented_parameters_exist instead).
OTHER_PROGRAMS = {"cd", "git", "pip", "colcon", "source", "ros2", "r2d2_node", "python -m pytest", "python -c",
                  "torchrun", "srun", "sbatch", "kubectl"}


def _bash_blocks(text: str) -> list[str]:
    """The lines of every ```bash block, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]


def _inline_code(text: str) -> list[str]:
    """Inline code spans outside fenced blocks."""
    return re.findall(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))


def _commands(line: str) -> list[list[str]]:
    """The words of each command on a shell line (split at ; and &&), comments and nice dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&")
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:  # not a shell command (an unbalanced quote in prose)
        return []
    commands, current = [], []
    for word in [*words, ";"]:
        if word in (";", "&&"):
            while current[:1] == ["nice"]:
                current = current[3:] if current[1:2] == ["-n"] else current[1:]
            commands += [current] if current else []
            current = []
        elif not current and re.match(r"^\w+=", word):  # a leading NAME=value sets a variable
            if "$(" in word:  # from another program's output (scontrol, ...): not one of ours
                return commands
        else:
            current.append(word)
    return commands


def program_of(words: list[str]) -> str:
    """The program a command runs: its name, or 'python <script>' / 'python -m <module>'."""
    if words[0] in ("python", "python3") and len(words) > 1:
        return "python -c" if words[1] == "-c" else f"python {' '.join(words[1:3] if words[1] == '-m' else words[1:2])}"
    return words[0]


def documented_commands() -> list[tuple[str, list[str]]]:
    """(program, words) of every command the documents show."""
    commands = []
    for document in DOCUMENTS:
        text = document.read_text()
        lines = _bash_blocks(text)
        lines += [code for code in _inline_code(text) if code.split()[0] in (*PROGRAMS, "python", "make", "r2d2_node")]
        commands += [(program_of(words), words) for line in lines for words in _commands(line)]
    return commands


COMMANDS = documented_commands()
OWN_PROGRAMS = sorted({program for program, _ in COMMANDS if program not in OTHER_PROGRAMS and program != "make"})


def _run_help(program: str) -> tuple[int, str]:
    """``program --help`` run in this interpreter: its exit status and output."""
    target = PROGRAMS.get(program, program.split()[1:])
    saved_argv, saved_path, output = sys.argv, sys.path[:], io.StringIO()
    status = 0
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            if target[0] == "-m":
                sys.argv = [target[1], "--help"]
                runpy.run_module(target[1], run_name="__main__", alter_sys=True)
            else:
                script = REPO / target[0]
                sys.argv = [str(script), "--help"]
                sys.path.insert(0, str(script.parent))  # as python <script> does: its sibling imports
                runpy.run_path(str(script), run_name="__main__")
    except SystemExit as end:
        status = end.code if isinstance(end.code, int) else 0 if end.code is None else 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return status, output.getvalue()


def _documented_options(program: str) -> set[str]:
    options = set()
    for name, words in COMMANDS:
        if name != program:
            continue
        arguments = words[:words.index("--ros-args")] if "--ros-args" in words else words
        options |= {word.strip("[]").split("=")[0] for word in arguments if word.strip("[").startswith("--")}
    return options


def test_every_documented_program_is_known() -> None:
    """A program new to the documents goes into PROGRAMS (or OTHER_PROGRAMS), so that its commands are run."""
    unknown = [p for p in OWN_PROGRAMS if p not in PROGRAMS and not re.match(r"python (-m \S+|\S+\.py)$", p)]
    assert not unknown


@pytest.mark.parametrize("program", OWN_PROGRAMS)
def test_documented_commands_answer_help_with_their_options(program: str) -> None:
    if program in ROS_PROGRAMS and (importlib.util.find_spec("rclpy") is None or
                                    importlib.util.find_spec("r2d2_ros.msg") is None):
        pytest.skip(f"{program} needs rclpy and the colcon-built messages (make setup)")
    status, output = _run_help(program)
    assert status == 0, output[-2000:]
    unknown = {option for option in _documented_options(program) if option not in output}
    assert not unknown, f"{program} --help does not know {sorted(unknown)}"


def test_documented_make_targets_exist() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = {next(w for w in words[1:] if "=" not in w) for program, words in COMMANDS if program == "make"}
    assert targets and not [t for t in targets if not re.search(rf"^{re.escape(t)}:", makefile, flags=re.M)]


def _launch_arguments() -> set[str]:
    return {name for launch in (REPO / "launch").glob("*.launch.py")
            for name in re.findall(r'DeclareLaunchArgument\(\s*"(\w+)"', launch.read_text())}


def _table_first_column(text: str, header: str) -> list[str]:
    """The code names in the first column of every table whose first header cell is ``header``."""
    names, inside = [], False
    for line in text.splitlines():
        if line.startswith(f"| {header} |"):
            inside = True
        elif inside and line.startswith("|") and not line.startswith("|---"):
            names += re.findall(r"`([^`]+)`", line.split("|")[1])
        elif not line.startswith("|"):
            inside = False
    return names


def test_documented_parameters_exist() -> None:
    """Parameter tables, and every name:=value, name only parameters of the node or the launch files' arguments."""
    parameters = {p.name for p in PARAMETERS}
    names = set()
    for document in DOCUMENTS:
        text = document.read_text()
        names |= set(_table_first_column(text, "parameter"))
        # name:=value after -r is a remapping, not a parameter.
        names |= {n for n in re.findall(r"(?<!-r )(?<![\w./-])(\w+):=", text) if n not in _launch_arguments()}
    assert names and not sorted(names - parameters)


def test_documented_topics_are_the_node_topics() -> None:
    documented = [name.removeprefix("<camera>/") for document in DOCUMENTS
                  for name in _table_first_column(document.read_text(), "topic")]
    assert documented and not sorted(set(documented) - set(NODE_TOPICS))


def test_the_node_uses_every_topic() -> None:
    source = (REPO / "r2d2_ros" / "ros" / "server.py").read_text()
    assert not [topic for topic in NODE_TOPICS if f'"{topic}"' not in source]


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(document: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)
    return {_anchor(heading) for heading in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("document", LINKED_DOCUMENTS, ids=lambda path: str(path.relative_to(REPO)))
def test_relative_links_lead_to_files_and_headings(document: Path) -> None:
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
            broken.append(target)
    assert not broken
