"""r2d2_ros: R2D2 keypoints for ROS 2 cameras, and the tools that train and evaluate the network.

Everything here but :mod:`r2d2_ros.ros` works without ROS::

    from r2d2_ros import load_model, prepare_for_inference, extract_multiscale
    model = prepare_for_inference(load_model(path))
    features = extract_multiscale(model, rgb_image)

The names below are imported on first use: ``from r2d2_ros.msg import Keypoints`` (a VO stack
reading the message) then costs what a message package costs, without torch.
"""
import importlib
import pkgutil
from typing import Any

# The generated messages (r2d2_ros.msg) live in the colcon install space, the library in this
# folder: merge every r2d2_ros folder on sys.path so that either copy imported first finds both.
__path__ = pkgutil.extend_path(__path__, __name__)

_EXPORTS = {
    "ExtractionConfig": ".extraction",
    "extract_multiscale": ".extraction",
    "Features": ".features",
    "load_r2d2": ".features",
    "save_r2d2": ".features",
    "load_model": ".model",
    "prepare_for_inference": ".model",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'r2d2_ros' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value
