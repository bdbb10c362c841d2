"""What the node does with frames, without rclpy: parameters, the model it serves, camera pairing,
the per-set work, the inference worker, statistics and health. ``r2d2_ros.ros`` wires these to ROS."""
