"""Packs training photos small, for a GPU machine that receives at most a few tens of MB per call.

    python -m r2d2_ros.training.pack_images ../shared/data/train .gpu/train [--short-side 352] [--quality 82]

Each photo is read as the trainer reads it, shrunk (never enlarged) so that its short side is at most
--short-side, and written as JPEG under the same relative path and name (``.jpg`` appended to names
of other formats). The packed folder lists the same files in the same order, so the trainer holds out
the same validation photos (every run.val_image_every-th): an unreadable file is copied unchanged, to
be skipped and counted by the trainer there as here. Pair it with data.max_source_side at most
--short-side, so that training never enlarges what was shrunk here.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2

from r2d2_ros.image_io import read_rgb
from r2d2_ros.training.data import list_images

JPEG_SUFFIXES = (".jpg", ".jpeg")


def packed_name(relative: Path) -> Path:
    """Where a photo goes in the packed folder: its own name, with ``.jpg`` appended unless it is a JPEG."""
    return relative if relative.suffix.lower() in JPEG_SUFFIXES else relative.with_name(relative.name + ".jpg")


def pack_image(source: Path, target: Path, short_side: int, quality: int) -> int:
    """Writes ``source`` shrunk to ``short_side`` as a JPEG at ``target``; returns the bytes written.

    Raises:
        ValueError: ``source`` cannot be read as an image.
    """
    image = read_rgb(source)  # the trainer's reader: same orientation, channels and bit depth
    factor = short_side / min(image.shape[:2])
    if factor < 1:  # INTER_AREA: anti-aliased shrinking
        image = cv2.resize(image, (round(image.shape[1] * factor), round(image.shape[0] * factor)),
                           interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"{source}: JPEG encoding failed")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(encoded.tobytes())
    return encoded.size


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"JPEG quality must be within 1-100, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Packs every photo under ``source`` into ``target``; returns 2 for arguments that would not work."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="folder of photos (searched recursively)")
    parser.add_argument("target", type=Path, help="output folder (same relative paths and names)")
    parser.add_argument("--short-side", type=_positive, default=352)
    parser.add_argument("--quality", type=_quality, default=82, help="JPEG quality")
    args = parser.parse_args(argv)
    source, target = args.source.resolve(), args.target.resolve()
    if target == source or source in target.parents or target in source.parents:
        parser.error(f"{args.target} and {args.source} overlap: the photos would be packed into their own list")
    if target.exists() and any(target.iterdir()):
        # Files left from another packing would join the trainer's list and shift its held-out photos.
        parser.error(f"{args.target} is not empty: pack into a new folder")
    images = list_images([source])
    relative = [path.relative_to(source) for path in images]
    names = [packed_name(path) for path in relative]
    if sorted(names) != names or len(set(names)) != len(names):
        # Another order would hold out other validation photos than the trainer does on the source.
        parser.error("the packed names would not keep the photos' order (names differing only in their suffix?)")
    total, unreadable = 0, 0
    for path, name in zip(images, names):
        try:
            total += pack_image(path, target / name, args.short_side, args.quality)
        except ValueError as error:
            print(f"{error}: copied unchanged", file=sys.stderr)
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / name)
            unreadable += 1
    print(f"{len(images)} files, {total / 2**20:.1f} MiB of photos in {args.target}; "
          f"{unreadable} unreadable copied unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
