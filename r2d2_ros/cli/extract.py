"""r2d2-extract: images, folders or list files -> one ``.r2d2`` npz per image (original format);
or a camera topic of a rosbag2 -> a bag of r2d2_ros/msg/Keypoints, one per frame.

    r2d2-extract images/ list.txt photo.jpg [--output-dir DIR]
    r2d2-extract --bag IN --topic /cam/image_raw --output-bag OUT [--storage mcap|sqlite3]
    r2d2-extract --bag bags/ --output-bag features/        # every bag in bags/ -> features/<bag name>
    r2d2-extract --bag bags/ --output-bag features/ --ray  # the same on Ray workers (docs/distributed.md)

Bag mode processes every frame (none is dropped) and is resumable: rerunning the same command after
an interruption continues where the last finished storage file of OUT ends.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from ..bags import (IMAGE_TYPES, BagError, FeatureBagWriter, TopicReader, camera_info_topic, decode_frame, is_bag,
                    keypoints_message)
from ..bags.store import STORAGES
from ..extraction import ExtractionConfig, NetworkRunner, extract_multiscale
from ..features import save_r2d2
from ..image_io import IMAGE_SUFFIXES, read_rgb
from ..model import CheckpointError
from ..conversions.keypoints_message import DESCRIPTOR_ENCODINGS
from .common import (add_backend_arguments, add_extraction_arguments, add_model_arguments, extraction_config,
                     model_path, runner_from_args)

__all__ = ["Job", "Outcome", "collect_images", "collect_bags", "plan_jobs", "run_job", "extract_bag", "main"]

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


def collect_bags(inputs: list[Path]) -> list[Path]:
    """Expands bags and folders of bags (their bags, sorted).

    Raises:
        ValueError: an input that is neither a bag nor a folder holding some.
    """
    bags: list[Path] = []
    for item in inputs:
        found = [item] if is_bag(item) else sorted(p for p in item.iterdir() if is_bag(p)) if item.is_dir() else []
        if not found:
            raise ValueError(f"{item}: not a bag, nor a folder of bags")
        bags += found
    return bags


@dataclass(frozen=True)
class Job:
    """One input and where its features go: an image and its ``.r2d2`` file, or a whole bag and its feature bag
    (a bag is never split: tracking needs its frames in order)."""

    input: Path
    output: Path
    is_bag: bool = False


@dataclass(frozen=True)
class Outcome:
    """What a job did: frames whose features were written, and input messages skipped as corrupt."""

    frames: int
    skipped: int = 0


def plan_jobs(args: argparse.Namespace) -> list[Job]:
    """The jobs the parsed options ask for, in input order.

    With one bag, ``--output-bag`` is its feature bag; with several (or a folder of them), a folder
    that receives one feature bag per input, named after it.

    Raises:
        ValueError: a missing input.
    """
    if not args.bag:
        out_dir = args.output_dir
        return [Job(image, (out_dir or image.parent) / f"{image.name}.{args.tag}")
                for image in collect_images(args.inputs)]
    if len(args.bag) == 1 and is_bag(args.bag[0]):
        return [Job(args.bag[0], args.output_bag, is_bag=True)]
    return [Job(bag, args.output_bag / (bag.name if bag.is_dir() else bag.stem), is_bag=True)
            for bag in collect_bags(args.bag)]


def run_job(job: Job, args: argparse.Namespace, runner: NetworkRunner, config: ExtractionConfig,
            checkpoint: Path) -> Outcome:
    """Extracts one job's input and writes its output: the one extraction path of every mode (Ray included).

    Raises:
        ValueError: an unreadable image; BagError (a ValueError): an unusable input or output bag.
    """
    job.output.parent.mkdir(parents=True, exist_ok=True)
    if job.is_bag:
        return extract_bag(job.input, job.output, args, runner, config, checkpoint)
    save_r2d2(job.output, extract_multiscale(runner, read_rgb(job.input), config))
    return Outcome(frames=1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r2d2-extract", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", help="images, folders of images, or .txt files listing images")
    parser.add_argument("--output-dir", type=Path, help="where to write the files (default: beside each image)")
    parser.add_argument("--tag", default="r2d2", help="output suffix: <image>.<tag> (default: r2d2)")
    bag = parser.add_argument_group("rosbag2 in, rosbag2 out")
    bag.add_argument("--bag", type=Path, nargs="+",
                     help="input bag (folder with metadata.yaml, or a .mcap/.db3 file); or several, or folders of them")
    bag.add_argument("--topic", help="its Image or CompressedImage topic (default: the only one)")
    bag.add_argument("--output-bag", type=Path,
                     help="feature bag to write, or to continue; with several input bags, the folder for them")
    bag.add_argument("--output-topic", help="Keypoints topic (default: keypoints beside the image topic)")
    bag.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="output storage (default: mcap)")
    bag.add_argument("--descriptor-encoding", choices=sorted(DESCRIPTOR_ENCODINGS), default="float32")
    bag.add_argument("--chunk-frames", type=int, default=100,
                     help="frames per output storage file; an interruption loses at most one (default: 100)")
    add_model_arguments(parser)
    add_backend_arguments(parser)
    add_extraction_arguments(parser)
    cluster = parser.add_argument_group("Ray (pip install r2d2_ros[cluster])")
    cluster.add_argument("--ray", action="store_true",
                         help="run on Ray workers, a local cluster on this machine unless --ray-address; a rerun "
                              "skips images already written and continues unfinished bags")
    cluster.add_argument("--ray-address", metavar="ADDR", help="join this Ray cluster (e.g. auto, or HOST:6379)")
    cluster.add_argument("--ray-workers", type=int, help="workers (default: as many as the cluster's resources hold)")
    cluster.add_argument("--ray-cpus-per-worker", type=int, default=1, help="CPU threads of each worker (default: 1)")
    cluster.add_argument("--ray-gpus-per-worker", type=float, default=0.0,
                         help="GPUs of each worker; 0.5 puts two on a GPU (default: 0, CPU workers)")
    return parser


def _keypoints_topic(image_topic: str) -> str:
    """Where the node's keypoints go for this camera: /cam/image_raw -> /cam/keypoints."""
    return str(PurePosixPath(camera_info_topic(image_topic)).with_name("keypoints"))


