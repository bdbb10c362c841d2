"""Feature bags: one r2d2_ros/msg/Keypoints per camera frame, written resumably and read back as Features.

A feature bag is an ordinary rosbag2 (``ros2 bag play`` publishes it) made of several storage files,
as a split recording is. The writer finishes a storage file every ``chunk_frames`` messages: it
closes the file, moves it into the bag and then atomically replaces ``metadata.yaml`` with one that
lists it. The bag on disk is therefore always valid and holds every finished file; an interrupted
run loses at most the file it was writing, and a rerun with the same settings appends new files
from the input position recorded in the metadata (``custom_data``), next to the extraction settings.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any

import numpy as np
import torch
import yaml
from rosbags.rosbag2 import Writer

from ..features import Features
from ..conversions.keypoints_message import features_to_message, message_to_arrays
from .store import KEYPOINTS, STORAGES, BagError, TopicReader, typestore

__all__ = ["FeatureBagWriter", "FeatureBag", "keypoints_message", "feature_bag_settings"]

SETTINGS_KEY = "r2d2_ros.settings"  # JSON: what produced the features (input, model, extraction)
FRAMES_READ_KEY = "r2d2_ros.frames_read"  # input messages consumed: where a rerun continues
# Keypoints fields that features_to_message fills with array.array, and their numpy types for rosbags.
_ARRAY_FIELDS = {"x": np.float32, "y": np.float32, "scale": np.float32, "score": np.float32, "descriptors": np.uint8,
                 "track_ids": np.int64, "track_lengths": np.uint32}


def keypoints_message(features: Features, header: Any, model_name: str, encoding: int) -> Any:
    """A rosbags r2d2_ros/msg/Keypoints of ``features``, filled as the node fills its messages (one camera:
    the set stamp is the image's own)."""
    fields = vars(features_to_message(features, SimpleNamespace(), model_name, encoding))
    fields.update({name: np.frombuffer(fields[name], dtype) for name, dtype in _ARRAY_FIELDS.items()})
    return typestore().types[KEYPOINTS](header=header, set_stamp=header.stamp, **fields)


def _read_metadata(bag: Path) -> dict[str, Any]:
    """The ``rosbag2_bagfile_information`` of a bag folder."""
    try:
        return yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise BagError(f"{bag}: unreadable metadata.yaml ({error})") from None


def feature_bag_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What r2d2-extract recorded in a feature bag's metadata (input, model, extraction); {} for other bags."""
    path = Path(path)
    if not path.is_dir():
        return {}  # a bare storage file has no metadata.yaml
    custom = _read_metadata(path).get("custom_data") or {}
    return json.loads(custom[SETTINGS_KEY]) if SETTINGS_KEY in custom else {}


def _merge(bag: dict[str, Any], chunk: dict[str, Any]) -> dict[str, Any]:
    """Bag metadata with one more storage file (a finished chunk) in it."""
    merged = {**bag, "relative_file_paths": bag["relative_file_paths"] + chunk["relative_file_paths"],
              "files": bag["files"] + chunk["files"], "message_count": bag["message_count"] + chunk["message_count"]}
    timed = [part for part in (bag, chunk) if part["message_count"]]  # empty parts have no start time
    if timed:
        start = min(part["starting_time"]["nanoseconds_since_epoch"] for part in timed)
        end = max(part["starting_time"]["nanoseconds_since_epoch"] + part["duration"]["nanoseconds"] for part in timed)
        merged["starting_time"] = {"nanoseconds_since_epoch": start}
        merged["duration"] = {"nanoseconds": end - start}
    topics = {entry["topic_metadata"]["name"]: dict(entry) for entry in bag["topics_with_message_count"]}
    for entry in chunk["topics_with_message_count"]:
        name = entry["topic_metadata"]["name"]
        if name in topics:
            topics[name]["message_count"] += entry["message_count"]
        else:
            topics[name] = dict(entry)
    merged["topics_with_message_count"] = list(topics.values())
    return merged


class FeatureBagWriter:
    """Writes Keypoints messages into a feature bag, resuming one that the same settings started.

    Args:
        path: the bag folder. When it exists it must be a feature bag written with the same
            settings and storage: writing continues after its last finished file.
        topic: the Keypoints topic.
        settings: JSON-able description of what produces the features, stored in the metadata.
        storage: ``mcap`` or ``sqlite3``.
        chunk_frames: messages per storage file (each finished file is a point to resume from).

    Raises:
        BagError: ``path`` is something else, or was written with other settings or storage.
    """

    def __init__(self, path: str | os.PathLike[str], topic: str, settings: dict[str, Any], *, storage: str = "mcap",
                 chunk_frames: int = 100) -> None:
        if storage not in STORAGES:
            raise BagError(f"unknown storage {storage!r}; use one of {', '.join(STORAGES)}")
        if chunk_frames < 1:
            raise BagError(f"chunk_frames must be at least 1, got {chunk_frames}")
        self.path = Path(path)
        self.topic = topic
        self._settings = json.dumps({**settings, "storage": storage, "topic": topic}, sort_keys=True)
        self._storage = storage
        self._chunk_frames = chunk_frames
        self._staging = self.path.parent / f".{self.path.name}.chunk"
        shutil.rmtree(self._staging, ignore_errors=True)  # the unfinished file of an interrupted run
        self._metadata = self._resumed_metadata()
        custom = (self._metadata or {}).get("custom_data") or {}
        self.frames_read = int(custom.get(FRAMES_READ_KEY, 0))
        self.written = self._metadata["message_count"] if self._metadata else 0
        self._writer: Writer | None = None
        self._connection: Any = None

    def _resumed_metadata(self) -> dict[str, Any] | None:
        """The metadata of the bag being continued, None for a new bag."""
        if not self.path.exists():
            return None
        if not (self.path / "metadata.yaml").is_file():
            raise BagError(f"{self.path} exists and is not a feature bag; give a new output path")
        metadata = _read_metadata(self.path)
        recorded = (metadata.get("custom_data") or {}).get(SETTINGS_KEY)
        if recorded is None:
            raise BagError(f"{self.path} exists and was not written by r2d2-extract; give a new output path")
        if recorded != self._settings:
            raise BagError(f"{self.path} was written with other settings ({recorded}); delete it to start over or "
                           "give a new output path")
        return metadata

    def __enter__(self) -> FeatureBagWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def write(self, message: Any, log_time_ns: int, frames_read: int) -> None:
        """Adds one Keypoints message (see :func:`keypoints_message`) at receive time ``log_time_ns``.

        ``frames_read``: the input messages consumed, this frame's included.
        """
        if self._writer is None:
            self._open_chunk()
        self._writer.write(self._connection, log_time_ns, typestore().serialize_cdr(message, KEYPOINTS))
        self.frames_read = frames_read
        self.written += 1
        if self._writer.counts[self._connection.id] >= self._chunk_frames:
            self._commit()

    def close(self, frames_read: int | None = None) -> None:
        """Finishes the file being written and the metadata; ``frames_read``: the final input position."""
        if frames_read is not None:
            self.frames_read = frames_read
        if self._writer is not None or self._metadata is None:
            self._commit()  # a bag that got no message yet still becomes a valid, empty one
        else:
            self._write_metadata()

    def _open_chunk(self) -> None:
        index = len(self._metadata["relative_file_paths"]) if self._metadata else 0
        self._staging.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self._staging / f"{self.path.name}_{index}", version=Writer.VERSION_LATEST,
                              storage_plugin=STORAGES[self._storage])
        self._writer.open()
        self._connection = self._writer.add_connection(self.topic, KEYPOINTS, typestore=typestore())

    def _commit(self) -> None:
        """Closes the current file, moves it into the bag, then lists it in metadata.yaml."""
        if self._writer is None:
            self._open_chunk()
        self._writer.close()
        chunk_folder, self._writer = self._writer.path, None
        chunk = _read_metadata(chunk_folder)
        self.path.mkdir(parents=True, exist_ok=True)
        for name in chunk["relative_file_paths"]:
            os.replace(chunk_folder / name, self.path / name)
        shutil.rmtree(self._staging)
        self._metadata = chunk if self._metadata is None else _merge(self._metadata, chunk)
        self._write_metadata()

    def _write_metadata(self) -> None:
        self._metadata["custom_data"] = {SETTINGS_KEY: self._settings, FRAMES_READ_KEY: str(self.frames_read)}
        temporary = self.path / "metadata.yaml.tmp"
        temporary.write_text(yaml.safe_dump({"rosbag2_bagfile_information": self._metadata}, sort_keys=False))
        os.replace(temporary, self.path / "metadata.yaml")


