"""R2D2 networks (Revaud et al., NeurIPS 2019) in plain PyTorch.

Every variant is a fully convolutional trunk followed by three heads computed
from the trunk output ``x``:

* descriptors: ``x`` L2-normalised over channels;
* reliability: channel 1 of a 2-way softmax of a 1x1 conv applied to ``x**2``;
* repeatability: ``softplus(u) / (1 + softplus(u))`` with ``u`` a 1x1 conv of ``x**2``.

The trunk is a flat ``ops`` list whose indices match the original checkpoints'
``state_dict`` keys, so official weights load without renaming.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "Fast_Quad_L2Net_ConfCFS",
    "Quad_L2Net_ConfCFS",
    "R2D2Net",
    "R2D2Output",
    "normalize_descriptors",
    "prepare_for_inference",
]


@dataclass(frozen=True)
class LayerSpec:
    """One convolution of the trunk and what follows it."""

    out_channels: int
    kernel: int
    dilation: int
    batch_norm: bool = True
    relu: bool = True


@dataclass
class R2D2Output:
    """Dense network outputs for a batch.

    Attributes:
        descriptors: (B, D, H, W), unit L2 norm over D.
        reliability: (B, 1, H, W), in [0, 1].
        repeatability: (B, 1, H, W), in [0, 1].
    """

    descriptors: torch.Tensor
    reliability: torch.Tensor
    repeatability: torch.Tensor


def _conv_block(in_channels: int, spec: LayerSpec) -> list[nn.Module]:
    padding = ((spec.kernel - 1) * spec.dilation) // 2
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, spec.out_channels, spec.kernel, padding=padding, dilation=spec.dilation)
    ]
    if spec.batch_norm:
        # Affine-free, as in the original: only running statistics are learnt.
        layers.append(nn.BatchNorm2d(spec.out_channels, affine=False))
    if spec.relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


def normalize_descriptors(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """L2-normalises raw trunk features along ``dim`` (channels of a (B, D, H, W) map by default)."""
    return F.normalize(x, p=2, dim=dim, eps=1e-12)


def _reliability(logits: torch.Tensor) -> torch.Tensor:
    return F.softmax(logits, dim=1)[:, 1:2]


def _repeatability(logit: torch.Tensor) -> torch.Tensor:
    softplus = F.softplus(logit)
    return softplus / (1 + softplus)


class R2D2Net(nn.Module):
    """A stride-1 R2D2 trunk plus the descriptor, reliability and repeatability heads.

    Args:
        ops: the trunk layers, in order (indices are part of the checkpoint format).
        dim: descriptor dimension (channels of the trunk output).
        arch: the architecture string that rebuilds this net, stored in checkpoints.
    """

    def __init__(self, ops: list[nn.Module], dim: int, arch: str) -> None:
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self.clf = nn.Conv2d(dim, 2, kernel_size=1)
        self.sal = nn.Conv2d(dim, 1, kernel_size=1)
        self.dim = dim
        self.arch = arch
        # Set by prepare_for_inference: batch norm is folded away, so this net must not be trained or saved.
        self.inference_only = False

    def trunk(self, image: torch.Tensor) -> torch.Tensor:
        """Runs the trunk: (B, 3, H, W) normalised image -> (B, D, H', W')."""
        x = image
        for op in self.ops:
            x = op(x)
        return x

    def score_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reliability and repeatability, each (B, 1, H, W), from the trunk output (B, D, H, W)."""
        squared = x * x
        return _reliability(self.clf(squared)), _repeatability(self.sal(squared))

    def forward(self, image: torch.Tensor) -> R2D2Output:
        """Dense maps for a normalised image batch.

        Args:
            image: (B, 3, H, W), ImageNet-normalised RGB.

        Returns:
            R2D2Output with maps of size (H, W), or (2*floor(H/2), 2*floor(W/2))
            for the Fast variant.
        """
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an image batch of shape (B, 3, H, W), got {tuple(image.shape)}")
        x = self.trunk(image)
        reliability, repeatability = self.score_maps(x)
        return R2D2Output(normalize_descriptors(x), reliability, repeatability)


def _n16_specs(mchan: int, dim: int) -> list[LayerSpec]:
    # Stride-1 L2-Net: where L2-Net would downsample, the dilation of what follows doubles.
    c = 8 * mchan
    return [
        LayerSpec(c, 3, 1),
        LayerSpec(c, 3, 1),
        LayerSpec(2 * c, 3, 1),
        LayerSpec(2 * c, 3, 2),
        LayerSpec(4 * c, 3, 2),
        LayerSpec(4 * c, 3, 4),
        # L2-Net's final 8x8 conv, factorised into three 2x2 dilated convs.
        LayerSpec(4 * c, 2, 4, relu=False),
        LayerSpec(4 * c, 2, 8, relu=False),
        LayerSpec(dim, 2, 16, batch_norm=False, relu=False),
    ]


