"""r2d2-extract: images, folders or list files -> one ``.r2d2`` npz per image (original format);
or a camera topic of a rosbag2 -> a bag of r2d2_ros/msg/Keypoints, one per frame.

    r2d2-extract images/ list.txt photo.jpg [--output-dir DIR]
    r2d2-extract --bag IN --topic /cam/image_raw --output-bag OUT [--storage mcap|sqlite3]

Bag mode processes every frame (none is dropped) and is resumable: rerunning the same command after
an interruption continues where the last finished storage file of OUT ends.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from ..bags import (IMAGE_TYPES, BagError, FeatureBagWriter, TopicReader, camera_info_topic, decode_frame,
                    keypoints_message)
from ..bags.store import STORAGES
from ..extraction import ExtractionConfig, NetworkRunner, extract_multiscale
from ..features import save_r2d2
from ..image_io import IMAGE_SUFFIXES, read_rgb
from ..model import CheckpointError
from ..conversions.keypoints_message import DESCRIPTOR_ENCODINGS
from .common import (add_backend_arguments, add_extraction_arguments, add_model_arguments, extraction_config,
                     model_path, runner_from_args)

__all__ = ["collect_images", "extract_bag", "main"]

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
    parser = argparse.ArgumentParser(prog="r2d2-extract", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", help="images, folders of images, or .txt files listing images")
    parser.add_argument("--output-dir", type=Path, help="where to write the files (default: beside each image)")
    parser.add_argument("--tag", default="r2d2", help="output suffix: <image>.<tag> (default: r2d2)")
    bag = parser.add_argument_group("rosbag2 in, rosbag2 out")
    bag.add_argument("--bag", type=Path, help="input bag (folder with metadata.yaml, or a .mcap/.db3 file)")
    bag.add_argument("--topic", help="its Image or CompressedImage topic (default: the only one)")
    bag.add_argument("--output-bag", type=Path, help="feature bag to write, or to continue")
    bag.add_argument("--output-topic", help="Keypoints topic (default: keypoints beside the image topic)")
    bag.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="output storage (default: mcap)")
    bag.add_argument("--descriptor-encoding", choices=sorted(DESCRIPTOR_ENCODINGS), default="float32")
    bag.add_argument("--chunk-frames", type=int, default=100,
                     help="frames per output storage file; an interruption loses at most one (default: 100)")
    add_model_arguments(parser)
    add_backend_arguments(parser)
    add_extraction_arguments(parser)
    return parser


def _keypoints_topic(image_topic: str) -> str:
    """Where the node's keypoints go for this camera: /cam/image_raw -> /cam/keypoints."""
    return str(PurePosixPath(camera_info_topic(image_topic)).with_name("keypoints"))


def _bag_settings(args: argparse.Namespace, topic: str, config: ExtractionConfig, checkpoint: Path) -> dict[str, Any]:
    """What the feature bag's metadata records, and what a resumed run must match."""
    # cuda_graphs changes how the features are computed, not which: a bag may be resumed with it
    # toggled, and bags written before it existed resume as before.
    extraction = {name: value for name, value in asdict(config).items() if name != "cuda_graphs"}
    return {"input": {"bag": str(args.bag.resolve()), "topic": topic},
            "model": {"name": checkpoint.stem, "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest()},
            "extraction": extraction, "descriptor_encoding": args.descriptor_encoding}


def extract_bag(args: argparse.Namespace, runner: NetworkRunner, config: ExtractionConfig, checkpoint: Path) -> int:
    """Every frame of the bag's image topic -> one Keypoints message (the image's header) in the output bag.

    Returns 0, or 1 when some messages were corrupt or undecodable (skipped, counted).

    Raises:
        BagError: an unusable input or output bag.
    """
    encoding = DESCRIPTOR_ENCODINGS[args.descriptor_encoding]
    undecodable = 0
    with TopicReader(args.bag, args.topic, IMAGE_TYPES) as frames:
        output_topic = args.output_topic or _keypoints_topic(frames.topic)
        with FeatureBagWriter(args.output_bag, output_topic, _bag_settings(args, frames.topic, config, checkpoint),
                              storage=args.storage, chunk_frames=args.chunk_frames) as writer:
            resumed_at, written_before = writer.frames_read, writer.written
            with tqdm(total=frames.count, initial=resumed_at, desc="r2d2-extract", unit="frame", disable=None) as bar:
                for frame in frames.messages(skip=resumed_at):
                    try:
                        features = extract_multiscale(runner, decode_frame(frame.message, frames.msgtype), config)
                    except ValueError as error:  # ImageDecodeError, or a frame the network cannot take
                        log.warning("skipped message %d of %s: %s", frame.index, frames.topic, error)
                        undecodable += 1
                    else:
                        message = keypoints_message(features, frame.message.header, checkpoint.stem, encoding)
                        writer.write(message, frame.log_time_ns, frames_read=frame.index + 1)
                    bar.update(frame.index + 1 - bar.n)
            writer.frames_read = frames.count  # the skipped messages at the end are consumed too
    skipped = frames.corrupt + undecodable
    log.info("%s: %d Keypoints messages on %s (%d new%s); %d corrupt or undecodable messages skipped",
             args.output_bag, writer.written, output_topic, writer.written - written_before,
             f", resumed at frame {resumed_at} of {frames.count}" if resumed_at else "", skipped)
    return 1 if skipped else 0


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns 0 when every image or frame was written, 1 when some failed, 2 on bad usage or
    an unusable bag, 130 when interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    parser = _parser()
    args = parser.parse_args(argv)
    if bool(args.inputs) == bool(args.bag) or bool(args.bag) != bool(args.output_bag):
        parser.error("give images, or --bag with --output-bag")
    try:
        config = extraction_config(args)
        images = collect_images(args.inputs)
        runner, model = runner_from_args(args, config)
    except (ValueError, FileNotFoundError, CheckpointError) as error:
        parser.error(str(error))
    if args.bag:
        try:
            return extract_bag(args, runner, config, model_path(args))
        except BagError as error:
            parser.exit(2, f"{parser.prog}: error: {error}\n")
        except KeyboardInterrupt:
            parser.exit(130, f"{parser.prog}: interrupted; {args.output_bag} holds every finished file: "
                             "rerun the same command to continue\n")
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for image_path in tqdm(images, desc="r2d2-extract", unit="image", disable=None):
        out_dir = args.output_dir or image_path.parent
        try:
            features = extract_multiscale(runner, read_rgb(image_path), config)
        except ValueError as error:
            log.warning("skipped %s", error)
            failed += 1
            continue
        save_r2d2(out_dir / f"{image_path.name}.{args.tag}", features)
    log.info("%d of %d images written (model %s)", len(images) - failed, len(images), model.arch)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