class FeatureBag:
    """A feature bag read back: ``(header, features)`` per Keypoints message, in recorded order.

    ``header`` is the image's std_msgs/Header (``header.stamp.sec``, ``.nanosec``, ``.frame_id``).
    Messages that do not deserialise or whose arrays disagree with ``count`` are skipped and counted
    in :attr:`corrupt`. Use as a context manager.

    Raises:
        BagError: the bag cannot be read, or has no (or several, with no ``topic``) Keypoints topics.
    """

    def __init__(self, path: str | os.PathLike[str], topic: str | None = None) -> None:
        self._topic = TopicReader(path, topic, (KEYPOINTS,))
        self._invalid = 0
        self.settings = feature_bag_settings(path)
        self.count = self._topic.count

    @property
    def corrupt(self) -> int:
        return self._topic.corrupt + self._invalid

    def __enter__(self) -> FeatureBag:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._topic.close()

    def __iter__(self) -> Iterator[tuple[Any, Features]]:
        for item in self._topic.messages():
            message = item.message
            try:
                arrays = message_to_arrays(message)
                features = Features(torch.from_numpy(arrays["keypoints"]), torch.from_numpy(arrays["descriptors"]),
                                    torch.from_numpy(arrays["scores"]), (message.image_width, message.image_height))
            except ValueError:
                self._invalid += 1
                continue
            yield message.header, features
