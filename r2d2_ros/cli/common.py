"""Options shared by the command-line tools: model, device and extraction settings."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from ..device import resolve_device
from ..extraction import PRECISIONS, ExtractionConfig
from ..model import R2D2Net, load_model, prepare_for_inference
from ..weights import default_model_path

__all__ = ["add_model_arguments", "add_extraction_arguments", "extraction_config", "model_path", "model_from_args"]


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds --model and --device."""
    parser.add_argument("--model", help="checkpoint (original R2D2 or r2d2_ros); default: the bundled model")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")


def add_extraction_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one option per :class:`ExtractionConfig` field, defaulting to its value."""
    defaults = ExtractionConfig()
    group = parser.add_argument_group("extraction")
    group.add_argument("--top-k", type=int, default=defaults.top_k, help="keypoints kept per image")
    group.add_argument("--scale-f", type=float, default=defaults.scale_f, help="ratio between pyramid levels")
    group.add_argument("--min-scale", type=float, default=defaults.min_scale)
    group.add_argument("--max-scale", type=float, default=defaults.max_scale)
    group.add_argument("--min-size", type=int, default=defaults.min_size)
    group.add_argument("--max-size", type=int, default=defaults.max_size)
    group.add_argument("--reliability-threshold", type=float, default=defaults.reliability_threshold)
    group.add_argument("--repeatability-threshold", type=float, default=defaults.repeatability_threshold)
    group.add_argument("--precision", choices=sorted(PRECISIONS), default=defaults.precision)


def extraction_config(args: argparse.Namespace) -> ExtractionConfig:
    """The ExtractionConfig that the parsed options describe (raises ValueError when invalid)."""
    return ExtractionConfig(**{field.name: getattr(args, field.name) for field in dataclasses.fields(ExtractionConfig)})


def model_path(args: argparse.Namespace) -> Path:
    """The checkpoint that --model names, else the bundled one."""
    return Path(args.model) if args.model else default_model_path()


def model_from_args(args: argparse.Namespace) -> tuple[R2D2Net, torch.device]:
    """Loads --model (or the bundled one) on --device, prepared for inference."""
    device = resolve_device(args.device)
    return prepare_for_inference(load_model(model_path(args), device)), device