def _bag_settings(args: argparse.Namespace, bag: Path, topic: str, config: ExtractionConfig,
                  checkpoint: Path) -> dict[str, Any]:
    """What the feature bag's metadata records, and what a resumed run must match."""
    # cuda_graphs changes how the features are computed, not which: a bag may be resumed with it
    # toggled, and bags written before it existed resume as before.
    extraction = {name: value for name, value in asdict(config).items() if name != "cuda_graphs"}
    return {"input": {"bag": str(bag.resolve()), "topic": topic},
            "model": {"name": checkpoint.stem, "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest()},
            "extraction": extraction, "descriptor_encoding": args.descriptor_encoding}


def extract_bag(bag: Path, output: Path, args: argparse.Namespace, runner: NetworkRunner, config: ExtractionConfig,
                checkpoint: Path) -> Outcome:
    """Every frame of the bag's image topic -> one Keypoints message (the image's header) in the output bag.

    Returns:
        The Keypoints messages written by this call, and the messages skipped as corrupt or undecodable.

    Raises:
        BagError: an unusable input or output bag.
    """
    encoding = DESCRIPTOR_ENCODINGS[args.descriptor_encoding]
    undecodable = 0
    with TopicReader(bag, args.topic, IMAGE_TYPES) as frames:
        output_topic = args.output_topic or _keypoints_topic(frames.topic)
        with FeatureBagWriter(output, output_topic, _bag_settings(args, bag, frames.topic, config, checkpoint),
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
             output, writer.written, output_topic, writer.written - written_before,
             f", resumed at frame {resumed_at} of {frames.count}" if resumed_at else "", skipped)
    return Outcome(frames=writer.written - written_before, skipped=skipped)


def _run_locally(jobs: list[Job], args: argparse.Namespace, runner: NetworkRunner, config: ExtractionConfig,
                 checkpoint: Path) -> tuple[int, int]:
    """Runs the jobs one after the other in this process; returns the failed jobs and the skipped messages.

    A failed input is reported and the next one goes on, except a lone bag, whose BagError propagates
    (one error line, exit status 2).
    """
    failed = skipped = 0
    lone_bag = len(jobs) == 1 and bool(args.bag)  # which has its own bar, of frames
    for job in tqdm(jobs, desc="r2d2-extract", unit="bag" if args.bag else "image", disable=True if lone_bag else None):
        try:
            skipped += run_job(job, args, runner, config, checkpoint).skipped
        except BagError:
            if len(jobs) == 1:
                raise
            log.exception("skipped bag %s", job.input)
            failed += 1
        except ValueError as error:
            log.warning("skipped %s", error)
            failed += 1
    return failed, skipped


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
        jobs = plan_jobs(args)
        if args.ray or args.ray_address:
            from .extract_ray import extract_on_ray  # Ray is optional: imported only when asked for

            return extract_on_ray(jobs, args)
        runner, model = runner_from_args(args, config)
    except (ValueError, FileNotFoundError, CheckpointError) as error:
        parser.error(str(error))
    try:
        failed, skipped = _run_locally(jobs, args, runner, config, model_path(args))
    except BagError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    except KeyboardInterrupt:
        if not args.bag:
            raise
        parser.exit(130, f"{parser.prog}: interrupted; {args.output_bag} holds every finished file: "
                         "rerun the same command to continue\n")
    log.info("%d of %d %s written (model %s)", len(jobs) - failed, len(jobs), "bags" if args.bag else "images",
             model.arch)
    return 1 if failed or skipped else 0


if __name__ == "__main__":
    sys.exit(main())
