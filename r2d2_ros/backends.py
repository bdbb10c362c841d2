"""Extraction backends: which engine runs the network for :func:`~r2d2_ros.extraction.extract_multiscale`.

* ``torch``: eager PyTorch (:class:`~r2d2_ros.extraction.TorchRunner`), any precision.
* ``onnxruntime``: the exported graph (:mod:`r2d2_ros.export`) in ONNX Runtime, with the CPU, CUDA
  or TensorRT execution provider. TensorRT builds an engine for the GPU on first use, which takes
  minutes on a Jetson, and keeps it in an engine cache folder so that later starts load it. ONNX
  Runtime does not notice when the model's weights, the TensorRT version or the GPU change, so each
  engine lives in a subfolder named by all it was built for (:func:`tensorrt_engine_key`): any
  change builds a new engine instead of loading a stale one.

Either way the pyramid, NMS and top-k are the extraction's own, on the same device.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from .export import INPUT_NAME, OUTPUT_NAMES, export_onnx
from .extraction.runner import NetworkRunner, TorchRunner
from .model.nets import R2D2Net

__all__ = ["BACKENDS", "PROVIDER_CHOICES", "DEFAULT_ENGINE_CACHE", "Backend", "BackendError", "OnnxRuntimeRunner",
           "choose_provider", "make_runner", "tensorrt_engine_key", "tensorrt_profile", "tensorrt_version"]

log = logging.getLogger("r2d2_ros")

BACKENDS = ("torch", "onnxruntime")
_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
PROVIDER_CHOICES = ("auto", *_PROVIDERS)
_INSTALL = {
    "cpu": "pip install onnxruntime",
    "cuda": "pip install onnxruntime-gpu (CUDA 12, cuDNN 9), or the JetPack wheel of onnxruntime-gpu on a Jetson",
    "tensorrt": "pip install onnxruntime-gpu tensorrt (TensorRT 10), or the JetPack wheel of onnxruntime-gpu, "
                "whose TensorRT comes with JetPack",
}
DEFAULT_ENGINE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "r2d2_ros" / "tensorrt"
# TensorRT optimisation profile for the input: every pyramid level lies between these (height x width).
_MIN_SIDE, _OPT_SHAPE = 16, (480, 640)


@dataclass(frozen=True)
class Backend:
    """What runs an R2D2 network, as the node's and CLIs' options choose it (see :func:`make_runner`)."""

    name: str = "torch"
    provider: str = "auto"  # onnxruntime only
    engine_cache: Path = DEFAULT_ENGINE_CACHE  # onnxruntime with TensorRT only


class BackendError(ValueError):
    """A backend, provider or precision that cannot run here; the message says what to install or use."""


def _import_onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError as error:
        raise BackendError(f"backend onnxruntime needs ONNX Runtime: {_INSTALL['cpu']} (CPU), "
                           f"or for a GPU {_INSTALL['cuda']}") from error
    return onnxruntime


def choose_provider(requested: str, device: torch.device, available: list[str]) -> str:
    """The execution provider (cpu, cuda or tensorrt) for ``device``.

    ``auto`` is the CPU provider on the CPU, and TensorRT, else CUDA, on a GPU.

    Raises:
        BackendError: an unknown provider, one that does not run on ``device``, or one this
            ONNX Runtime build lacks (the message names the package to install).
    """
    if requested not in PROVIDER_CHOICES:
        raise BackendError(f"execution provider must be one of {', '.join(PROVIDER_CHOICES)}, got {requested!r}")
    provider = requested
    if requested == "auto":
        provider = "cpu" if device.type == "cpu" else "tensorrt" if _PROVIDERS["tensorrt"] in available else "cuda"
    if (provider == "cpu") != (device.type == "cpu"):
        raise BackendError(f"execution provider {provider} does not run on device {device}")
    if _PROVIDERS[provider] not in available:
        raise BackendError(f"this ONNX Runtime has no {_PROVIDERS[provider]} (it has {', '.join(available)}): "
                           f"{_INSTALL[provider]}")
    return provider


def _onnxruntime_precision(requested: str, provider: str) -> str:
    """``auto`` is fp16 on a GPU and fp32 on the CPU (the CPU provider has no fast fp16 or bf16 kernels)."""
    supported = ("fp32",) if provider == "cpu" else ("fp16", "fp32")
    precision = supported[0] if requested == "auto" else requested
    if precision not in supported:
        raise BackendError(f"onnxruntime with the {provider} provider computes {' or '.join(supported)}, "
                           f"not {precision}" + (" (backend torch runs bf16)" if precision == "bf16" else ""))
    return precision


class OnnxRuntimeRunner:
    """An ONNX Runtime session of an exported R2D2 graph, as a :class:`~r2d2_ros.extraction.NetworkRunner`.

    Args:
        onnx_model: the serialised graph or its file (from :func:`~r2d2_ros.export.export_onnx`).
        device: where inputs and outputs live; a GPU's tensors are bound in place (no copies).
        provider: cpu, cuda or tensorrt (see :func:`choose_provider`).
        precision: what the session computes: fp32, or fp16 on a GPU. TensorRT is given an fp32
            graph and picks fp16 kernels itself; the CUDA provider runs the graph's own precision.
        engine_cache: TensorRT's engine cache folder (created when missing); each engine goes into a
            subfolder named by :func:`tensorrt_engine_key`.
        max_side: the longest pyramid level TensorRT's engine must accept (``max_size``).
        max_batch: the most images per run TensorRT's engine must accept (synchronised cameras).
    """

    def __init__(self, onnx_model: bytes | str | os.PathLike[str], device: torch.device, provider: str,
                 precision: str, engine_cache: Path = DEFAULT_ENGINE_CACHE, max_side: int = 1024,
                 max_batch: int = 1) -> None:
        ort = _import_onnxruntime()
        self.device, self.provider, self._precision = device, provider, precision
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # as many as PyTorch, for a like-for-like CPU
        providers: list[tuple[str, dict[str, str]]] = []
        if provider == "tensorrt":
            graph = onnx_model if isinstance(onnx_model, bytes) else Path(onnx_model).read_bytes()
            providers.append((_PROVIDERS["tensorrt"], self._tensorrt_options(graph, engine_cache, max_side, max_batch)))
        if provider != "cpu":  # the CUDA provider also runs what TensorRT does not take
            # fp32 means fp32: TF32 convolutions (the default) move the maps by 1e-3.
            cuda_options = {**self._stream_options(), "use_tf32": str(int(precision != "fp32"))}
            providers.append((_PROVIDERS["cuda"], cuda_options))
        providers.append((_PROVIDERS["cpu"], {}))
        model = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
        self.session = ort.InferenceSession(model, options, providers=providers)
        self.dim = int(self.session.get_outputs()[0].shape[1])
        self._run_options = ort.RunOptions()
        if device.type == "cuda":
            # The session works on PyTorch's stream (see _stream_options), so later PyTorch work is
            # ordered after it without the host waiting at the end of every run.
            self._run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")

    def _stream_options(self) -> dict[str, str]:
        """Runs the session on PyTorch's current CUDA stream, so both see each other's results in order."""
        stream = torch.cuda.current_stream(self.device).cuda_stream
        return {"device_id": str(self.device.index or 0), "has_user_compute_stream": "1",
                "user_compute_stream": str(stream)}

    def _tensorrt_options(self, onnx_model: bytes, engine_cache: Path, max_side: int,
                          max_batch: int) -> dict[str, str]:
        """TensorRT's options, its engine in the subfolder of ``engine_cache`` that this model, profile,
        precision, TensorRT and GPU own (logged: loaded, or built now)."""
        key = tensorrt_engine_key(onnx_model, max_side, max_batch, self._precision, tensorrt_version(),
                                  _gpu_name(self.device))
        folder = engine_cache / key
        if any(folder.glob("*.engine")):
            log.info("TensorRT engine %s: loading it from %s", key, folder)
        else:
            log.info("TensorRT engine %s is not in the cache (a new model, size range, batch, precision, TensorRT "
                     "or GPU): building it into %s, minutes on a Jetson", key, folder)
        folder.mkdir(parents=True, exist_ok=True)
        return {**self._stream_options(), "trt_fp16_enable": str(self._precision == "fp16"),
                "trt_engine_cache_enable": "True", "trt_engine_cache_path": str(folder),
                "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(folder),
                **tensorrt_profile(max_side, max_batch)}

    def precision(self, requested: str) -> str:
        """The session's precision, for ``auto`` or that precision itself.

        Raises:
            BackendError: another precision (a session computes one; load a new runner for another).
        """
        if requested not in ("auto", self._precision):
            raise BackendError(f"this ONNX Runtime session computes {self._precision}, not {requested}: "
                               "load the model again with that precision")
        return self._precision

    def __call__(self, image: torch.Tensor, precision: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unit descriptors, reliability and repeatability of a (B, 3, h, w) batch of fp32 images on :attr:`device`."""
        if self.device.type == "cpu":
            outputs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(image.numpy())},
                                       self._run_options)
            return tuple(torch.from_numpy(output) for output in outputs)  # type: ignore[return-value]
        image = image.contiguous()
        binding = self.session.io_binding()
        index = self.device.index or 0
        binding.bind_input(INPUT_NAME, "cuda", index, np.float32, tuple(image.shape), image.data_ptr())
        for name in OUTPUT_NAMES:
            binding.bind_output(name, "cuda", index)
        self.session.run_with_iobinding(binding, self._run_options)
        return tuple(torch.from_dlpack(output) for output in binding.get_outputs())  # type: ignore[return-value]


