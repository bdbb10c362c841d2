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
    # Architecture string, as in checkpoints. The Fast net: as accurate as N16 for 3.4x fewer FLOPs
    # per pixel (see the model card); Quad_L2Net_ConfCFS() is N16.
    arch: str = "Fast_Quad_L2Net_ConfCFS()"
    init: str = ""  # checkpoint to start from (fine-tuning); empty = random initialisation
    # With init: start the reliability head from zero (reliability 0.5 everywhere). For a network
    # whose reliability saturated near 0, where its gradient vanishes.
    reset_reliability: bool = False


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4  # Adam peak learning rate (the original: 1e-4, constant)
    weight_decay: float = 5e-4  # L2 penalty, as the original
    warmup_steps: int = 0  # linear warm-up to lr over these steps
    decay: str = "none"  # none (constant after warm-up, as the original) | cosine (to min_lr_fraction at run.steps)
    min_lr_fraction: float = 0.05

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0: {self}")
        if self.warmup_steps < 0 or not 0 <= self.min_lr_fraction <= 1:
            raise ValueError(f"need warmup_steps >= 0 and 0 <= min_lr_fraction <= 1: {self}")
        if self.decay not in ("none", "cosine"):
            raise ValueError(f"decay must be none or cosine, got {self.decay!r}")


@dataclass(frozen=True)
class RunConfig:
    steps: int = 50_000  # optimizer steps in total
    batch_size: int = 8  # pairs per step, over all processes under torchrun (each takes an equal slice)
    workers: int = 4  # data-loading processes (0 = in the main process)
    seed: int = 0
    device: str = "auto"
    # auto: bf16 on a GPU or on a CPU with native bf16 (AVX512-BF16, AMX), else none (fp32)
    amp: str = "auto"  # auto | none | bf16 | fp16 (fp16: GPU only)
    channels_last: bool = True  # memory layout of the network's activations
    time_limit_minutes: float = 0.0  # stop (with a checkpoint) after this long; 0 = no limit (CPU chunks)
    log_every: int = 50  # steps between CSV / TensorBoard rows
    val_every: int = 1000  # steps between validations (MMA@3 on held-out synthetic pairs)
    val_pairs: int = 64
    val_size: int = 320  # side of the validation pairs (held-out photos), extracted as the node does
    val_threshold: float = 0.7  # reliability and repeatability thresholds of the validation extraction
    val_image_every: int = 20  # every N-th image is held out for validation
    checkpoint_every: int = 500  # steps between atomic checkpoints
    output: str = "runs/r2d2"
    # Under torchrun: auto = sync (statistics of the global batch) on GPUs, local (each rank's slice)
    # on CPUs; frozen = running statistics, for fine-tuning. See training/distributed.py.
    batch_norm: str = "auto"  # auto | sync | local | frozen

    def __post_init__(self) -> None:
        if self.amp not in ("auto", "none", "bf16", "fp16"):
            raise ValueError(f"amp must be auto, none, bf16 or fp16, got {self.amp!r}")
        if self.time_limit_minutes < 0:
            raise ValueError(f"time_limit_minutes must be >= 0, got {self.time_limit_minutes}")
        for name in ("steps", "batch_size", "log_every", "val_every", "val_pairs", "val_size", "val_image_every",
                     "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_norm not in ("auto", "sync", "local", "frozen"):
            raise ValueError(f"batch_norm must be auto, sync, local or frozen, got {self.batch_norm!r}")
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

