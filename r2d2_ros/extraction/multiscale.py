"""Multi-scale R2D2 keypoint extraction: one path for the node, the CLIs, training and evaluation.

The pyramid, thresholds and output conventions follow the original implementation
(see ``ExtractionConfig`` for the defaults). Everything stays on the model's device
until the final top-k, which is the only point where the host waits for the device;
only the selected keypoints are copied back by the caller. The network itself is run by
a :class:`~r2d2_ros.extraction.runner.NetworkRunner` (PyTorch, or another backend).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..features import DenseMaps, Features
from ..model.nets import R2D2Net, normalize_descriptors
from ..utils import check_shape
from .captured import PyramidGraphs, pyramid_graphs
from .config import PRECISIONS, ExtractionConfig
from .nms import nms_mask, top_k_indices
from .runner import NetworkRunner, as_runner
from .subpixel import level_to_input, subpixel_offsets
from .timing import StageTimer

__all__ = ["PyramidLevel", "image_to_tensor", "pyramid_levels", "pyramid_images", "extract_multiscale",
           "extract_multiscale_batch",
           "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Tolerance of the original's scale comparisons, so that e.g. s = 1/2**0.25**4 counts as 0.5.
_SCALE_EPS = 0.001
# The Fast net pools by 2 before it upsamples: a level 1 pixel high or wide has no output at all.
_MIN_LEVEL_SIDE = 2
_PATCH_DIAMETER = 32.0


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
    while scale + _SCALE_EPS >= lowest and min(level_height, level_width) >= _MIN_LEVEL_SIDE:
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
        image: (B, 3, H, W) normalised input: one image, or a batch of images of one size.

    Yields:
        Each used level and its (B, 3, h, w) image, resized (bilinear, no antialiasing) from the
        previous level's image, not from the input, as the original does.
    """
    check_shape(image, "B 3 H W")
    for level in pyramid_levels(image.shape[-2], image.shape[-1], config):
        if image.shape[-2:] != (level.height, level.width):
            with _stage(timer, "resize"):
                image = F.interpolate(image, (level.height, level.width), mode="bilinear", align_corners=False)
        if level.used:
            yield level, image


@dataclass
class _LevelCandidates:
    """The best ``top_k`` pixels of one pyramid level for each image of a batch, on the device, best first.

    A level with fewer detections is padded with non-detections scored -inf, so that its size is
    known without asking the device.
    """

    keypoints: torch.Tensor  # (B, k, 3) x, y in input pixels, scale
    raw_descriptors: torch.Tensor  # (B, k, D), not yet normalised
    scores: torch.Tensor  # (B, k)
    reliability: torch.Tensor  # (B, 1, h, w)
    repeatability: torch.Tensor  # (B, 1, h, w)


def _detect_level(
    runner: NetworkRunner,
    images: torch.Tensor,
    level: PyramidLevel,
    input_size: tuple[int, int],
    config: ExtractionConfig,
    precision: str,
    timer: StageTimer | None,
) -> _LevelCandidates:
    """Runs the network and NMS on one pyramid level of a batch and keeps each image's best candidates.

    Args:
        input_size: (width, height) of the input images, the frame of the keypoint coordinates.
    """
    with _stage(timer, f"network {images.shape[-1]}x{images.shape[-2]}"):
        descriptors, reliability, repeatability = runner(images, precision)
    with _stage(timer, "nms"):
        mask = nms_mask(repeatability, reliability, config.repeatability_threshold, config.reliability_threshold)
        # Non-detections score -inf instead of being dropped: nonzero() would wait for the device
        # on every level, a fixed-size top-k does not.
        scores = torch.where(mask, reliability * repeatability, float("-inf")).flatten(1)
        best = top_k_indices(scores, config.top_k)
        map_width = repeatability.shape[-1]
        columns, rows = best % map_width, torch.div(best, map_width, rounding_mode="floor")
        ratio_x, ratio_y = input_size[0] / level.width, input_size[1] / level.height
        if config.subpixel:
            dx, dy = subpixel_offsets(repeatability, best)
            xs, ys = level_to_input(columns + dx, ratio_x), level_to_input(rows + dy, ratio_y)
        else:
            xs, ys = columns * ratio_x, rows * ratio_y
        patch = torch.full_like(xs, _PATCH_DIAMETER / level.scale)
        raw_descriptors = torch.stack([_gather_pixels(descriptors[b], best[b]) for b in range(best.shape[0])])
        return _LevelCandidates(torch.stack([xs, ys, patch], dim=-1).float(), raw_descriptors,
                                torch.gather(scores, 1, best), reliability, repeatability)


