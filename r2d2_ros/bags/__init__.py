"""rosbag2 (MCAP or SQLite3) without ROS, through ``rosbags``: camera topics in, feature bags out and back.

- :mod:`.store`: opening bags, one clear :class:`BagError` per unusable bag, topics read message by message;
- :mod:`.images`: camera topics (listing, decoding as the node does) and recording a sequence folder as a bag;
- :mod:`.features`: feature bags of r2d2_ros/msg/Keypoints, written resumably and read back as Features.
"""
from .features import FeatureBag, FeatureBagWriter, feature_bag_settings, keypoints_message
from .images import IMAGE_TYPES, camera_info_topic, decode_frame, image_topics, write_sequence_bag
from .store import BagError, BagMessage, TopicReader, bag_topics, is_bag, stamp_ns, typestore, with_stamp

__all__ = ["BagError", "BagMessage", "FeatureBag", "FeatureBagWriter", "IMAGE_TYPES", "TopicReader",
           "bag_topics", "camera_info_topic", "decode_frame", "feature_bag_settings", "image_topics", "is_bag",
           "keypoints_message", "stamp_ns", "typestore", "with_stamp", "write_sequence_bag"]
