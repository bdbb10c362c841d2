"""End-to-end latency (publish -> keypoints received) and throughput of r2d2_node at 640x480.

    python benchmarks/node_latency.py [--device cuda] [--precision fp16] [--frames 10] [-p key:=value ...]

Starts the node in its own process over real DDS (after `. ./activate`), on the bundled model
unless -p model:=PATH says otherwise.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import Image

from r2d2_ros.msg import Keypoints

REFERENCE_IMAGE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "images" / "brooklyn.png"


def _frame() -> Image:
    if REFERENCE_IMAGE.exists():
        pixels = cv2.cvtColor(cv2.resize(cv2.imread(str(REFERENCE_IMAGE)), (640, 480)), cv2.COLOR_BGR2RGB)
    else:
        pixels = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    message = Image(height=480, width=640, encoding="rgb8", step=640 * 3)
    message.data = pixels.tobytes()
    return message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--frames", type=int, default=10, help="frames for the latency phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the throughput phase")
    parser.add_argument("--rate", type=float, default=30.0, help="input rate of the throughput phase")
    parser.add_argument("-p", dest="parameters", action="append", default=[], help="extra node parameter key:=value")
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_DOMAIN_ID", str(60 + os.getpid() % 30))
    params = [f"device:={args.device}", f"precision:={args.precision}", *args.parameters]
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    node = subprocess.Popen([sys.executable, "-m", "r2d2_ros.ros.node", "--ros-args",
                             *[x for p in params for x in ("-p", p)]], stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    client = rclpy.create_node("latency_benchmark")
    received: list[tuple[float, Keypoints]] = []
    client.create_subscription(Keypoints, "keypoints", lambda m: received.append((time.monotonic(), m)),
                               QoSProfile(depth=100))
    publisher = client.create_publisher(Image, "image", qos_profile_sensor_data)
    frame = _frame()
    try:
        while publisher.get_subscription_count() == 0 or "ready:" not in Path(log.name).read_text():
            if node.poll() is not None:
                raise RuntimeError(Path(log.name).read_text())
            rclpy.spin_once(client, timeout_sec=0.1)
        print(Path(log.name).read_text().split("ready:", 1)[1].splitlines()[0].strip())
        latencies = []
        for index in range(args.frames + 1):  # the first frame warms the 640x480 pyramid up
            before = len(received)
            while len(received) == before:  # best effort: send again if a frame is lost (e.g. discovery)
                frame.header.stamp = client.get_clock().now().to_msg()
                publisher.publish(frame)
                resend_at = time.monotonic() + 120
                while len(received) == before and time.monotonic() < resend_at:
                    rclpy.spin_once(client, timeout_sec=0.01)
            arrival_clock = client.get_clock().now()
            if index:
                latencies.append((arrival_clock - Time.from_msg(received[-1][1].header.stamp)).nanoseconds / 1e6)
        count = received[-1][1].count
        received.clear()
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < args.seconds:
            frame.header.stamp = client.get_clock().now().to_msg()
            publisher.publish(frame)
            sent += 1
            deadline = start + sent / args.rate
            while time.monotonic() < deadline:
                rclpy.spin_once(client, timeout_sec=max(0.0, deadline - time.monotonic()))
        throughput = len(received) / args.seconds
        print(f"\n| 640x480, {args.precision} | value |\n|---|---|")
        print(f"| keypoints per frame | {count} |")
        print(f"| latency median (ms), one frame at a time | {statistics.median(latencies):.1f} |")
        print(f"| latency min / max (ms) | {min(latencies):.1f} / {max(latencies):.1f} |")
        print(f"| throughput at {args.rate:.0f} Hz input (frames/s out) | {throughput:.2f} |")
    finally:
        node.terminate()
        node.wait(timeout=20)
        client.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
