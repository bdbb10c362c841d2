"""ROS 2 side: the node and the replay tools (node.py, player.py and listener.py import rclpy)."""
