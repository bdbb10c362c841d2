"""The node's network: loaded, prepared and warmed up before it serves a frame (no rclpy).

Both start-up and runtime reloads go through :func:`load_inference_model`, so a model that
cannot be loaded or cannot run a frame, for whatever reason (a bad file, a missing GPU, out of
memory), is one :class:`ModelLoadError` with the reason, and never replaces a working model.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backends import DEFAULT_ENGINE_CACHE, make_runner
from ..device import resolve_device
from ..extraction import ExtractionConfig, NetworkRunner, extract_multiscale
from ..model import load_model, prepare_for_inference
from ..weights import default_model_path

__all__ = ["InferenceModel", "ModelLoadError", "cpu_fallback_note", "load_inference_model", "model_problem", "model_settings", "warm_up"]

_WARMUP_SHAPE = (240, 320, 3)


class ModelLoadError(RuntimeError):
    """A model that cannot serve: the message says why."""


@dataclass(frozen=True)
class InferenceModel:
    """A network ready for frames, and what the node reports about it."""

    network: NetworkRunner
    device: torch.device
    name: str
    device_note: str  # "" unless the device is not what the user may expect (a CPU fallback)
    arch: str  # the architecture string, e.g. Quad_L2Net_ConfCFS()
    backend: str  # torch or onnxruntime


def cpu_fallback_note(requested: str, device: torch.device) -> str:
    """Why ``device`` differs from what ``requested`` suggests, or "".

    ``auto`` means "a GPU when there is one": landing on the CPU makes every frame take seconds,
    which a user should learn from the start-up log and /diagnostics, not from the frame rate.
    """
    if requested.strip().lower() == "auto" and device.type == "cpu":
        return "device auto found no CUDA GPU: running on the CPU (expect seconds per frame)"
    return ""


@contextmanager
def _load_errors() -> Iterator[None]:
    """Turns any exception raised inside into a ModelLoadError (torch and the loader raise many types)."""
    try:
        yield
    except Exception as error:  # out of memory included
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # give back what the failed attempt allocated
        raise ModelLoadError(f"{type(error).__name__}: {error}") from error


def warm_up(network: NetworkRunner, config: ExtractionConfig) -> None:
    """Runs the network once at ``config``'s precision.

    The first real frame then does not pay for kernel selection, and a model or precision that
    cannot run fails here, where it can be refused, rather than on every frame.

    Raises:
        ModelLoadError: the network cannot run.
    """
    with _load_errors():
        extract_multiscale(network, np.zeros(_WARMUP_SHAPE, np.uint8), config.replace(min_size=0)).numpy()


def load_inference_model(model_path: str, device_name: str, config: ExtractionConfig,
                         backend: str = "torch", engine_cache: str = "", max_batch: int = 1) -> InferenceModel:
    """Loads a checkpoint ("" = the bundled model) onto a device, prepares it in ``backend`` and warms it up.

    An onnxruntime session is built for ``config.precision`` and ``config.max_size`` (TensorRT's
    engine, kept in ``engine_cache``, "" = the default folder, for up to ``max_batch`` images per run);
    a change of either needs a new model.

    Raises:
        ModelLoadError: for any failure, with its reason.
    """
    path = Path(model_path) if model_path else default_model_path()
    with _load_errors():
        device = resolve_device(device_name)
        model = prepare_for_inference(load_model(path, device))
        network = make_runner(model, backend, config.precision,
                              engine_cache=Path(engine_cache).expanduser() if engine_cache else DEFAULT_ENGINE_CACHE,
                              max_side=config.max_size, max_batch=max_batch)
    warm_up(network, config)
    return InferenceModel(network, device, path.stem, cpu_fallback_note(device_name, device), model.arch, backend)


def model_settings(values: dict[str, Any], config: ExtractionConfig) -> tuple:
    """What a served model is built for: two parameter sets with equal settings can share one model.

    A precision change of the torch backend also needs a new model: the running one is never
    warmed up again while the worker uses it.
    """
    session_shape = config.max_size if values["backend"] != "torch" else None  # onnxruntime: built per size range
    return (values["model"], values["device"], values["backend"], config.precision, session_shape,
            values["engine_cache"], max(1, len(values["cameras"])))


def model_problem(values: dict[str, Any]) -> str | None:
    """What makes the model that ``values`` ask for unloadable, found without loading it (or None).

    The node checks this before accepting a change, so that a wrong path or a missing GPU is refused
    at once with its reason; failures that only a load finds (a corrupt file, out of memory) come later.
    """
    if values["model"] and not Path(values["model"]).expanduser().is_file():
        return f"model: no such file {values['model']!r}"
    try:
        resolve_device(values["device"])
    except ValueError as error:
        return str(error)
    return None
