"""Options shared by the command-line tools: model, device, backend and extraction settings."""
from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import torch

from ..backends import BACKENDS, DEFAULT_ENGINE_CACHE, PROVIDER_CHOICES, Backend, OnnxRuntimeRunner, make_runner
from ..device import resolve_device
from ..extraction import PRECISION_CHOICES, ExtractionConfig, NetworkRunner
from ..model import R2D2Net, load_model, prepare_for_inference
from ..weights import default_model_path

__all__ = ["add_model_arguments", "add_backend_arguments", "add_extraction_arguments", "backend_from_args",
           "extraction_config", "model_path", "model_from_args", "runner_from_args"]

log = logging.getLogger("r2d2_ros")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds --model and --device."""
    parser.add_argument("--model", help="checkpoint (original R2D2 or r2d2_ros); default: the bundled model")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds --backend, --execution-provider and --engine-cache (see :mod:`r2d2_ros.backends`)."""
    group = parser.add_argument_group("backend")
    group.add_argument("--backend", choices=BACKENDS, default="torch", help="what runs the network (default: torch)")
    group.add_argument("--execution-provider", choices=PROVIDER_CHOICES, default="auto",
                       help="onnxruntime only: auto = TensorRT, else CUDA, on a GPU; the CPU provider on the CPU")
    group.add_argument("--engine-cache", type=Path, default=DEFAULT_ENGINE_CACHE,
                       help=f"onnxruntime with TensorRT only: engine cache folder (default: {DEFAULT_ENGINE_CACHE})")


def backend_from_args(args: argparse.Namespace) -> Backend:
    """The backend that --backend, --execution-provider and --engine-cache choose."""
    return Backend(args.backend, args.execution_provider, args.engine_cache)


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
    group.add_argument("--subpixel", action=argparse.BooleanOptionalAction, default=defaults.subpixel,
                       help="sub-pixel keypoint positions (default: off, the original's whole level pixels)")
    group.add_argument("--precision", choices=PRECISION_CHOICES, default=defaults.precision,
                       help="auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32 (default: auto)")
    group.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=defaults.cuda_graphs,
                       help="on CUDA with backend torch: replay the pyramid of an image size seen before from a "
                            "captured CUDA graph, same results (default: off)")


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


def runner_from_args(args: argparse.Namespace, config: ExtractionConfig) -> tuple[NetworkRunner, R2D2Net]:
    """Loads --model on --device in --backend, and logs the precision that ``config.precision`` resolves to.

    Returns:
        The runner for :func:`~r2d2_ros.extraction.extract_multiscale`, and the network it runs.
    """
    model, device = model_from_args(args)
    backend = backend_from_args(args)
    runner = make_runner(model, backend.name, config.precision, backend.provider, backend.engine_cache,
                         config.max_size)
    provider = f" ({runner.provider} provider)" if isinstance(runner, OnnxRuntimeRunner) else ""
    log.info("%s on %s, backend %s%s, precision %s -> %s", model.arch, device, args.backend, provider,
             config.precision, runner.precision(config.precision))
    return runner, model
