"""r2d2_ros: R2D2 keypoints for ROS 2 cameras, and the tools that train and evaluate the network.

Everything here but :mod:`r2d2_ros.ros` works without ROS::

    from r2d2_ros import load_model, prepare_for_inference, extract_multiscale
    model = prepare_for_inference(load_model(path))
    features = extract_multiscale(model, rgb_image)
"""
import pkgutil

# The generated messages (r2d2_ros.msg) live in the colcon install space, the library in this
# folder: merge every r2d2_ros folder on sys.path so that either copy imported first finds both.
__path__ = pkgutil.extend_path(__path__, __name__)

from .extraction import ExtractionConfig, extract_multiscale  # noqa: E402
from .features import Features, load_r2d2, save_r2d2  # noqa: E402
from .model import load_model, prepare_for_inference  # noqa: E402

__all__ = [
    "ExtractionConfig",
    "Features",
    "extract_multiscale",
    "load_model",
    "load_r2d2",
    "prepare_for_inference",
    "save_r2d2",
]
