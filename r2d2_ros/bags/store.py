"""Opening rosbag2 files (MCAP or SQLite3) with ``rosbags``: the type store, and one topic read message by message.

Every way a bag can be unreadable (missing, truncated, unknown storage, a topic that is absent or of
the wrong type) becomes one :class:`BagError` with a one-line reason, so that the command-line tools
print it instead of a traceback. A message that does not deserialise is skipped and counted.
"""
from __future__ import annotations

import functools
import os
import struct
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.rosbag2 import Reader, StoragePlugin
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

__all__ = ["BagError", "BagMessage", "TopicReader", "STORAGES", "open_bag", "bag_topics", "KEYPOINTS", "IMAGE",
           "COMPRESSED_IMAGE", "CAMERA_INFO", "is_bag", "typestore", "stamp_ns", "with_stamp"]

KEYPOINTS = "r2d2_ros/msg/Keypoints"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_STORAGE_SUFFIXES = (".mcap", ".db3")
# rosbags' storage readers raise ReaderError for the damage they check for, and whatever their parsing
# or the SQLite driver raise for the rest (TypeError on an MCAP cut after its magic, apsw.CorruptError
# on a cut .db3): so every exception out of the storage layer means "this bag is damaged".
_STORAGE_ERRORS = (Exception,)


class BagError(ValueError):
    """A bag, or a topic in it, that cannot be used; the message is one line."""


def is_bag(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like a rosbag2: a ``.mcap``/``.db3`` file, or a folder with metadata.yaml or one."""
    path = Path(path)
    if path.is_dir():
        return (path / "metadata.yaml").is_file() or any(p.suffix in _STORAGE_SUFFIXES for p in path.iterdir())
    return path.suffix in _STORAGE_SUFFIXES


def _keypoints_definition() -> str:
    """The text of msg/Keypoints.msg: from the source tree, else from an ament install (colcon, apt)."""
    candidates = [Path(__file__).resolve().parents[2] / "msg" / "Keypoints.msg"]
    candidates += [Path(prefix) / "share" / "r2d2_ros" / "msg" / "Keypoints.msg"
                   for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if prefix]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.read_text()
    raise BagError("msg/Keypoints.msg not found (neither in the source tree nor in an AMENT_PREFIX_PATH share folder)")


@functools.cache
def typestore() -> Typestore:
    """ROS 2 Kilted's message types plus r2d2_ros/msg/Keypoints, registered from its .msg file."""
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(_keypoints_definition(), KEYPOINTS))
    return store


def stamp_ns(header: Any) -> int:
    """A std_msgs/Header's stamp in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def with_stamp(raw: bytes, time_ns: int) -> bytes:
    """A CDR message whose first field is a std_msgs/Header (Image, CameraInfo, ...), stamped ``time_ns``.

    The stamp is then the first data after the 4-byte encapsulation header (int32 sec, uint32
    nanosec, in the byte order that header names), so it is patched in place of a full round trip.
    """
    byte_order = "<" if raw[1] == 1 else ">"  # encapsulation 0x0001: CDR little-endian; 0x0000: big-endian
    return raw[:4] + struct.pack(f"{byte_order}iI", *divmod(time_ns, 1_000_000_000)) + raw[12:]


@dataclass(frozen=True)
class BagMessage:
    """One recorded message: its position in the topic, receive time, CDR bytes and deserialised form."""

    index: int
    log_time_ns: int
    raw: bytes
    message: Any


def _select_topic(path: Path, topics: dict[str, Any], topic: str | None, msgtypes: Collection[str]) -> str:
    """``topic`` after checking its type, or the only topic of one of ``msgtypes`` when None."""
    wanted = " or ".join(sorted(msgtypes))
    if topic is None:
        matching = sorted(name for name, info in topics.items() if info.msgtype in msgtypes)
        if not matching:
            raise BagError(f"{path}: no {wanted} topic (topics: {', '.join(sorted(topics)) or 'none'})")
        if len(matching) > 1:
            raise BagError(f"{path}: several {wanted} topics ({', '.join(matching)}); name one")
        return matching[0]
    if topic not in topics:
        raise BagError(f"{path}: no topic {topic} (topics: {', '.join(sorted(topics)) or 'none'})")
    if topics[topic].msgtype not in msgtypes:
        raise BagError(f"{path}: {topic} holds {topics[topic].msgtype}, not {wanted}")
    return topic


class TopicReader:
    """One topic of a bag, read in recorded order; messages that do not deserialise are skipped and counted.

    Args:
        topic: the topic; None for the bag's only topic of one of ``msgtypes``.
        msgtypes: the message types accepted.

    Use as a context manager. Raises :class:`BagError` when the bag cannot be opened, when it has no
    such topic, or when the topic's type is not one of ``msgtypes``.
    """

    def __init__(self, path: str | os.PathLike[str], topic: str | None, msgtypes: Collection[str]) -> None:
        self.path = Path(path)
        self.corrupt = 0
        self._reader = open_bag(self.path)
        try:
            topics = self._reader.topics
            self.topic = _select_topic(self.path, topics, topic, msgtypes)
        except BaseException:
            self._reader.close()
            raise
        self.msgtype: str = topics[self.topic].msgtype
        self.count: int = topics[self.topic].msgcount
        self._connections = topics[self.topic].connections

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    @property
    def start_time_ns(self) -> int:
        """Receive time of the bag's first message (any topic)."""
        return self._reader.start_time

    def messages(self, skip: int = 0, start_ns: int | None = None) -> Iterator[BagMessage]:
        """The topic's messages from receive time ``start_ns`` on (default: all), less the first ``skip`` of them.

        ``BagMessage.index`` counts from the first message at or after ``start_ns``.

        Raises:
            BagError: the storage is damaged past the point already read.
        """
        store = typestore()
        index = skip - 1
        try:
            for index, (_, log_time, raw) in enumerate(self._reader.messages(self._connections, start=start_ns)):
                if index < skip:
                    continue  # already consumed (a resumed run); not even deserialised
                raw = bytes(raw)
                try:  # from a writable copy, so that arrays viewing it (image pixels) are writable too
                    message = store.deserialize_cdr(bytearray(raw), self.msgtype)
                except SerdeError:
                    self.corrupt += 1
                    continue
                yield BagMessage(index, log_time, raw, message)
        except _STORAGE_ERRORS as error:
            raise BagError(f"{self.path}: unreadable after message {index + 1} of {self.topic}: {error}") from None


def open_bag(path: Path) -> Reader:
    """An open rosbags Reader (close it), or :class:`BagError` with the reason."""
    try:
        reader = Reader(path)
        reader.open()
    except FileNotFoundError:
        if path.is_dir():  # what an interrupted `ros2 bag record` leaves
            raise BagError(f"{path}: no metadata.yaml (rebuild it with `ros2 bag reindex`, or give the storage "
                           "file itself)") from None
        raise BagError(f"{path}: no such bag (a folder with metadata.yaml, or a .mcap/.db3 file)") from None
    except _STORAGE_ERRORS as error:
        raise BagError(f"{path}: not a readable rosbag2: {error}") from None
    return reader


def bag_topics(path: str | os.PathLike[str]) -> dict[str, tuple[str, int]]:
    """Every topic of a bag: name -> (message type, message count), sorted by name."""
    reader = open_bag(Path(path))
    try:
        return {name: (info.msgtype, info.msgcount) for name, info in sorted(reader.topics.items())}
    finally:
        reader.close()
