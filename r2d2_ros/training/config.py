"""Training configuration: frozen dataclasses, read from YAML with dotted CLI overrides.

Unknown keys raise, so a typo in a config file never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .data import DataConfig
from .losses import LossConfig

__all__ = ["ModelConfig", "OptimConfig", "RunConfig", "TrainConfig", "load_config", "config_to_dict", "config_from_dict"]


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "Quad_L2Net_ConfCFS()"  # architecture string, as in checkpoints
    init: str = ""  # checkpoint to start from (fine-tuning); empty = random initialisation
    # With init: start the reliability head from zero (reliability 0.5 everywhere). For a network
    # whose reliability saturated near 0, where its gradient vanishes.
    reset_reliability: bool = False


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4  # Adam learning rate (constant, as the original)
    weight_decay: float = 5e-4  # L2 penalty, as the original

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0: {self}")


@dataclass(frozen=True)
class RunConfig:
    steps: int = 50_000  # optimizer steps in total
    batch_size: int = 8  # pairs per step
    workers: int = 4  # data-loading processes (0 = in the main process)
    seed: int = 0
    device: str = "auto"
    amp: str = "none"  # none | bf16 | fp16 (mixed precision on GPU)
    channels_last: bool = True  # memory layout on GPU
    log_every: int = 50  # steps between CSV / TensorBoard rows
    val_every: int = 1000  # steps between validations (MMA@3 on held-out synthetic pairs)
    val_pairs: int = 64
    val_image_every: int = 20  # every N-th image is held out for validation
    checkpoint_every: int = 500  # steps between atomic checkpoints
    output: str = "runs/r2d2"

    def __post_init__(self) -> None:
        if self.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"amp must be none, bf16 or fp16, got {self.amp!r}")
        for name in ("steps", "batch_size", "log_every", "val_every", "val_pairs", "val_image_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")


@dataclass(frozen=True)
class TrainConfig:
    images: tuple[str, ...] = ("../shared/data/train",)  # folders of training photos (synthetic pairs)
    flow_pairs: tuple[str, ...] = ()  # folders of real pairs with flow (see training/data.py)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


def config_from_dict(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """Builds dataclass ``cls`` from nested mappings; unknown keys raise ``ValueError``."""
    if not isinstance(values, dict):
        raise ValueError(f"{where or 'config'}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(where + k for k in unknown)}; known: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = config_from_dict(kind, value, f"{where}{name}.")
        elif typing.get_origin(kind) is tuple:
            kwargs[name] = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        elif kind is float and isinstance(value, int) and not isinstance(value, bool):
            kwargs[name] = float(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dicts and lists (for YAML files and checkpoints)."""
    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def _set_dotted(values: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for parent in parents:
        values = values.setdefault(parent, {})
        if not isinstance(values, dict):
            raise ValueError(f"{dotted}: {parent} is not a section")
    values[leaf] = value


def load_config(path: str | os.PathLike[str] | None = None, overrides: list[str] = ()) -> TrainConfig:
    """Reads a YAML config (optional) and applies ``section.key=value`` overrides (values parsed as YAML).

    Relative image folders in a file are taken relative to the current directory.

    Raises:
        ValueError: unknown keys, bad values or malformed overrides.
    """
    values: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        values = loaded
    for override in overrides:
        if "=" not in override:
            raise ValueError(f"override {override!r} must look like section.key=value")
        key, text = override.split("=", 1)
        _set_dotted(values, key.strip(), yaml.safe_load(text))
    return config_from_dict(TrainConfig, values)

