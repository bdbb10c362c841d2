"""Multi-scale keypoint extraction."""
from .config import PRECISIONS, ExtractionConfig
from .multiscale import extract_multiscale, image_to_tensor, pyramid_images, pyramid_levels
from .nms import nms_mask, top_k_indices

__all__ = [
    "PRECISIONS",
    "ExtractionConfig",
    "extract_multiscale",
    "image_to_tensor",
    "nms_mask",
    "pyramid_images",
    "pyramid_levels",
    "top_k_indices",
]
