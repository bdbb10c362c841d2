"""Multi-scale keypoint extraction."""
from .config import PRECISION_CHOICES, PRECISIONS, ExtractionConfig
from .multiscale import extract_multiscale, extract_multiscale_batch, image_to_tensor, pyramid_images, pyramid_levels
from .nms import nms_mask, top_k_indices
from .runner import NetworkRunner, TorchRunner, as_runner

__all__ = [
    "PRECISIONS",
    "PRECISION_CHOICES",
    "ExtractionConfig",
    "NetworkRunner",
    "TorchRunner",
    "as_runner",
    "extract_multiscale",
    "extract_multiscale_batch",
    "image_to_tensor",
    "nms_mask",
    "pyramid_images",
    "pyramid_levels",
    "top_k_indices",
]
