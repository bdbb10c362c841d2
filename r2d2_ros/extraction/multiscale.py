"""Multi-scale R2D2 keypoint extraction: one path for the node, the CLIs, training and evaluation.

The pyramid, thresholds and output conventions follow the original implementation
(see ``ExtractionConfig`` for the defaults). Everything stays on the model's device
until the final top-k; only the selected keypoints are copied back by the caller.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..features import DenseMaps, Features
from ..model.nets import R2D2Net, normalize_descriptors
from ..utils import check_shape
from .config import ExtractionConfig
from .nms import nms_mask, top_k_indices
from .timing import StageTimer

__all__ = ["PyramidLevel", "image_to_tensor", "pyramid_levels", "pyramid_images", "extract_multiscale",
           "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Tolerance of the original's scale comparisons, so that e.g. s = 1/2**0.25**4 counts as 0.5.
_SCALE_EPS = 0.001
_PATCH_DIAMETER = 32.0
_INTEGER_RANGE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


@dataclass(frozen=True)
class PyramidLevel:
    """One level of the image pyramid: its scale, its size, and whether the network runs on it."""

    scale: float
    height: int
    width: int
    used: bool


def image_to_tensor(image: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """Turns an image into the network's normalised input.

    Args:
        image: (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA; uint8, uint16, or float in [0, 1].
            Grey is replicated to three channels and alpha dropped.
        device: where the result lives; integer images are uploaded before conversion.

    Returns:
        (1, 3, H, W) float32, ImageNet-normalised.

    Raises:
        ValueError: unsupported shape or dtype, or an empty image.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    if tensor.ndim == 2:
        tensor = tensor[:, :, None]
    if tensor.ndim != 3 or tensor.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got {tuple(tensor.shape)}")
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ValueError(f"empty image of shape {tuple(tensor.shape)}")
    tensor = tensor.to(device, non_blocking=True)
    if tensor.dtype == torch.uint8:
        tensor = tensor.float() / 255.0
    elif tensor.dtype == torch.uint16:
        tensor = tensor.float() / 65535.0
    elif tensor.is_floating_point():
        tensor = tensor.float()
    else:
        raise ValueError(f"unsupported image dtype {tensor.dtype}; use uint8, uint16 or float in [0, 1]")
    tensor = tensor[:, :, :3].permute(2, 0, 1)
    if tensor.shape[0] == 1:
        tensor = tensor.expand(3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, device=tensor.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=tensor.device).view(3, 1, 1)
    return ((tensor - mean) / std)[None].contiguous()


def pyramid_levels(height: int, width: int, config: ExtractionConfig) -> list[PyramidLevel]:
    """The pyramid that :func:`extract_multiscale` walks, down to its last used level.

    Level 0 is the input; each next level divides the scale by ``scale_f``. A level is used when
    its scale lies within [max(min_scale, min_size / L), min(max_scale, max_size / L)],
    L = max(height, width), with the original's 0.001 tolerance. An image smaller than
    ``min_size`` (a thermal or cropped camera) would use no level at all, so ``min_size`` never
    asks for more than the largest level allowed: such an image runs at its own scale (or at
    ``max_scale`` and ``max_size``, when those are smaller).
    """
    longest = max(height, width)
    highest = min(config.max_scale, config.max_size / longest)
    lowest = max(config.min_scale, min(config.min_size / longest, highest, 1.0))
    levels: list[PyramidLevel] = []
    scale, level_height, level_width = 1.0, height, width
    while scale + _SCALE_EPS >= lowest and min(level_height, level_width) > 0:
        levels.append(PyramidLevel(scale, level_height, level_width, scale - _SCALE_EPS <= highest))
        scale /= config.scale_f
        level_height, level_width = round(height * scale), round(width * scale)
    while levels and not levels[-1].used:
        levels.pop()
    return levels


def pyramid_images(
    image: torch.Tensor, config: ExtractionConfig, timer: StageTimer | None = None
) -> Iterator[tuple[PyramidLevel, torch.Tensor]]:
    """The used levels of :func:`pyramid_levels` with their images, largest first.

    Args:
        image: (1, 3, H, W) normalised input.

    Yields:
        Each used level and its (1, 3, h, w) image, resized (bilinear, no antialiasing) from the
        previous level's image, not from the input, as the original does.
    """
    check_shape(image, "1 3 H W")
    for level in pyramid_levels(image.shape[-2], image.shape[-1], config):
        if image.shape[-2:] != (level.height, level.width):
            with _stage(timer, "resize"):
                image = F.interpolate(image, (level.height, level.width), mode="bilinear", align_corners=False)
        if level.used:
            yield level, image


@dataclass
class _LevelDetections:
    """Detections of one pyramid level, on the device, in row-major order."""

    ys: torch.Tensor
    xs: torch.Tensor
    raw_descriptors: torch.Tensor  # (N, D), not yet normalised
    scores: torch.Tensor
    reliability: torch.Tensor  # (1, 1, h, w)
    repeatability: torch.Tensor  # (1, 1, h, w)


def _detect_level(
    model: R2D2Net, image: torch.Tensor, config: ExtractionConfig, timer: StageTimer | None
) -> _LevelDetections:
    """Runs the network and NMS on one pyramid level."""
    autocast = torch.autocast(image.device.type, dtype=config.dtype, enabled=config.dtype != torch.float32)
    memory_format = torch.channels_last if model.inference_only else torch.contiguous_format
    with _stage(timer, f"network {image.shape[-1]}x{image.shape[-2]}"):
        with autocast:
            trunk = model.trunk(image.contiguous(memory_format=memory_format))
        # The 1x1 heads are cheap: in fp32 they do not quantise the maps into fake NMS plateaus.
        reliability, repeatability = model.score_maps(trunk.float())
    with _stage(timer, "nms"):
        mask = nms_mask(repeatability, reliability, config.repeatability_threshold, config.reliability_threshold)
        ys, xs = mask[0, 0].nonzero(as_tuple=True)  # row-major order, as the original reads them
        scores = reliability[0, 0, ys, xs] * repeatability[0, 0, ys, xs]
        return _LevelDetections(ys, xs, trunk[0, :, ys, xs].t(), scores, reliability, repeatability)


def _stage(timer: StageTimer | None, name: str) -> StageTimer | nullcontext[None]:
    return timer.stage(name) if timer is not None else nullcontext()


@torch.inference_mode()
def extract_multiscale(
    model: R2D2Net,
    image: np.ndarray | torch.Tensor,
    config: ExtractionConfig = ExtractionConfig(),
    return_maps: bool = False,
    timer: StageTimer | None = None,
) -> Features:
    """Detects and describes R2D2 keypoints over an image pyramid.

    Args:
        model: an R2D2 network in eval mode (ideally from ``prepare_for_inference``).
        image: see :func:`image_to_tensor`; a (1, 3, H, W) float tensor is taken as already normalised.
        config: pyramid, thresholds, top-k and precision.
        return_maps: also return the reliability and repeatability maps of the largest used level.
        timer: accumulates the time of each stage (upload, resize, network, nms, top-k); benchmarks only.

    Returns:
        Features on the model's device, at most ``config.top_k``, best first; keypoint x, y are in
        input pixels and the scale is the patch diameter (32 / level scale).
    """
    device = next(model.parameters()).device
    with _stage(timer, "upload"):
        if isinstance(image, torch.Tensor) and image.ndim == 4:
            if image.shape[:2] != (1, 3):
                raise ValueError(f"a normalised input must be (1, 3, H, W), got {tuple(image.shape)}")
            tensor = image.to(device, torch.float32)
        else:
            tensor = image_to_tensor(image, device)
    height, width = tensor.shape[-2:]
    keypoints, raw_descriptors, scores = [], [], []
    maps: DenseMaps | None = None
    for level, level_image in pyramid_images(tensor, config, timer):
        found = _detect_level(model, level_image, config, timer)
        level_scale = torch.full_like(found.scores, _PATCH_DIAMETER / level.scale)
        x = found.xs * (width / level.width)
        y = found.ys * (height / level.height)
        keypoints.append(torch.stack([x, y, level_scale], dim=1))
        raw_descriptors.append(found.raw_descriptors)
        scores.append(found.scores)
        if return_maps and maps is None:
            maps = DenseMaps(found.reliability[0, 0], found.repeatability[0, 0])
    if not keypoints:
        empty = torch.zeros(0, device=device)
        return Features(empty.view(0, 3), empty.view(0, model.dim), empty, (int(width), int(height)), maps)
    with _stage(timer, "top-k"):
        all_scores = torch.cat(scores)
        best = top_k_indices(all_scores, config.top_k)
        descriptors = normalize_descriptors(torch.cat(raw_descriptors)[best].float(), dim=1)
        return Features(
            torch.cat(keypoints)[best].float(),
            descriptors.to(config.dtype),
            all_scores[best],
            (int(width), int(height)),
            maps,
        )
