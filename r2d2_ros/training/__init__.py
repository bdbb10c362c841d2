"""Offline training of R2D2 networks (no ROS): data, losses, configuration and the trainer."""
from .config import TrainConfig, load_config
from .trainer import Trainer

__all__ = ["TrainConfig", "Trainer", "load_config"]
