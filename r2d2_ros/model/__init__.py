"""R2D2 networks and their checkpoints."""
from .checkpoint import ArchSpec, CheckpointError, load_checkpoint, load_model, parse_arch, save_checkpoint
from .nets import ARCHITECTURES, R2D2Net, R2D2Output, normalize_descriptors, prepare_for_inference

__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "CheckpointError",
    "R2D2Net",
    "R2D2Output",
    "load_checkpoint",
    "load_model",
    "normalize_descriptors",
    "prepare_for_inference",
    "parse_arch",
    "save_checkpoint",
]
