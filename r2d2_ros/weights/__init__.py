"""The bundled default model, trained by this project's own trainer (see MODEL_CARD.md)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_MODEL", "default_model_path"]

DEFAULT_MODEL = Path(__file__).with_name("r2d2_ros_default.pt")


def default_model_path() -> Path:
    """Path of the bundled default checkpoint.

    Raises:
        FileNotFoundError: the package was installed without it.
    """
    if not DEFAULT_MODEL.is_file():
        raise FileNotFoundError(f"the bundled default model {DEFAULT_MODEL} is missing; pass a model path")
    return DEFAULT_MODEL
