"""Feature methods compared by the evaluation: R2D2 checkpoints and OpenCV baselines.

Every method returns :class:`~r2d2_ros.features.Features` with unit-norm float descriptors, so
one mutual-nearest-neighbour matcher serves all: binary descriptors (ORB, AKAZE) become +-1
vectors, whose dot product ranks like the Hamming distance.
"""
from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from ..backends import Backend, OnnxRuntimeRunner, make_runner
from ..extraction import ExtractionConfig, extract_multiscale
from ..features import Features
from ..model import load_model, prepare_for_inference

__all__ = ["Method", "R2D2Method", "OpenCVMethod", "BASELINES", "make_method"]


class Method(Protocol):
    """Something that turns an RGB image into features."""

    name: str

    @property
    def key(self) -> str:
        """Identifies the method and its settings, for the cache."""

    def extract(self, image: np.ndarray) -> Features: ...


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


class R2D2Method:
    """An R2D2 checkpoint (original or r2d2_ros) with an extraction config, run by ``backend``.

    Raises:
        BackendError: the backend cannot run the network (missing package or provider, precision).
    """

    def __init__(self, checkpoint: Path, config: ExtractionConfig, device: torch.device, name: str | None = None,
                 backend: Backend = Backend()) -> None:
        self.name = name or checkpoint.stem
        self.network = make_runner(prepare_for_inference(load_model(checkpoint, device)), backend.name,
                                   config.precision, backend.provider, backend.engine_cache, config.max_size)
        self._digest, self._device = _file_digest(checkpoint), device
        self.config = config

    @property
    def key(self) -> str:
        key = f"r2d2-{self.name}-{self._digest}-{hashlib.sha256(repr(self.config).encode()).hexdigest()[:8]}"
        if isinstance(self.network, OnnxRuntimeRunner):  # other numerics: cached apart (PyTorch's keys unchanged)
            # A GPU's engines differ from another GPU's: features copied between machines are not reused.
            gpu = f"-{torch.cuda.get_device_name(self._device)}" if self._device.type == "cuda" else ""
            key += f"-onnxruntime-{self.network.provider}-{self.network.precision(self.config.precision)}{gpu}"
        return key

    def with_top_k(self, top_k: int) -> R2D2Method:
        """The same method keeping ``top_k`` keypoints, on the same network: the runner (an ONNX Runtime
        session, a TensorRT engine) depends on the precision and the largest side, not on ``top_k``."""
        twin = copy.copy(self)
        twin.config = self.config.replace(top_k=top_k)
        return twin

    def extract(self, image: np.ndarray) -> Features:
        return extract_multiscale(self.network, image, self.config).to("cpu")


def _to_features(keypoints: list[cv2.KeyPoint], descriptors: np.ndarray | None, size: tuple[int, int],
                 binary: bool, root: bool, top_k: int) -> Features:
    if descriptors is None or not keypoints:
        return Features(torch.zeros(0, 3), torch.zeros(0, 128), torch.zeros(0), size)
    responses = np.array([k.response for k in keypoints], np.float32)
    order = np.argsort(-responses, kind="stable")[:top_k]
    if binary:
        values = np.unpackbits(descriptors[order], axis=1).astype(np.float32) * 2 - 1
    else:
        values = descriptors[order].astype(np.float32)
        if root:  # RootSIFT (Arandjelovic and Zisserman, 2012): the square root of the L1-normalised descriptor,
            values = np.sqrt(values)  # which is the square root's L2 normalisation below: the L1 scale cancels
    values /= np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)
    points = np.array([[k.pt[0], k.pt[1], k.size] for k in keypoints], np.float32)[order]
    return Features(torch.from_numpy(points), torch.from_numpy(values), torch.from_numpy(responses[order]), size)


@dataclass
class OpenCVMethod:
    """An OpenCV detector-descriptor, keeping the ``top_k`` strongest responses."""

    name: str
    top_k: int = 5000

    @property
    def key(self) -> str:
        return f"opencv{cv2.__version__}-{self.name}-{self.top_k}"

    def _detector(self) -> cv2.Feature2D:
        if self.name in ("sift", "rootsift"):
            return cv2.SIFT_create(nfeatures=self.top_k)
        if self.name == "orb":
            return cv2.ORB_create(nfeatures=self.top_k)
        return cv2.AKAZE_create(threshold=1e-4)  # low threshold, then top-k by response

    def extract(self, image: np.ndarray) -> Features:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        keypoints, descriptors = self._detector().detectAndCompute(grey, None)
        return _to_features(list(keypoints), descriptors, (image.shape[1], image.shape[0]),
                            binary=self.name in ("orb", "akaze"), root=self.name == "rootsift", top_k=self.top_k)


BASELINES = ("sift", "rootsift", "orb", "akaze")


def make_method(spec: str, config: ExtractionConfig, device: torch.device, backend: Backend = Backend()) -> Method:
    """``sift``, ``rootsift``, ``orb``, ``akaze``, or a checkpoint path (optionally ``name=path``) run by ``backend``.

    Raises:
        ValueError: an unknown name, or a checkpoint that cannot be loaded.
        BackendError: ``backend`` cannot run the checkpoint.
    """
    if spec in BASELINES:
        return OpenCVMethod(spec, config.top_k)
    name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
    checkpoint = Path(path)
    if not checkpoint.is_file():
        raise ValueError(f"unknown method {spec!r}: not one of {', '.join(BASELINES)} and not a checkpoint file")
    return R2D2Method(checkpoint, config, device, name or None, backend)
