"""Packs training photos small, for a GPU machine that receives at most a few tens of MB per call.

    python -m r2d2_ros.training.pack_images ../shared/data/train .gpu/train [--short-side 352] [--quality 82]

Each photo is shrunk (never enlarged) so that its short side is at most --short-side, and written as
JPEG under the same relative path and name: the sorted file list, hence the trainer's held-out
validation photos (every run.val_image_every-th), stay the same as on the original folder. Pair it
with data.max_source_side at most --short-side, so that training never upsamples what was shrunk here.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

from r2d2_ros.training.data import list_images


def pack_image(source: Path, target: Path, short_side: int, quality: int) -> int:
    """Writes ``source`` shrunk to ``short_side`` as a JPEG at ``target``; returns the bytes written.

    Raises:
        ValueError: ``source`` cannot be read as an image.
    """
    image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{source}: not a readable image")
    factor = short_side / min(image.shape[:2])
    if factor < 1:  # INTER_AREA: anti-aliased shrinking
        image = cv2.resize(image, (round(image.shape[1] * factor), round(image.shape[0] * factor)),
                           interpolation=cv2.INTER_AREA)
    target.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"{source}: JPEG encoding failed")
    target.write_bytes(encoded.tobytes())
    return encoded.size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="folder of photos (searched recursively)")
    parser.add_argument("target", type=Path, help="output folder (same relative paths and names)")
    parser.add_argument("--short-side", type=int, default=352)
    parser.add_argument("--quality", type=int, default=82, help="JPEG quality")
    args = parser.parse_args(argv)
    total, skipped = 0, 0
    images = list_images([args.source])
    for path in images:
        relative = path.relative_to(args.source)
        try:
            total += pack_image(path, args.target / relative.with_suffix(".jpg"), args.short_side, args.quality)
        except ValueError as error:
            print(error, file=sys.stderr)
            skipped += 1
    print(f"{len(images) - skipped} photos, {total / 2**20:.1f} MiB in {args.target}; {skipped} unreadable skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
