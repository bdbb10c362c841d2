"""r2d2_player: replays a camera from a rosbag2 image topic, or from an image folder, EuRoC or KITTI sequence.

A bag's Image or CompressedImage messages are published as recorded, headers untouched (unless
``--restamp``), on their recorded topic, each with the CameraInfo of the same stamp when the bag has
one (on the recorded ``.../camera_info`` topic), at the recorded pace or ``--rate``. Sequence frames
go out as ``Image`` + ``CameraInfo`` stamped with the current ROS time when published; restamped
frames let subscribers measure end-to-end latency from the header stamp.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..bags import BagError, TopicReader, bag_topics, camera_info_topic, image_topics, is_bag, stamp_ns, with_stamp
from ..bags.images import IMAGE_TYPES, raw_image_layout
from ..bags.store import CAMERA_INFO, COMPRESSED_IMAGE
from ..image_io import read_rgb
from ..sequences import CameraCalibration, Sequence, load_sequence

__all__ = ["build_image_message", "build_camera_info", "Frame", "BagSource", "Player", "main"]


def build_image_message(rgb: np.ndarray, frame_id: str) -> Image:
    """An Image message of an RGB frame: mono8 when all channels are equal, else rgb8."""
    pixels, encoding = raw_image_layout(rgb)
    message = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, is_bigendian=0,
                    step=pixels.strides[0])
    message.header.frame_id = frame_id
    message.data = pixels.tobytes()
    return message


def build_camera_info(calibration: CameraCalibration | None, width: int, height: int, frame_id: str) -> CameraInfo:
    """CameraInfo from a sequence's calibration (an identity-free, all-zero one when unknown)."""
    info = CameraInfo(width=width, height=height)
    info.header.frame_id = frame_id
    if calibration is not None:
        for name, value in calibration.camera_info_fields().items():
            setattr(info, name, value)
    return info


@dataclass(frozen=True)
class Frame:
    """One frame to publish: messages, or recorded CDR bytes that are published unchanged."""

    image: Image | CompressedImage | bytes
    info: CameraInfo | bytes | None
    time_ns: int  # when it was recorded; paces the replay unless a rate is given


def sequence_frames(sequence: Sequence, frame_id: str) -> list[Frame]:
    """A sequence's frames as Image + CameraInfo messages (decoded once, replayed from memory)."""
    images = [build_image_message(read_rgb(path), frame_id) for path in sequence.frames]
    info = build_camera_info(sequence.calibration, images[0].width, images[0].height, frame_id)
    return [Frame(image, info, time_ns) for image, time_ns in zip(images, sequence.times_ns())]


class BagSource:
    """An image topic of a bag with its CameraInfo, streamed from the bag on every pass.

    Raises:
        BagError: the bag is unusable or the topic is not an image topic.
    """

    def __init__(self, path: Path, topic: str, start_s: float) -> None:
        self.path, self.topic, self.start_s = path, topic, start_s
        with TopicReader(path, topic, IMAGE_TYPES) as images:
            self.image_type = CompressedImage if images.msgtype == COMPRESSED_IMAGE else Image
            self.count = images.count
        self.info_topic = camera_info_topic(topic)
        recorded_info = bag_topics(path).get(self.info_topic, (None, 0))[0] == CAMERA_INFO
        self._infos = self._camera_infos() if recorded_info else {}
        self.corrupt = 0

    def _camera_infos(self) -> dict[int, bytes]:
        """The recorded CameraInfo messages by header stamp (a driver stamps them as their image)."""
        with TopicReader(self.path, self.info_topic, (CAMERA_INFO,)) as infos:
            return {stamp_ns(item.message.header): item.raw for item in infos.messages()}

    @property
    def has_camera_info(self) -> bool:
        return bool(self._infos)

    def frames(self) -> Iterator[Frame]:
        """One pass over the topic from the start offset; corrupt messages are skipped into :attr:`corrupt`."""
        with TopicReader(self.path, self.topic, IMAGE_TYPES) as images:
            start_ns = images.start_time_ns + round(self.start_s * 1e9)
            try:
                for item in images.messages(start_ns=start_ns):
                    yield Frame(item.raw, self._infos.get(stamp_ns(item.message.header)), item.log_time_ns)
            finally:
                self.corrupt += images.corrupt


class Player(Node):
    """Publishes frames at a fixed rate or at their recorded pace."""

    def __init__(self, image_type: type, image_topic: str, info_topic: str, restamp: bool) -> None:
        super().__init__("r2d2_player")
        self._image_pub = self.create_publisher(image_type, image_topic, qos_profile_sensor_data)
        self._info_pub = self.create_publisher(CameraInfo, info_topic, qos_profile_sensor_data)
        self._restamp = restamp

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._image_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(self, timeout_sec=0.1)
        return self._image_pub.get_subscription_count() > 0

    def play(self, frames: Callable[[], Iterable[Frame]], period_s: float | None, loop: bool,
             limit: int | None = None) -> int:
        """Publishes every frame once (or forever with ``loop``); returns the number published.

        ``period_s``: seconds between frames; None keeps the recorded intervals. ``limit``: only the
        first frames of each pass.
        """
        published = 0
        while rclpy.ok():
            started, first_ns = time.monotonic(), None
            for index, frame in enumerate(itertools.islice(frames(), limit)):
                first_ns = frame.time_ns if first_ns is None else first_ns
                due = started + (index * period_s if period_s else (frame.time_ns - first_ns) / 1e9)
                time.sleep(max(0.0, due - time.monotonic()))
                if not self.context.ok():
                    return published  # shut down (SIGINT, SIGTERM) while waiting: the publishers are gone
                self._publish(frame)
                published += 1
            if not loop or first_ns is None:
                break
        return published

    def _publish(self, frame: Frame) -> None:
        image, info = frame.image, frame.info
        if self._restamp:
            now = self.get_clock().now()
            if isinstance(image, bytes):
                image, info = (None if raw is None else with_stamp(raw, now.nanoseconds) for raw in (image, info))
            else:
                image.header.stamp = info.header.stamp = now.to_msg()
        self._image_pub.publish(image)
        if info is not None:
            self._info_pub.publish(info)


