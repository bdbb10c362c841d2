"""Camera topics in bags: listing them, decoding their frames, and recording a sequence folder as a bag."""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
from rosbags.rosbag2 import Writer, WriterError

from ..image_io import read_rgb
from ..conversions.image_codec import decode_message
from ..sequences import Sequence
from .store import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, STORAGES, BagError, bag_topics, typestore

__all__ = ["IMAGE_TYPES", "image_topics", "camera_info_topic", "decode_frame", "raw_image_layout",
           "write_sequence_bag"]

IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)


def image_topics(path: str | os.PathLike[str]) -> dict[str, tuple[str, int]]:
    """The bag's Image and CompressedImage topics: name -> (message type, message count)."""
    return {name: info for name, info in bag_topics(path).items() if info[0] in IMAGE_TYPES}


def camera_info_topic(image_topic: str) -> str:
    """The CameraInfo topic that goes with an image topic, as image_transport names it.

    ``/cam/image_raw`` and ``/cam/image_raw/compressed`` both go with ``/cam/camera_info``.
    """
    base = PurePosixPath(image_topic.removesuffix("/compressed"))
    return str(base.parent / "camera_info")


def decode_frame(message: Any, msgtype: str) -> np.ndarray:
    """A deserialised Image or CompressedImage as the node decodes it (raises ImageDecodeError)."""
    return decode_message(message, msgtype == COMPRESSED_IMAGE)


def raw_image_layout(rgb: np.ndarray) -> tuple[np.ndarray, str]:
    """Contiguous pixels and their sensor_msgs encoding: mono8 when all channels are equal, else rgb8."""
    grey = bool(np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 1], rgb[:, :, 2]))
    return np.ascontiguousarray(rgb[:, :, 0] if grey else rgb), "mono8" if grey else "rgb8"


def _header(time_ns: int, frame_id: str) -> Any:
    types = typestore().types
    stamp = types["builtin_interfaces/msg/Time"](sec=time_ns // 1_000_000_000, nanosec=time_ns % 1_000_000_000)
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def _image_message(rgb: np.ndarray, header: Any, compressed: bool) -> Any:
    """An Image, or a lossless (PNG) CompressedImage, of an RGB frame."""
    types = typestore().types
    pixels, encoding = raw_image_layout(rgb)
    if compressed:
        ok, png = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 else pixels)
        assert ok, "OpenCV encodes any uint8 image as PNG"
        return types[COMPRESSED_IMAGE](header=header, format=f"{encoding}; png compressed {encoding}",
                                       data=png.reshape(-1))
    return types[IMAGE](header=header, height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                        is_bigendian=0, step=pixels.strides[0], data=pixels.reshape(-1))


def _camera_info_message(fields: dict[str, Any], width: int, height: int, header: Any) -> Any:
    types = typestore().types
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    arrays = {name: np.array(fields[name], np.float64) for name in ("d", "k", "r", "p")}
    return types[CAMERA_INFO](header=header, height=height, width=width, distortion_model=fields["distortion_model"],
                              binning_x=0, binning_y=0, roi=roi, **arrays)


def write_sequence_bag(sequence: Sequence, path: str | os.PathLike[str], topic: str = "/camera/image_raw", *,
                       storage: str = "mcap", compressed: bool = False, size: tuple[int, int] | None = None,
                       count: int | None = None, frame_id: str = "camera_optical_frame") -> int:
    """Records a sequence folder as a camera bag: each frame stamped (header and receive time) with its time.

    Args:
        topic: the image topic; ``<topic>/compressed`` when ``compressed`` (PNG, lossless). CameraInfo
            goes on :func:`camera_info_topic` when the sequence has a calibration.
        storage: ``mcap`` or ``sqlite3``.
        size: (width, height) to resize frames (and the calibration) to.
        count: record only the first ``count`` frames.

    Returns:
        The number of frames written.

    Raises:
        BagError: ``path`` exists already, or an unknown storage.
    """
    if storage not in STORAGES:
        raise BagError(f"unknown storage {storage!r}; use one of {', '.join(STORAGES)}")
    store = typestore()
    image_type = COMPRESSED_IMAGE if compressed else IMAGE
    image_topic = f"{topic}/compressed" if compressed else topic
    frames = list(zip(sequence.frames, sequence.times_ns()))[:count]
    try:
        writer = Writer(Path(path), version=Writer.VERSION_LATEST, storage_plugin=STORAGES[storage])
    except WriterError as error:
        raise BagError(str(error)) from None
    with writer:
        images = writer.add_connection(image_topic, image_type, typestore=store)
        infos = writer.add_connection(camera_info_topic(topic), CAMERA_INFO, typestore=store) \
            if sequence.calibration is not None else None
        for frame, time_ns in frames:
            rgb = read_rgb(frame)
            if size is not None:
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            header = _header(time_ns, frame_id)
            writer.write(images, time_ns, store.serialize_cdr(_image_message(rgb, header, compressed), image_type))
            if infos is not None:
                height, width = rgb.shape[:2]
                fields = sequence.calibration.resized(width, height).camera_info_fields()
                info = _camera_info_message(fields, width, height, header)
                writer.write(infos, time_ns, store.serialize_cdr(info, CAMERA_INFO))
    return len(frames)
