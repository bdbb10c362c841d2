"""Extraction settings, with the original R2D2 defaults."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["ExtractionConfig", "PRECISIONS", "PRECISION_CHOICES"]

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# What a user may ask for: a precision, or ``auto``, which the network runner resolves for its device
# and backend (see NetworkRunner.precision).
PRECISION_CHOICES = ("auto", *PRECISIONS)


@dataclass(frozen=True)
class ExtractionConfig:
    """How :func:`~r2d2_ros.extraction.extract_multiscale` builds its pyramid and picks keypoints."""

    scale_f: float = 2**0.25  # ratio between two pyramid levels (> 1)
    min_scale: float = 0.0  # smallest level, as a fraction of the input size
    max_scale: float = 1.0  # largest level, as a fraction of the input size
    min_size: int = 256  # smallest level's longest side, in pixels (a smaller image runs at its own size)
    max_size: int = 1024  # largest level's longest side, in pixels
    reliability_threshold: float = 0.7  # keep detections whose reliability is at least this
    repeatability_threshold: float = 0.7  # keep detections whose repeatability is at least this
    top_k: int = 5000  # keep at most this many keypoints, best score first
    precision: str = "auto"  # network arithmetic: auto (fastest that keeps the detections), fp32, fp16 or bf16
    # Sub-pixel positions (a parabola through each repeatability peak) mapped pixel centre to pixel
    # centre; off: the original's whole level pixels, c * (input size / level size).
    subpixel: bool = False
    # On CUDA, replay the pyramid of an input size seen before from a captured CUDA graph (one launch
    # instead of dozens; same results): see r2d2_ros.extraction.captured. Ignored on the CPU. It changes
    # how the features are computed, not which, so it stays out of repr, which names the evaluation's
    # feature caches: toggling it reuses them, and the caches made before it existed stay valid.
    cuda_graphs: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("scale_f", "min_scale", "max_scale", "reliability_threshold", "repeatability_threshold"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        for name in ("min_size", "max_size", "top_k"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.scale_f <= 1.0:
            raise ValueError(f"scale_f must be > 1, got {self.scale_f}")
        if not 0.0 <= self.min_scale <= self.max_scale:
            raise ValueError(f"need 0 <= min_scale <= max_scale, got {self.min_scale}, {self.max_scale}")
        if self.min_size > self.max_size:
            raise ValueError(f"need min_size <= max_size, got {self.min_size}, {self.max_size}")
        for name in ("reliability_threshold", "repeatability_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        for name in ("subpixel", "cuda_graphs"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.precision not in PRECISION_CHOICES:
            raise ValueError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {self.precision!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExtractionConfig:
        """Builds a config from a mapping; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown extraction settings {unknown}; known: {sorted(known)}")
        return cls(**values)

    def replace(self, **changes: Any) -> ExtractionConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)