def _print_image_topics(path: Path) -> None:
    """What to pass as --topic: the bag's image topics, one a line."""
    topics = image_topics(path)
    if not topics:
        raise BagError(f"{path}: no Image or CompressedImage topic")
    print(f"{path}: image topics (pass one with --topic):")
    for name, (msgtype, count) in topics.items():
        print(f"  {name}  {msgtype}  {count} messages")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r2d2_player", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="rosbag2 (folder or .mcap/.db3 file), image folder, EuRoC cam0 folder "
                                       "(data.csv) or KITTI folder (image/)")
    parser.add_argument("--topic", help="bag: the image topic to replay (without it, the image topics are listed); "
                                        "sequence: the topic to publish on (default: image)")
    parser.add_argument("--rate", type=float, help="frames per second (default: a bag's recorded pace, a sequence's "
                                                   "rate, else 10)")
    parser.add_argument("--start", type=float, default=0.0, metavar="SECONDS",
                        help="skip the first SECONDS of the recording")
    parser.add_argument("--count", type=int, help="publish only the first N frames")
    parser.add_argument("--loop", action="store_true", help="start again at the end")
    parser.add_argument("--restamp", action="store_true",
                        help="stamp a bag's frames with the current time, as a live camera (sequences always are)")
    parser.add_argument("--info-topic", default="camera_info",
                        help="sequences' CameraInfo topic (a bag's keeps its recorded topic)")
    parser.add_argument("--frame-id", default="camera_optical_frame", help="sequences' header frame_id")
    parser.add_argument("--wait-for-subscribers", type=float, default=30.0, metavar="SECONDS",
                        help="wait this long for a subscriber before publishing (0: do not wait)")
    return parser


def _sequence_player(sequence: Sequence, options: argparse.Namespace) -> tuple[Player, Callable[[], Iterable[Frame]],
                                                                             float, str]:
    """Player, frames, period and a description for a sequence folder."""
    frames = sequence_frames(sequence, options.frame_id)
    first_ns = frames[0].time_ns + round(options.start * 1e9)
    frames = [frame for frame in frames if frame.time_ns >= first_ns]
    period = 1.0 / (options.rate or sequence.rate_hz or 10.0)
    player = Player(Image, options.topic or "image", options.info_topic, restamp=True)
    return player, lambda: frames, period, f"{sequence.name}: {len(frames)} frames at {1 / period:.1f} Hz"


def _bag_player(bag: BagSource, options: argparse.Namespace) -> tuple[Player, Callable[[], Iterable[Frame]],
                                                                      float | None, str]:
    """Player, frames, period (None: the recorded pace) and a description for a bag's image topic."""
    player = Player(bag.image_type, bag.topic, bag.info_topic, restamp=options.restamp)
    pace = f"{options.rate:.1f} Hz" if options.rate else "the recorded pace"
    info = f" with CameraInfo on {bag.info_topic}" if bag.has_camera_info else " (no CameraInfo)"
    return player, bag.frames, 1.0 / options.rate if options.rate else None, \
        f"{bag.path} {bag.topic}: {bag.count} frames at {pace}{info}"


def main(args: list[str] | None = None) -> int:
    parser = _parser()
    ros_args = rclpy.utilities.remove_ros_args(args if args is not None else sys.argv)[1:]
    options = parser.parse_args(ros_args)
    source_path = Path(options.source)
    bag = sequence = None
    try:  # a bad source is one error line before ROS starts
        if not is_bag(source_path):
            sequence = load_sequence(source_path)
        elif options.topic is None:
            _print_image_topics(source_path)
            return 0
        else:
            bag = BagSource(source_path, options.topic, options.start)
    except BagError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    except ValueError as error:
        parser.error(str(error))
    rclpy.init(args=args)
    player, frames, period, description = _bag_player(bag, options) if bag else _sequence_player(sequence, options)
    player.get_logger().info(description)
    try:
        if options.wait_for_subscribers and not player.wait_for_subscribers(options.wait_for_subscribers):
            player.get_logger().warning("no subscriber yet; publishing anyway")
        count = player.play(frames, period, options.loop, options.count)
        skipped = f"; skipped {bag.corrupt} corrupt messages" if bag is not None and bag.corrupt else ""
        player.get_logger().info(f"published {count} frames{skipped}")
    except BagError as error:  # the bag is damaged past the part already replayed
        player.get_logger().error(str(error))
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        player.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
