"""ROS 2 side: only the code that needs rclpy (the node, the replay tools); the rest is in r2d2_ros.serving and r2d2_ros.conversions."""
