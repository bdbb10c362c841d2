"""Feature tracking (ROS-free): matching, geometric verification, persistent track ids, rectification."""
from .flow_tracker import FlowTracker
from .front_end import FrontEndResult, TrackingFrontEnd
from .rectification import CameraModel, rectify_points
from .tracker import FeatureTracker, TrackerConfig
from .tracks import TrackBook, TrackIdSequence, Tracks
from .verification import epipolar_inliers, epipolar_model, sampson_errors

__all__ = ["CameraModel", "FeatureTracker", "FlowTracker", "FrontEndResult", "TrackBook", "TrackIdSequence",
           "TrackerConfig", "TrackingFrontEnd", "Tracks", "epipolar_inliers", "epipolar_model", "rectify_points",
           "sampson_errors"]
