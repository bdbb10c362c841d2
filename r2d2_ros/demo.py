"""The main demo: replay a camera into r2d2_node and save what comes out.

    python -m r2d2_ros.demo [--sequence FOLDER] [--frames 5] [--device auto]

Records a camera as a rosbag2 (EuRoC V1_01 cam0 from ../shared/data when present, else a synthetic
sequence; MCAP, Image + CameraInfo), then starts three ROS 2 processes, as a robot would run them:
the player replays the bag, the node extracts keypoints with the bundled default model, and the
listener reports per-frame keypoint counts and latency and writes the latest heatmaps and overlay
as PNG files.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from .bags import write_sequence_bag
from .sequences import load_sequence

__all__ = ["main"]

EUROC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sequences" / "euroc_v1_01_cam0"


def _synthetic_sequence(folder: Path, frames: int) -> Path:
    """A textured scene panning to the right, for machines without the shared data."""
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.integers(0, 256, (480, 900), dtype=np.uint8), (0, 0), 2)
    for _ in range(150):
        cv2.rectangle(scene, tuple(int(v) for v in rng.integers(0, [880, 460])), tuple(int(v) for v in
                      rng.integers(0, [900, 480])), int(rng.integers(0, 256)), -1)
    for index in range(frames):
        cv2.imwrite(str(folder / f"{index:04d}.png"), scene[:, index * 8 : index * 8 + 640])
    return folder


def _start(module: str, *args: str, log: Path) -> subprocess.Popen:
    with open(log, "w") as stream:
        return subprocess.Popen([sys.executable, "-m", module, *args], stdout=stream, stderr=subprocess.STDOUT)


def _wait_for(text: str, log: Path, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{log.name}: the process did not get ready:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="r2d2-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", type=Path, help="image folder, EuRoC or KITTI sequence")
    parser.add_argument("--frames", type=int, default=5, help="keypoint messages to wait for")
    parser.add_argument("--rate", type=float, default=2.0, help="camera frames per second")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", type=Path, default=Path("outputs/demo"))
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ROS_DOMAIN_ID", str(40 + os.getpid() % 50))  # keep the demo to itself
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    with tempfile.TemporaryDirectory() as scratch:
        sequence = args.sequence or (EUROC if EUROC.is_dir() else None)
        if sequence is None:
            print("demo: ../shared/data is absent; replaying a synthetic panning sequence instead")
            sequence = _synthetic_sequence(Path(scratch), args.frames * 6)
        bag = Path(scratch) / "camera_bag"
        recorded = write_sequence_bag(load_sequence(sequence), bag, "/camera/image")
        print(f"demo: camera = {bag} ({recorded} frames of {sequence}), {args.rate} Hz; node = r2d2_node with the "
              f"bundled model on {args.device}")
        logs = {name: args.output / f"{name}.log" for name in ("node", "listener", "player")}
        node = _start("r2d2_ros.ros.node", "--ros-args", "-p", f"device:={args.device}", "-r", "image:=/camera/image",
                      log=logs["node"])
        processes = [node]
        try:
            _wait_for("ready:", logs["node"], node, timeout_s=180)
            print("demo: node ready; " + logs["node"].read_text().split("ready:", 1)[1].splitlines()[0].strip())
            listener = _start("r2d2_ros.ros.listener", "--count", str(args.frames), "--idle-timeout", "120",
                              "--save-dir", str(args.output), log=logs["listener"])
            # Restamped as a live camera: the listener's latency is measured from the header stamp.
            player = _start("r2d2_ros.ros.player", str(bag), "--topic", "/camera/image", "--restamp", "--loop",
                            "--rate", str(args.rate), log=logs["player"])
            processes += [listener, player]
            code = listener.wait(timeout=900)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=20)
        print(logs["listener"].read_text().strip())
        print(f"demo: wrote {', '.join(sorted(p.name for p in args.output.glob('*.png')))} and logs in {args.output}")
        return code


if __name__ == "__main__":
    sys.exit(main())
