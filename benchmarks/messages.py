"""Cost of filling and publishing a 5000 x 128 Keypoints message from Python (target < 2 ms).

    python benchmarks/messages.py [--repeats 200]

Needs the colcon-built messages and rclpy (run it after `. ./activate`).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import rclpy
import torch
from rclpy.qos import QoSProfile

from r2d2_ros.features import Features
from r2d2_ros.msg import Keypoints
from r2d2_ros.conversions.keypoints_message import DESCRIPTOR_ENCODINGS, features_to_message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--keypoints", type=int, default=5000)
    args = parser.parse_args(argv)
    n = args.keypoints
    features = Features(torch.rand(n, 3) * 640, torch.nn.functional.normalize(torch.randn(n, 128), dim=1),
                        torch.rand(n).sort(descending=True).values, (640, 480))
    rclpy.init()
    node = rclpy.create_node("message_benchmark")
    publisher = node.create_publisher(Keypoints, "benchmark/keypoints", QoSProfile(depth=1))
    received = []
    node.create_subscription(Keypoints, "benchmark/keypoints", received.append, QoSProfile(depth=1))
    print(f"{n} keypoints x 128, {args.repeats} repeats, median ms\n")
    print("| encoding | fill | publish | fill + publish | message bytes |\n|---|---|---|---|---|")
    for name, encoding in DESCRIPTOR_ENCODINGS.items():
        fill, publish = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            message = features_to_message(features, Keypoints(), "benchmark", encoding)
            middle = time.perf_counter()
            publisher.publish(message)
            end = time.perf_counter()
            fill.append(middle - start)
            publish.append(end - middle)
        size = len(message.descriptors) + 16 * n
        print(f"| {name} | {statistics.median(fill) * 1e3:.2f} | {statistics.median(publish) * 1e3:.2f} | "
              f"{statistics.median([a + b for a, b in zip(fill, publish)]) * 1e3:.2f} | {size:,} |")
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