def tensorrt_profile(max_side: int, max_batch: int = 1) -> dict[str, str]:
    """TensorRT's optimisation profile for the input, as ONNX Runtime's provider options.

    One engine serves every pyramid level (without a profile each new size builds another, minutes
    on a Jetson) and every batch up to ``max_batch`` (a synchronised rig runs its cameras as one
    batch); outside the profile TensorRT cannot run the input.
    """
    shape = f"{INPUT_NAME}:{{}}x3x{{}}x{{}}".format
    return {"trt_profile_min_shapes": shape(1, _MIN_SIDE, _MIN_SIDE),
            "trt_profile_opt_shapes": shape(max_batch, *_OPT_SHAPE),
            "trt_profile_max_shapes": shape(max_batch, max_side, max_side)}


def tensorrt_version() -> str:
    """The version of the TensorRT Python package (pip's, or JetPack's python3-libnvinfer), or "unknown".

    ONNX Runtime loads the same libnvinfer where both are installed as their instructions say.
    """
    try:
        import tensorrt
    except ImportError:
        return "unknown"
    return str(tensorrt.__version__)


def _gpu_name(device: torch.device) -> str:
    """The GPU's name and compute capability: a TensorRT engine runs only on the GPU model that built it."""
    major, minor = torch.cuda.get_device_capability(device)
    return f"{torch.cuda.get_device_name(device)} sm_{major}{minor}"


