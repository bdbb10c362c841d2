"""ROS message payloads <-> arrays, without rclpy: image decoding and Keypoints messages.

Shared by the node, the bag tools and the CLIs; the message classes come from the ROS message
packages (no rclpy, no executor).
"""