def _build_ops(specs: list[LayerSpec], in_channels: int = 3) -> list[nn.Module]:
    ops: list[nn.Module] = []
    for spec in specs:
        ops += _conv_block(in_channels, spec)
        in_channels = spec.out_channels
    return ops


@dataclass(frozen=True)
class ArchSpec:
    """An architecture as data: a registered constructor name and its keyword arguments."""

    name: str
    kwargs: dict[str, int] = field(default_factory=dict)

    def build(self) -> R2D2Net:
        """Instantiates the network (random weights)."""
        return ARCHITECTURES[self.name](**self.kwargs)

    def to_string(self) -> str:
        """The original checkpoint's constructor string, e.g. ``Quad_L2Net_ConfCFS(mchan=6)``."""
        args = ", ".join(f"{key}={value!r}" for key, value in self.kwargs.items())
        return f"{self.name}({args})"


def _format_arch(name: str, mchan: int, dim: int) -> str:
    """The constructor string that checkpoints store, omitting default arguments."""
    kwargs = {key: value for key, value, default in (("mchan", mchan, 4), ("dim", dim, 128)) if value != default}
    return ArchSpec(name, kwargs).to_string()


def Quad_L2Net_ConfCFS(mchan: int = 4, dim: int = 128) -> R2D2Net:  # noqa: N802 (checkpoint name)
    """The R2D2 net: N16 with ``mchan=4`` (484,387 parameters), the "big" N8 net with ``mchan=6``."""
    arch = _format_arch("Quad_L2Net_ConfCFS", mchan, dim)
    return R2D2Net(_build_ops(_n16_specs(mchan, dim)), dim, arch)


def Fast_Quad_L2Net_ConfCFS(mchan: int = 4, dim: int = 128) -> R2D2Net:  # noqa: N802 (checkpoint name)
    """Fast-R2D2: one 2x max-pool early on and a bilinear 2x upsample at the end."""
    c = 8 * mchan
    ops = _build_ops([LayerSpec(c, 3, 1), LayerSpec(c, 3, 1), LayerSpec(2 * c, 3, 1)])
    ops.append(nn.MaxPool2d(2))
    ops += _build_ops(
        [
            LayerSpec(2 * c, 3, 1),
            LayerSpec(4 * c, 3, 1),
            LayerSpec(4 * c, 3, 2),
            LayerSpec(4 * c, 2, 2, relu=False),
            LayerSpec(4 * c, 2, 4, relu=False),
            LayerSpec(dim, 2, 8, batch_norm=False, relu=False),
        ],
        in_channels=2 * c,
    )
    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
    return R2D2Net(ops, dim, _format_arch("Fast_Quad_L2Net_ConfCFS", mchan, dim))


def _fold_batchnorm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """Folds an affine-free, eval-mode batch norm into the convolution that feeds it."""
    inv_std = torch.rsqrt(norm.running_var + norm.eps)
    conv.weight.data.mul_(inv_std.view(-1, 1, 1, 1))
    conv.bias.data.sub_(norm.running_mean).mul_(inv_std)


def prepare_for_inference(model: R2D2Net) -> R2D2Net:
    """An eval-mode copy with batch norm folded into the convolutions, in channels_last layout.

    Folding removes a full pass over every feature map per layer; channels_last makes oneDNN
    and cuDNN pick their fastest dilated-convolution kernels. Outputs change only by rounding.
    """
    fast = copy.deepcopy(model).eval()
    ops = list(fast.ops)
    for index, op in enumerate(ops):
        if isinstance(op, nn.BatchNorm2d):
            conv = ops[index - 1]
            if not isinstance(conv, nn.Conv2d) or op.affine:
                raise ValueError(f"cannot fold batch norm at ops.{index}: it does not follow a convolution")
            _fold_batchnorm(conv, op)
            ops[index] = nn.Identity()
    fast.ops = nn.ModuleList(ops)
    fast.inference_only = True
    for parameter in fast.parameters():
        parameter.requires_grad_(False)
    return fast.to(memory_format=torch.channels_last)


# Architectures that a checkpoint may name; the registry doubles as the parser's allow-list.
ARCHITECTURES = {
    "Quad_L2Net_ConfCFS": Quad_L2Net_ConfCFS,
    "Fast_Quad_L2Net_ConfCFS": Fast_Quad_L2Net_ConfCFS,
}
