"""Loading and saving R2D2 checkpoints without executing anything they contain.

Two formats are read:

* the original one: a torch pickle ``{'net': 'Quad_L2Net_ConfCFS()', 'state_dict': ...}``
  whose architecture is a Python call expression. It is parsed with :mod:`ast` and
  checked against an allow-list, never evaluated.
* this project's: ``{'format': 'r2d2_ros', 'version': 1, 'arch': {'name', 'kwargs'},
  'state_dict', 'config', 'meta'}`` with the architecture and training config as data.

Both are loaded with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import ast
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .nets import ARCHITECTURES, ArchSpec, R2D2Net

__all__ = ["ArchSpec", "CheckpointError", "parse_arch", "load_checkpoint", "load_model", "save_checkpoint"]

FORMAT_NAME = "r2d2_ros"
FORMAT_VERSION = 1


def _plain_dict(default_factory: object = None) -> dict[Any, Any]:
    """Stands in for ``collections.defaultdict`` (training logs in Fast-R2D2 checkpoints).

    The weights-only unpickler cannot fill a defaultdict, and the logs are not needed.
    """
    return {}


# What the weights-only unpickler may build besides tensors: a plain dict under defaultdict's name.
_SAFE_GLOBALS = [(_plain_dict, "collections.defaultdict"), list]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def parse_arch(expression: str) -> ArchSpec:
    """Parses an architecture string such as ``Quad_L2Net_ConfCFS(mchan=6)`` without evaluating it.

    Only a single call of a registered architecture with integer keyword arguments is accepted.

    Raises:
        ValueError: the string is not such a call.
    """
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"architecture {expression!r} is not a valid expression") from error
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise ValueError(f"architecture {expression!r} is not a call such as 'Quad_L2Net_ConfCFS()'")
    name = call.func.id
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    if call.args:
        raise ValueError(f"architecture {expression!r}: only keyword arguments are supported")
    kwargs: dict[str, int] = {}
    for keyword in call.keywords:
        if keyword.arg not in ("mchan", "dim"):
            raise ValueError(f"architecture {expression!r}: unsupported argument {keyword.arg!r}")
        try:
            value = ast.literal_eval(keyword.value)
        except ValueError as error:
            raise ValueError(f"architecture {expression!r}: {keyword.arg} is not a literal") from error
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"architecture {expression!r}: {keyword.arg} must be a positive integer")
        kwargs[keyword.arg] = value
    return ArchSpec(name, kwargs)


@dataclass
class Checkpoint:
    """What a checkpoint file holds, in either format."""

    arch: ArchSpec
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. a trainer's optimizer state


def _read(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or hostile pickles
        raise CheckpointError(path, f"not a readable checkpoint ({type(error).__name__}: {error})") from error


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Reads an original or r2d2_ros checkpoint.

    Raises:
        CheckpointError: missing, corrupt or truncated file, unknown format or architecture.
    """
    path = Path(path)
    content = _read(path)
    if not isinstance(content, dict):
        raise CheckpointError(path, f"expected a dict, found {type(content).__name__}")
    if content.get("format") == FORMAT_NAME:
        version = content.get("version")
        if version != FORMAT_VERSION:
            raise CheckpointError(path, f"unsupported {FORMAT_NAME} checkpoint version {version!r}")
        arch = content.get("arch")
        if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
            raise CheckpointError(path, "missing or malformed 'arch'")
        try:
            spec = parse_arch(ArchSpec(arch["name"], dict(arch.get("kwargs", {}))).to_string())
        except ValueError as error:
            raise CheckpointError(path, str(error)) from error
        known = {"format", "version", "arch", "state_dict", "config", "meta"}
        extra = {key: value for key, value in content.items() if key not in known}
        return Checkpoint(spec, _state_dict(path, content), content.get("config", {}), content.get("meta", {}), extra)
    if "net" in content and "state_dict" in content:
        if not isinstance(content["net"], str):
            raise CheckpointError(path, "'net' is not an architecture string")
        try:
            spec = parse_arch(content["net"])
        except ValueError as error:
            raise CheckpointError(path, str(error)) from error
        return Checkpoint(spec, _state_dict(path, content), meta={"source": "original R2D2 checkpoint"})
    raise CheckpointError(path, f"unknown checkpoint format (keys: {sorted(map(str, content))})")


def _state_dict(path: Path, content: dict[str, Any]) -> dict[str, torch.Tensor]:
    state = content["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, "'state_dict' is not a mapping of tensors")
    # Checkpoints saved from nn.DataParallel prefix every key with 'module.'.
    return {key.removeprefix("module."): value for key, value in state.items()}


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> R2D2Net:
    """Builds the network a checkpoint describes, loads its weights and puts it in eval mode.

    Raises:
        CheckpointError: as :func:`load_checkpoint`, or weights that do not fit the architecture.
    """
    checkpoint = load_checkpoint(path)
    model = checkpoint.arch.build()
    try:
        model.load_state_dict(checkpoint.state_dict, strict=True)
    except RuntimeError as error:
        raise CheckpointError(path, f"weights do not match {checkpoint.arch.to_string()}: {error}") from error
    model.checkpoint_meta = checkpoint.meta
    return model.eval().to(device)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: R2D2Net,
    config: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Writes an r2d2_ros checkpoint atomically (temporary file in the same folder, then rename).

    Args:
        path: destination file.
        model: the network; its architecture string is stored as data.
        config: the training configuration, plain data only.
        meta: free-form plain data (steps, data, timings).
        extra: further plain-data entries, e.g. optimizer state for resuming.
    """
    if model.inference_only:
        raise ValueError("refusing to save a network prepared for inference (its batch norm is folded)")
    path = Path(path)
    arch = parse_arch(model.arch)
    state_dict = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    content = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "arch": {"name": arch.name, "kwargs": dict(arch.kwargs)},
        "state_dict": state_dict,
        "config": config or {},
        "meta": meta or {},
        **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(handle, 0o644)  # mkstemp makes owner-only files; checkpoints are meant to be shared
        with os.fdopen(handle, "wb") as stream:
            torch.save(content, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
