"""pip install . : the ROS-free library and its console scripts (colcon builds with CMakeLists.txt)."""
from setuptools import setup

setup()
