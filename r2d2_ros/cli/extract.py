"""r2d2-extract: images, folders or list files -> one ``.r2d2`` npz per image (original format)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from ..extraction import extract_multiscale
from ..features import save_r2d2
from ..image_io import IMAGE_SUFFIXES, read_rgb
from ..model import CheckpointError
from .common import add_extraction_arguments, add_model_arguments, extraction_config, model_from_args

__all__ = ["collect_images", "main"]

log = logging.getLogger("r2d2-extract")


def collect_images(inputs: list[str]) -> list[Path]:
    """Expands images, folders (their images, sorted) and ``.txt`` list files (one path a line).

    Raises:
        ValueError: an input that does not exist.
    """
    images: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            images += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.suffix.lower() == ".txt" and item.is_file():
            lines = (line.strip() for line in item.read_text().splitlines())
            images += [item.parent / line for line in lines if line and not line.startswith("#")]
        elif item.is_file():
            images.append(item)
        else:
            raise ValueError(f"{item}: no such file or folder")
    return images


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r2d2-extract", description=__doc__)
    parser.add_argument("inputs", nargs="+", help="images, folders of images, or .txt files listing images")
    parser.add_argument("--output-dir", type=Path, help="where to write the files (default: beside each image)")
    parser.add_argument("--tag", default="r2d2", help="output suffix: <image>.<tag> (default: r2d2)")
    add_model_arguments(parser)
    add_extraction_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns 0 when every image was written, 1 when some failed, 2 on bad usage."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = extraction_config(args)
        images = collect_images(args.inputs)
        model, device = model_from_args(args)
    except (ValueError, FileNotFoundError, CheckpointError) as error:
        parser.error(str(error))
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for image_path in tqdm(images, desc="r2d2-extract", unit="image", disable=None):
        out_dir = args.output_dir or image_path.parent
        try:
            features = extract_multiscale(model, read_rgb(image_path), config)
        except ValueError as error:
            log.warning("skipped %s", error)
            failed += 1
            continue
        save_r2d2(out_dir / f"{image_path.name}.{args.tag}", features)
    log.info("%d of %d images written (device %s, model %s)", len(images) - failed, len(images), device, model.arch)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