def _gather_pixels(maps: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """The (N, D) values of a (D, h, w) map at flat pixel indices.

    Gathers along the memory layout (rows of a channels-last map, columns of a contiguous one):
    the other way round is 10 to 30 times slower on the CPU.
    """
    flat = maps.flatten(1)  # (D, h * w): a view in either layout
    if flat.stride(0) == 1:  # channels last
        return flat.t().index_select(0, indices)
    return flat.index_select(1, indices).t()


def _stage(timer: StageTimer | None, name: str) -> StageTimer | nullcontext[None]:
    return timer.stage(name) if timer is not None else nullcontext()


def _upload(image: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """The (1, 3, H, W) fp32 normalised input on ``device`` (see :func:`extract_multiscale`)."""
    if isinstance(image, torch.Tensor) and image.ndim == 4:
        if image.shape[:2] != (1, 3):
            raise ValueError(f"a normalised input must be (1, 3, H, W), got {tuple(image.shape)}")
        return image.to(device, torch.float32)
    return image_to_tensor(image, device)


def _take_rows(values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``values[b, rows[b]]`` for every b: (B, N, ...) and (B, k) -> (B, k, ...).

    One index_select per image rather than a gather, whose index would be expanded to the
    size of the result (k x 128 int64 per image for the descriptors).
    """
    return torch.stack([values[b].index_select(0, rows[b]) for b in range(rows.shape[0])])


class _BestKeypoints(NamedTuple):
    """Each image's best ``top_k`` candidates over the whole pyramid, on the device, best first.

    Every shape follows from the batch's shape and the config, never from the data: padding
    non-detections score -inf and sort last. That is what lets the whole pyramid up to here run as
    one captured CUDA graph (see :mod:`~r2d2_ros.extraction.captured`).
    """

    keypoints: torch.Tensor  # (B, k, 3) x, y in input pixels, scale
    descriptors: torch.Tensor  # (B, k, D) unit, in the network's precision
    scores: torch.Tensor  # (B, k), -inf for padding
    reliability: torch.Tensor  # (B, 1, h, w) of the largest used level
    repeatability: torch.Tensor  # (B, 1, h, w) of the largest used level


def _best_keypoints(runner: NetworkRunner, batch: torch.Tensor, config: ExtractionConfig, precision: str,
                    timer: StageTimer | None) -> _BestKeypoints:
    """The pyramid, network, NMS and top-k of a (B, 3, H, W) batch with at least one used level; no host wait."""
    height, width = batch.shape[-2:]
    image_size = (int(width), int(height))
    candidates = [_detect_level(runner, level_images, level, image_size, config, precision, timer)
                  for level, level_images in pyramid_images(batch, config, timer)]
    with _stage(timer, "top-k"):
        all_scores = torch.cat([found.scores for found in candidates], dim=1)
        best = top_k_indices(all_scores, config.top_k)
        scores = torch.gather(all_scores, 1, best)
        keypoints = _take_rows(torch.cat([found.keypoints for found in candidates], dim=1), best)
        raw_descriptors = _take_rows(torch.cat([found.raw_descriptors for found in candidates], dim=1), best)
        descriptors = normalize_descriptors(raw_descriptors.float(), dim=-1).to(PRECISIONS[precision])
    return _BestKeypoints(keypoints, descriptors, scores, candidates[0].reliability, candidates[0].repeatability)


def _split_detections(best: _BestKeypoints, image_size: tuple[int, int], return_maps: bool,
                      timer: StageTimer | None) -> list[Features]:
    """Each image's features: its detections among ``best``, padding cut off."""
    with _stage(timer, "top-k"):
        # The batch's one wait for the device: the number of detections among each image's best
        # (sorted, so the -inf padding comes last).
        counts = torch.isfinite(best.scores).sum(dim=1).tolist()
    features = []
    for b, count in enumerate(counts):
        maps = DenseMaps(best.reliability[b, 0], best.repeatability[b, 0]) if return_maps else None
        features.append(Features(best.keypoints[b, :count], best.descriptors[b, :count], best.scores[b, :count],
                                 image_size, maps))
    return features


def _extract_batch(runner: NetworkRunner, batch: torch.Tensor, config: ExtractionConfig, precision: str,
                   graphs: PyramidGraphs | None, return_maps: bool, timer: StageTimer | None) -> list[Features]:
    """:func:`extract_multiscale_batch` of a (B, 3, H, W) batch of images of one size.

    Args:
        graphs: the captured pyramids of this network when ``config.cuda_graphs`` asks for them.
    """
    height, width = batch.shape[-2:]
    image_size = (int(width), int(height))
    if not pyramid_levels(height, width, config):  # its last level is always a used one
        empty = torch.zeros(0, device=runner.device)
        return [Features(empty.view(0, 3), empty.view(0, runner.dim), empty, image_size) for _ in range(len(batch))]

    def best_of(images: torch.Tensor, stage_timer: StageTimer | None) -> _BestKeypoints:
        return _best_keypoints(runner, images, config, precision, stage_timer)

    best = best_of(batch, timer) if graphs is None else graphs.run(runner, batch, (config, precision), best_of, timer)
    return _split_detections(best, image_size, return_maps, timer)


@torch.inference_mode()
def extract_multiscale_batch(
    model: R2D2Net | NetworkRunner,
    images: Sequence[np.ndarray | torch.Tensor],
    config: ExtractionConfig = ExtractionConfig(),
    return_maps: bool = False,
    timer: StageTimer | None = None,
) -> list[Features]:
    """:func:`extract_multiscale` of several images, those of one size run through the network as one batch.

    For the cameras of a rig: one pass per pyramid level instead of one per camera and level,
    and one wait for the device per size. Each image gets the same features as it would alone,
    up to the arithmetic of a batched convolution (ties at NMS plateaus and thresholds may flip).

    Args:
        images: as for :func:`extract_multiscale`; any mix of sizes.

    Returns:
        The features of each image, in the order of ``images``.
    """
    runner = as_runner(model)
    precision = runner.precision(config.precision)
    with _stage(timer, "upload"):
        tensors = [_upload(image, runner.device) for image in images]
    by_size: dict[tuple[int, ...], list[int]] = {}
    for index, tensor in enumerate(tensors):
        by_size.setdefault(tuple(tensor.shape[-2:]), []).append(index)
    graphs = pyramid_graphs(model) if config.cuda_graphs else None
    features: list[Features | None] = [None] * len(tensors)
    for indices in by_size.values():
        batch = torch.cat([tensors[i] for i in indices]) if len(indices) > 1 else tensors[indices[0]]
        for index, found in zip(indices, _extract_batch(runner, batch, config, precision, graphs, return_maps,
                                                        timer)):
            features[index] = found
    return features  # type: ignore[return-value]  # every index was filled by its size's batch


def extract_multiscale(
    model: R2D2Net | NetworkRunner,
    image: np.ndarray | torch.Tensor,
    config: ExtractionConfig = ExtractionConfig(),
    return_maps: bool = False,
    timer: StageTimer | None = None,
) -> Features:
    """Detects and describes R2D2 keypoints over an image pyramid.

    The device is waited for once per frame, after the final top-k (to count the detections).

    Args:
        model: an R2D2 network in eval mode (ideally from ``prepare_for_inference``), run in
            PyTorch, or a :class:`~r2d2_ros.extraction.runner.NetworkRunner` of another backend.
        image: see :func:`image_to_tensor`; a (1, 3, H, W) float tensor is taken as already normalised.
        config: pyramid, thresholds, top-k and precision (``auto`` is resolved by the runner); with
            ``cuda_graphs``, the pyramid of a recurring input size is replayed from a CUDA graph
            (:mod:`~r2d2_ros.extraction.captured`), with the same results.
        return_maps: also return the reliability and repeatability maps of the largest used level.
        timer: accumulates the time of each stage (upload, resize, network, nms, top-k; a replayed
            pyramid is one stage, captured pyramid); benchmarks only.

    Returns:
        Features on the model's device, at most ``config.top_k``, best first; keypoint x, y are in
        input pixels and the scale is the patch diameter (32 / level scale). Descriptors are in
        the precision the network ran in.

    Raises:
        ValueError: a bad image, or a precision the runner cannot compute.
    """
    return extract_multiscale_batch(model, [image], config, return_maps, timer)[0]
