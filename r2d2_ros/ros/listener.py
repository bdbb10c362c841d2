"""r2d2_listener: prints each Keypoints message's count and latency, and a summary at the end.

With --save-dir it also subscribes to the heatmaps and the overlay (so the node makes them) and
writes the latest of each as PNG, plus summary.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.time import Time
from sensor_msgs.msg import Image

from ..msg import Keypoints
from ..conversions.image_codec import decode_image

__all__ = ["Listener", "main"]

PICTURES = {"keypoints/heatmap/repeatability": "repeatability.png", "keypoints/heatmap/reliability": "reliability.png",
            "keypoints/image": "overlay.png"}


class Listener(Node):
    """Collects per-frame keypoint counts and latencies (receive time minus header stamp)."""

    def __init__(self, save_dir: Path | None, quiet: bool) -> None:
        super().__init__("r2d2_listener")
        self.latencies_ms: list[float] = []
        self.counts: list[int] = []
        self.last_message_time = time.monotonic()
        self._quiet = quiet
        self._save_dir = save_dir
        self.create_subscription(Keypoints, "keypoints", self._on_keypoints, QoSProfile(depth=10))
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            for topic, filename in PICTURES.items():
                self.create_subscription(Image, topic, lambda m, f=filename: self._save(m, f), QoSProfile(depth=2))

    def _on_keypoints(self, message: Keypoints) -> None:
        latency_ms = (self.get_clock().now() - Time.from_msg(message.header.stamp)).nanoseconds / 1e6
        self.latencies_ms.append(latency_ms)
        self.counts.append(message.count)
        self.last_message_time = time.monotonic()
        if not self._quiet:
            print(f"frame {len(self.counts)}: {message.count} keypoints, latency {latency_ms:.1f} ms", flush=True)

    def _save(self, message: Image, filename: str) -> None:
        rgb = decode_image(message.encoding, message.height, message.width, message.step, message.data)
        cv2.imwrite(str(self._save_dir / filename), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))

    def summary(self) -> dict[str, float]:
        latencies = self.latencies_ms or [float("nan")]
        return {
            "frames": len(self.counts),
            "keypoints_mean": statistics.fmean(self.counts) if self.counts else 0.0,
            "latency_median_ms": statistics.median(latencies),
            "latency_max_ms": max(latencies),
        }


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="r2d2_listener", description=__doc__)
    parser.add_argument("--count", type=int, default=0, help="stop after N messages (0: never)")
    parser.add_argument("--idle-timeout", type=float, default=0.0, help="stop after this many seconds without one")
    parser.add_argument("--save-dir", type=Path, help="write the latest heatmaps, overlay and summary.json here")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    options = parser.parse_args(rclpy.utilities.remove_ros_args(args if args is not None else sys.argv)[1:])
    rclpy.init(args=args)
    listener = Listener(options.save_dir, options.quiet)
    try:
        while rclpy.ok():
            rclpy.spin_once(listener, timeout_sec=0.1)
            if options.count and len(listener.counts) >= options.count:
                break
            if options.idle_timeout and time.monotonic() - listener.last_message_time > options.idle_timeout:
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        summary = listener.summary()
        print("summary: " + json.dumps(summary), flush=True)
        if options.save_dir is not None:
            (options.save_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        listener.destroy_node()
        rclpy.try_shutdown()
    return 0 if summary["frames"] else 1


if __name__ == "__main__":
    sys.exit(main())