def tensorrt_engine_key(onnx_model: bytes, max_side: int, max_batch: int, precision: str, tensorrt: str,
                        gpu: str) -> str:
    """The engine cache subfolder of an engine: readable settings, then a digest of everything it depends on.

    Args:
        onnx_model: the serialised graph (its weights and structure; the export is deterministic).
        max_side, max_batch: the input profile (:func:`tensorrt_profile`).
        precision: fp32 or fp16.
        tensorrt: TensorRT's version (:func:`tensorrt_version`).
        gpu: the GPU's model and compute capability.

    Returns:
        e.g. ``fp16-1024px-b2-trt10.3.0-3f2a9c41d07be6a5``.
    """
    built_for = {"model_sha256": hashlib.sha256(onnx_model).hexdigest(),
                 "profile": tensorrt_profile(max_side, max_batch), "precision": precision, "tensorrt": tensorrt,
                 "gpu": gpu}
    digest = hashlib.sha256(json.dumps(built_for, sort_keys=True).encode()).hexdigest()[:16]
    return f"{precision}-{max_side}px-b{max_batch}-trt{tensorrt}-{digest}"


def make_runner(model: R2D2Net, backend: str = "torch", precision: str = "auto", provider: str = "auto",
                engine_cache: Path = DEFAULT_ENGINE_CACHE, max_side: int = 1024, max_batch: int = 1) -> NetworkRunner:
    """A runner of ``model`` (prepared for inference, on its device) in ``backend``.

    PyTorch resolves ``precision`` per frame (so it may change without a new runner); an ONNX
    Runtime session is built for one precision, ``auto`` resolved now.

    Raises:
        BackendError: an unknown backend, a missing package or provider, an unsupported precision.
    """
    if backend == "torch":
        return TorchRunner(model)
    if backend != "onnxruntime":
        raise BackendError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    device = next(model.parameters()).device
    provider = choose_provider(provider, device, _import_onnxruntime().get_available_providers())
    precision = _onnxruntime_precision(precision, provider)
    graph_precision = "fp16" if provider == "cuda" else "fp32"
    try:
        graph = export_onnx(model, graph_precision if precision == "fp16" else "fp32")
    except ImportError as error:
        raise BackendError(str(error)) from error
    return OnnxRuntimeRunner(graph, device, provider, precision, engine_cache, max_side, max_batch)
