"""r2d2_player: publishes an image folder, EuRoC or KITTI sequence as a camera (Image + CameraInfo).

Frames are stamped with the current ROS time when published, so that subscribers can measure
end-to-end latency from the header stamp.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from ..image_io import read_rgb
from ..sequences import CameraCalibration, Sequence, load_sequence

__all__ = ["build_image_message", "build_camera_info", "main"]


def build_image_message(rgb: np.ndarray, frame_id: str) -> Image:
    """An Image message of an RGB frame: mono8 when all channels are equal, else rgb8."""
    grey = bool(np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 1], rgb[:, :, 2]))
    pixels = np.ascontiguousarray(rgb[:, :, 0] if grey else rgb)
    message = Image(height=pixels.shape[0], width=pixels.shape[1], encoding="mono8" if grey else "rgb8",
                    is_bigendian=0, step=pixels.shape[1] * (1 if grey else 3))
    message.header.frame_id = frame_id
    message.data = pixels.tobytes()
    return message


def build_camera_info(calibration: CameraCalibration | None, width: int, height: int, frame_id: str) -> CameraInfo:
    """CameraInfo from a sequence's calibration (an identity-free, all-zero one when unknown)."""
    info = CameraInfo(width=width, height=height)
    info.header.frame_id = frame_id
    if calibration is not None:
        projection = calibration.P if calibration.P is not None else np.hstack([calibration.K, np.zeros((3, 1))])
        info.k = [float(v) for v in calibration.K.reshape(-1)]
        info.d = [float(v) for v in calibration.D]
        info.distortion_model = calibration.distortion_model
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [float(v) for v in projection.reshape(-1)]
    return info


class Player(Node):
    """Publishes pre-built frames at a fixed rate."""

    def __init__(self, sequence: Sequence, args: argparse.Namespace) -> None:
        super().__init__("r2d2_player")
        frames = sequence.frames[: args.count] if args.count else sequence.frames
        self._images = [build_image_message(read_rgb(path), args.frame_id) for path in frames]
        first = self._images[0]
        self._info = build_camera_info(sequence.calibration, first.width, first.height, args.frame_id)
        self._image_pub = self.create_publisher(Image, args.topic, qos_profile_sensor_data)
        self._info_pub = self.create_publisher(CameraInfo, args.info_topic, qos_profile_sensor_data)
        self.period = 1.0 / (args.rate or sequence.rate_hz or 10.0)
        self.loop = args.loop
        self.get_logger().info(f"{sequence.name}: {len(self._images)} frames at {1 / self.period:.1f} Hz")

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._image_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(self, timeout_sec=0.1)
        return self._image_pub.get_subscription_count() > 0

    def play(self) -> int:
        """Publishes every frame once (or forever with --loop); returns the number published."""
        published = 0
        next_time = time.monotonic()
        while rclpy.ok():
            for message in self._images:
                stamp = self.get_clock().now().to_msg()
                message.header.stamp = stamp
                self._info.header.stamp = stamp
                self._image_pub.publish(message)
                self._info_pub.publish(self._info)
                published += 1
                next_time += self.period
                time.sleep(max(0.0, next_time - time.monotonic()))
            if not self.loop:
                break
        return published


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="r2d2_player", description=__doc__)
    parser.add_argument("sequence", help="image folder, EuRoC cam0 folder (data.csv) or KITTI folder (image/)")
    parser.add_argument("--rate", type=float, help="frames per second (default: the sequence's, else 10)")
    parser.add_argument("--count", type=int, help="publish only the first N frames")
    parser.add_argument("--loop", action="store_true", help="start again at the end")
    parser.add_argument("--topic", default="image")
    parser.add_argument("--info-topic", default="camera_info")
    parser.add_argument("--frame-id", default="camera_optical_frame")
    parser.add_argument("--wait-for-subscribers", type=float, default=30.0, metavar="SECONDS",
                        help="wait this long for a subscriber before publishing (0: do not wait)")
    ros_args = rclpy.utilities.remove_ros_args(args if args is not None else sys.argv)[1:]
    options = parser.parse_args(ros_args)
    try:
        sequence = load_sequence(options.sequence)
    except ValueError as error:
        parser.error(str(error))
    rclpy.init(args=args)
    player = Player(sequence, options)
    try:
        if options.wait_for_subscribers and not player.wait_for_subscribers(options.wait_for_subscribers):
            player.get_logger().warning("no subscriber yet; publishing anyway")
        count = player.play()
        player.get_logger().info(f"published {count} frames")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        player.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
