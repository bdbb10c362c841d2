"""Rewrites the build-machine paths baked into the ros-kilted wheels' CMake exports.

The wheels were built in a manylinux container, so their exported targets name
/opt/python/cp311-cp311/... for the Python and numpy include folders; CMake refuses to
configure against folders that do not exist. Run with the venv's interpreter.
"""
from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

PYTHON_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
NUMPY_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/_core/include")


def main() -> int:
    share = Path(sys.prefix) / "share"
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    changed = 0
    for path in share.rglob("*.cmake"):
        text = path.read_text()
        fixed = PYTHON_INCLUDE.sub(python_include, NUMPY_INCLUDE.sub(numpy_include, text))
        if fixed != text:
            path.write_text(fixed)
            changed += 1
    print(f"fix_ros_cmake: rewrote {changed} CMake files under {share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
