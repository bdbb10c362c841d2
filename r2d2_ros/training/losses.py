"""R2D2 training losses (paper section 3, defaults from the original implementation).

* :func:`ap_loss`: reliability-weighted, differentiable average precision of descriptor matching;
* :func:`cosim_loss`: repeatability maps of both images agree locally (cosine of 16x16 patches);
* :func:`peaky_loss`: repeatability is peaky inside each 16x16 neighbourhood.

Each is a plain function; :class:`R2D2Loss` combines them with the pair sampler.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..model.nets import R2D2Output
from ..utils import check_shape

__all__ = ["LossConfig", "quantized_average_precision", "ap_loss", "cosim_loss", "peaky_loss",
           "PairSampler", "R2D2Loss"]


@dataclass(frozen=True)
class LossConfig:
    """Weights and sizes of the losses and the sampler (the original's defaults)."""

    ap_weight: float = 1.0
    cosim_weight: float = 1.0
    peaky_weight: float = 1.0
    patch_size: int = 16  # N: repeatability neighbourhood of the cosim and peaky losses
    ap_bins: int = 20  # quantisation bins of the AP on [0, 1]
    reliability_base: float = 0.5  # AP an unreliable descriptor is expected to reach (kappa)
    # Reliability schedule: plain AP loss for the first warm-up steps, then a linear blend into the
    # reliability-weighted loss over the ramp (see training/schedule.py).
    reliability_warmup_steps: int = 0
    reliability_ramp_steps: int = 0
    border: int = 16  # queries stay this far from the crop border
    query_step: int = 8  # queries on a regular grid of this step
    positive_radius: int = 3  # positives within this distance of the ground truth (29 offsets)
    negative_min_radius: int = 5  # negatives in the ring between these distances (80 offsets)
    negative_max_radius: int = 7
    distractors_per_image: int = 400  # random points per image, scored against every query


def quantized_average_precision(scores: torch.Tensor, labels: torch.Tensor, bins: int = 20,
                                counted: torch.Tensor | None = None) -> torch.Tensor:
    """Differentiable AP of ranking ``scores`` (soft-assigned to ``bins`` triangular bins on [0, 1]).

    Bin k (from the top) is centred on 1 - k/(bins-1) with half-width 1/(bins-1); scores above 1
    count fully in the top bin, below 0 fully in the bottom one. Each score touches only its two
    nearest bins, so the histograms are built with a scatter instead of a (Q, bins, M) tensor.

    Args:
        scores: (Q, M) similarities.
        labels: (Q, M), 1 for positives.
        counted: (Q, M) bool, False for entries to leave out of the ranking (default: all count).

    Returns:
        (Q,) average precision per query.
    """
    check_shape(scores, "Q M")
    step = bins - 1
    position = ((1 - scores) * step).clamp(0, step)  # 0 = top bin centre, step = bottom bin centre
    lower = position.detach().floor().clamp(max=step - 1).long()
    upper_weight = position - lower
    weight = torch.ones_like(scores) if counted is None else counted.to(scores.dtype)
    positive = labels.to(scores.dtype) * weight

    def histogram(mass: torch.Tensor) -> torch.Tensor:
        bins_mass = torch.zeros(scores.shape[0], bins, device=scores.device, dtype=scores.dtype)
        return bins_mass.scatter_add(1, lower, mass * (1 - upper_weight)).scatter_add(1, lower + 1, mass * upper_weight)

    positives, totals = histogram(positive), histogram(weight)
    precision = positives.cumsum(dim=1) / (1e-16 + totals.cumsum(dim=1))
    recall = positives / positives.sum(dim=1, keepdim=True).clamp(min=1e-16)
    return (precision * recall).sum(dim=1)


def ap_loss(ap: torch.Tensor, reliability: torch.Tensor, base: float = 0.5, weight: float = 1.0) -> torch.Tensor:
    """Per-query loss: (1 - w)(1 - AP) + w(1 - AP*r - base*(1 - r)), w = the reliability ``weight``.

    With w = 1 this is the paper's loss, where a descriptor may declare itself unreliable (r -> 0)
    when its AP is below ``base``; w < 1 (the trainer's warm-up) lets descriptors learn first, so
    that reliability does not collapse to 0 while every AP is still low.
    """
    return (1 - weight) * (1 - ap) + weight * (1 - ap * reliability - base * (1 - reliability))


def cosim_loss(repeatability1: torch.Tensor, repeatability2: torch.Tensor, aflow: torch.Tensor,
               patch_size: int = 16) -> torch.Tensor:
    """1 - mean cosine similarity of 16x16 patches of repeatability 1 and warped repeatability 2.

    Pixels without a correspondence are left out of both patches, and patches with none are left
    out of the mean: what image 2 cannot see says nothing about repeatability.

    Args:
        repeatability1, repeatability2: (B, 1, H, W).
        aflow: (B, 2, H, W), where each pixel of image 1 lands in image 2 (NaN: nowhere).
    """
    check_shape(repeatability1, "B 1 H W")
    check_shape(aflow, "B 2 H W")
    height, width = repeatability2.shape[-2:]
    scale = torch.tensor([2 / (width - 1), 2 / (height - 1)], device=aflow.device).view(1, 2, 1, 1)
    grid = aflow * scale - 1
    seen = (torch.isfinite(grid).all(dim=1, keepdim=True) & (grid.abs() <= 1).all(dim=1, keepdim=True)).float()
    grid = torch.nan_to_num(grid, nan=0.0).permute(0, 2, 3, 1)
    warped = F.grid_sample(repeatability2, grid, mode="bilinear", padding_mode="border", align_corners=True)
    stride = patch_size // 2
    patches1 = F.normalize(F.unfold(repeatability1 * seen, patch_size, stride=stride), dim=1)
    patches2 = F.normalize(F.unfold(warped * seen, patch_size, stride=stride), dim=1)
    covered = F.unfold(seen, patch_size, stride=stride).amax(dim=1)  # (B, L): patches with any correspondence
    cosine = (patches1 * patches2).sum(dim=1)
    return 1 - (cosine * covered).sum() / covered.sum().clamp(min=1)


def peaky_loss(repeatability: torch.Tensor, patch_size: int = 16) -> torch.Tensor:
    """1 - mean(local max - local mean) of the (3x3-smoothed) repeatability over (N+1)x(N+1) windows."""
    check_shape(repeatability, "B 1 H W")
    smoothed = F.avg_pool2d(repeatability, 3, stride=1, padding=1)
    half = patch_size // 2
    local_max = F.max_pool2d(smoothed, patch_size + 1, stride=1, padding=half)
    local_mean = F.avg_pool2d(smoothed, patch_size + 1, stride=1, padding=half)
    return 1 - (local_max - local_mean).mean()


def _disk_offsets(min_radius: float, max_radius: float) -> torch.Tensor:
    r = int(max_radius)
    ys, xs = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    squared = ys**2 + xs**2
    keep = (squared >= min_radius**2) & (squared <= max_radius**2)
    return torch.stack([xs[keep], ys[keep]], dim=1)  # (K, 2) as (dx, dy)


class PairSampler:
    """Builds, for a grid of query pixels of image 1, the AP problem: 1 positive, ring negatives, distractors."""

    def __init__(self, config: LossConfig) -> None:
        self.config = config
        self.positive_offsets = _disk_offsets(0, config.positive_radius)  # 29 offsets
        self.negative_offsets = _disk_offsets(config.negative_min_radius, config.negative_max_radius)  # 80

    def __call__(self, descriptors1: torch.Tensor, descriptors2: torch.Tensor, reliability1: torch.Tensor,
                 reliability2: torch.Tensor, aflow: torch.Tensor, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scores, labels, reliabilities and validity of every query of the batch.

        Returns:
            scores: (Q, 1 + negatives + distractors), positive first; labels of the same shape;
            counted: (Q, M) bool, False for ring negatives that fell outside image 2;
            reliability: (Q,); valid: (Q,) True where the ground truth lies inside image 2.
        """
        c = self.config
        batch, _, height, width = descriptors1.shape
        device = descriptors1.device
        ys = torch.arange(c.border, height - c.border, c.query_step, device=device)
        xs = torch.arange(c.border, width - c.border, c.query_step, device=device)
        grid_y, grid_x = (v.reshape(-1) for v in torch.meshgrid(ys, xs, indexing="ij"))
        b = torch.arange(batch, device=device).repeat_interleave(len(grid_y))
        qy, qx = grid_y.repeat(batch), grid_x.repeat(batch)
        queries = descriptors1[b, :, qy, qx]  # (Q, D)
        target = aflow[b, :, qy, qx]  # (Q, 2) x, y in image 2
        valid = torch.isfinite(target).all(dim=1)
        target = torch.nan_to_num(target, nan=-1e6)
        tx, ty = (target[:, 0] + 0.5).trunc().long(), (target[:, 1] + 0.5).trunc().long()
        valid &= (tx >= 0) & (tx < width) & (ty >= 0) & (ty < height)

        def gather(offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
            """Descriptors at the offsets around each ground truth, clamped into image 2, and which were inside."""
            ox, oy = offsets[:, 0].to(device), offsets[:, 1].to(device)
            x2, y2 = tx[:, None] + ox[None], ty[:, None] + oy[None]
            inside = (x2 >= 0) & (x2 < width) & (y2 >= 0) & (y2 < height)
            x2, y2 = x2.clamp(0, width - 1), y2.clamp(0, height - 1)
            return descriptors2[b[:, None], :, y2, x2], x2, y2, inside  # (Q, K, D), (Q, K) x3

        positives, px, py, _ = gather(self.positive_offsets)
        positive_scores = (positives * queries[:, None]).sum(dim=2)
        best_score, best = positive_scores.max(dim=1)
        best_x, best_y = px.gather(1, best[:, None])[:, 0], py.gather(1, best[:, None])[:, 0]
        # A ring offset outside image 2 would be clamped onto the border, near the true match:
        # it is left out rather than counted as a negative there.
        negatives, _, _, negative_inside = gather(self.negative_offsets)
        negative_scores = (negatives * queries[:, None]).sum(dim=2)

        count = c.distractors_per_image
        db = torch.arange(batch, device=device).repeat_interleave(count)
        dx = torch.randint(0, width, (batch * count,), device=device, generator=generator)
        dy = torch.randint(0, height, (batch * count,), device=device, generator=generator)
        distractor_scores = queries @ descriptors2[db, :, dy, dx].t()  # (Q, batch*count)
        # A distractor that happens to lie near the query's true match is not a negative we want to push.
        near = (db[None] == b[:, None]) & ((dx[None] - tx[:, None]) ** 2 + (dy[None] - ty[:, None]) ** 2 < c.negative_min_radius**2)
        distractor_scores = distractor_scores.masked_fill(near, 0)

        scores = torch.cat([best_score[:, None], negative_scores, distractor_scores], dim=1)
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1
        counted = torch.ones_like(scores, dtype=torch.bool)
        counted[:, 1 : 1 + negative_scores.shape[1]] = negative_inside
        reliability = (reliability1[b, 0, qy, qx] + reliability2[b, 0, best_y, best_x]) / 2
        return scores, labels, counted, reliability, valid


class R2D2Loss(nn.Module):
    """The full objective: weighted AP loss (with the sampler), cosim loss and peaky loss."""

    def __init__(self, config: LossConfig = LossConfig()) -> None:
        super().__init__()
        self.config = config
        self.sampler = PairSampler(config)

    def forward(self, out1: R2D2Output, out2: R2D2Output, aflow: torch.Tensor,
                generator: torch.Generator | None = None, reliability_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Loss terms and their weighted sum (``total``) for one batch of pairs.

        ``reliability_weight`` blends the plain AP loss (0) into the reliability-weighted one (1).
        """
        c = self.config
        scores, labels, counted, reliability, valid = self.sampler(
            out1.descriptors, out2.descriptors, out1.reliability, out2.reliability, aflow, generator
        )
        ap = quantized_average_precision(scores, labels, c.ap_bins, counted)
        per_query = ap_loss(ap, reliability, c.reliability_base, reliability_weight)
        terms = {
            "ap": per_query[valid].mean() if valid.any() else per_query.sum() * 0,
            "cosim": cosim_loss(out1.repeatability, out2.repeatability, aflow, c.patch_size),
            "peaky": (peaky_loss(out1.repeatability, c.patch_size) + peaky_loss(out2.repeatability, c.patch_size)) / 2,
        }
        terms["total"] = c.ap_weight * terms["ap"] + c.cosim_weight * terms["cosim"] + c.peaky_weight * terms["peaky"]
        terms["mean_ap"] = ap[valid].mean().detach() if valid.any() else ap.sum().detach() * 0
        return terms
