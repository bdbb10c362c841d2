"""Records an image folder, EuRoC or KITTI sequence as a camera bag (Image or CompressedImage + CameraInfo).

    python -m r2d2_ros.bags SEQUENCE OUT [--topic /camera/image_raw] [--storage mcap|sqlite3] [--compressed]

Frames are stamped with their recorded times (KITTI, image folders: index / rate), so that a feature
bag made from it lines up with the sequence's ground truth in ``r2d2-eval --vo-bag``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..sequences import load_sequence
from .images import write_sequence_bag
from .store import STORAGES, BagError


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m r2d2_ros.bags", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sequence", type=Path, help="image folder, EuRoC cam0 folder or KITTI folder")
    parser.add_argument("output", type=Path, help="bag folder to create")
    parser.add_argument("--topic", default="/camera/image_raw", help="image topic (+ /compressed with --compressed)")
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap")
    parser.add_argument("--compressed", action="store_true", help="CompressedImage (PNG, lossless) instead of Image")
    parser.add_argument("--size", type=_size, metavar="WxH", help="resize frames (and the calibration)")
    parser.add_argument("--count", type=int, help="only the first N frames")
    args = parser.parse_args(argv)
    try:
        written = write_sequence_bag(load_sequence(args.sequence), args.output, args.topic, storage=args.storage,
                                     compressed=args.compressed, size=args.size, count=args.count)
    except BagError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    except ValueError as error:
        parser.error(str(error))
    print(f"{args.output}: {written} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
