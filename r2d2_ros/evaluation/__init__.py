"""Evaluation on HPatches-layout folders and camera sequences (no ROS)."""
