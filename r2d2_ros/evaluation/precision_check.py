"""Does a reduced precision keep the detections? fp16 or bf16 against fp32, on the device that runs it.

A reduced precision moves the score maps a little; what matters downstream is whether the same
keypoints come out with descriptors pointing the same way. For each fp32 detection this looks for a
detection of the reduced precision on the same pyramid level within ``tolerance_px`` input pixels
(kept), and compares the descriptors of the kept pairs (cosine). Both runs use the same network on
the same device, so only the arithmetic differs; fp32 runs without TF32 on a GPU.

Used by the CI test on the CPU (bf16) and by ``make gpu-check`` on a GPU (fp16, bf16).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ..extraction import ExtractionConfig, NetworkRunner, as_runner, extract_multiscale
from ..model import R2D2Net

__all__ = ["PrecisionAgreement", "compare_precision", "kept_detections", "ALL_DETECTIONS"]

# Every detection, no top-k cut (whose boundary churn would count as lost detections), the original's thresholds.
ALL_DETECTIONS = ExtractionConfig(min_size=0, top_k=100_000)
# fp32 detections are matched in chunks of this many rows (bounds the distance matrix's memory).
_CHUNK = 1024


@dataclass(frozen=True)
class PrecisionAgreement:
    """How a precision's detections compare with fp32's over a set of images."""

    precision: str
    device: str
    images: int
    detections: int  # fp32 detections, all images together
    kept: int  # of them, found again by the reduced precision
    extra: int  # detections of the reduced precision that are no fp32 detection's match
    cosine_mean: float  # descriptor cosine of the kept pairs
    cosine_min: float

    @property
    def kept_share(self) -> float:
        """Share of fp32's detections kept (1.0 when there are none)."""
        return self.kept / self.detections if self.detections else 1.0

    def __str__(self) -> str:
        return (f"{self.precision} on {self.device}: {self.kept}/{self.detections} fp32 detections kept "
                f"({self.kept_share:.1%}), {self.extra} extra, descriptor cosine mean {self.cosine_mean:.5f} "
                f"min {self.cosine_min:.5f} ({self.images} images)")


def kept_detections(expected: torch.Tensor, actual: torch.Tensor, tolerance_px: float = 1.0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs each ``expected`` keypoint with the nearest ``actual`` one of the same scale within ``tolerance_px``.

    Args:
        expected, actual: (N, 3) and (M, 3) keypoints (x, y in input pixels, scale), on the CPU.

    Returns:
        Indices into ``expected`` of the kept keypoints, and into ``actual`` of their matches
        (two kept keypoints may share a match on a plateau).
    """
    kept_expected, kept_actual = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0, dtype=torch.long)]
    for scale in expected[:, 2].unique():
        # The scale is 32 / level scale, computed alike in any precision: equal floats on one level.
        on_level = torch.nonzero(expected[:, 2] == scale).flatten()
        candidates = torch.nonzero(actual[:, 2] == scale).flatten()
        if len(candidates) == 0:
            continue
        for rows in on_level.split(_CHUNK):
            distance, nearest = torch.cdist(expected[rows, :2].double(), actual[candidates, :2].double()).min(dim=1)
            close = distance <= tolerance_px
            kept_expected.append(rows[close])
            kept_actual.append(candidates[nearest[close]])
    return torch.cat(kept_expected), torch.cat(kept_actual)


@contextmanager
def _exact_fp32(device: torch.device) -> Iterator[None]:
    """fp32 convolutions on a GPU: cuDNN's default TF32 would make the reference itself reduced."""
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = previous and device.type != "cuda"
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = previous


def compare_precision(network: R2D2Net | NetworkRunner, images: Sequence[np.ndarray], precision: str,
                      config: ExtractionConfig = ALL_DETECTIONS, tolerance_px: float = 1.0) -> PrecisionAgreement:
    """Extracts ``images`` in fp32 and in ``precision`` with ``network`` on its device and compares them.

    Args:
        network: a network or runner that computes both fp32 and ``precision`` (PyTorch does).
        images: RGB images, as for :func:`~r2d2_ros.extraction.extract_multiscale`.
        precision: fp16 or bf16 (or fp32, which must agree with itself).
        config: pyramid and thresholds of both runs; its precision is replaced.
        tolerance_px: largest distance, in input pixels, of a kept detection.
    """
    runner = as_runner(network)
    detections = kept = extra = 0
    cosines = [torch.zeros(0, dtype=torch.float64)]
    for image in images:
        with _exact_fp32(runner.device):
            reference = extract_multiscale(runner, image, config.replace(precision="fp32")).to("cpu")
        reduced = extract_multiscale(runner, image, config.replace(precision=precision)).to("cpu")
        found, matches = kept_detections(reference.keypoints, reduced.keypoints, tolerance_px)
        detections, kept = detections + len(reference), kept + len(found)
        extra += len(reduced) - len(matches.unique())
        # Normalised again: a unit vector rounded to fp16 or bf16 is a unit only to ~1e-3.
        cosines.append(torch.nn.functional.cosine_similarity(reference.descriptors[found].double(),
                                                             reduced.descriptors[matches].double(), dim=1))
    cosine = torch.cat(cosines)
    return PrecisionAgreement(precision, str(runner.device), len(images), detections, kept, extra,
                              cosine.mean().item() if len(cosine) else 1.0, cosine.min().item() if len(cosine) else 1.0)
