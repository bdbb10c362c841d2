"""Features <-> r2d2_ros/Keypoints messages, and the descriptor encodings (no rclpy needed).

The message keeps every per-keypoint field as a flat array so that filling one is a few
``memcpy``s: numpy arrays are copied into ``array.array`` buffers with ``frombytes``.
"""
from __future__ import annotations

import array
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..features import Features
from ..tracking import Tracks

__all__ = ["DESCRIPTOR_ENCODINGS", "EncodedDescriptors", "encode_descriptors", "decode_descriptors",
           "features_to_message", "message_to_arrays"]

# Names used by the node parameter -> Keypoints.ENCODING_* values.
DESCRIPTOR_ENCODINGS = {"float32": 0, "float16": 1, "uint8": 2}
_DTYPES = {0: np.dtype("<f4"), 1: np.dtype("<f2"), 2: np.dtype(np.uint8)}


@dataclass(frozen=True)
class EncodedDescriptors:
    """Descriptor bytes plus what a consumer needs to decode them."""

    data: np.ndarray  # (N * D * bytes per value,) uint8
    encoding: int
    scale: float
    offset: float


def encode_descriptors(descriptors: torch.Tensor | np.ndarray, encoding: int) -> EncodedDescriptors:
    """Encodes (N, D) descriptors as little-endian float32, float16, or uint8 with a per-message scale.

    The conversion runs where the tensor lives (the GPU, for the node), before the copy to host.
    uint8 maps [-m, m] (m = largest magnitude in the message) linearly onto 0..255:
    value = scale * q + offset.
    """
    if encoding not in _DTYPES:
        raise ValueError(f"unknown descriptor encoding {encoding}; use one of {sorted(_DTYPES)}")
    values = torch.as_tensor(descriptors)
    if encoding != DESCRIPTOR_ENCODINGS["uint8"]:
        cast = values.half() if encoding == DESCRIPTOR_ENCODINGS["float16"] else values.float()
        host = cast.cpu().numpy().astype(_DTYPES[encoding], copy=False)  # byte order: a no-op on x86 and ARM
        return EncodedDescriptors(host.reshape(-1).view(np.uint8), encoding, 1.0, 0.0)
    values = values.float()
    magnitude = max(float(values.abs().max()) if values.numel() else 0.0, 1e-6)
    scale = 2.0 * magnitude / 255.0
    quantised = ((values + magnitude) / scale).round_().clamp_(0, 255).to(torch.uint8)
    return EncodedDescriptors(quantised.cpu().numpy().reshape(-1), encoding, scale, -magnitude)


def decode_descriptors(data: Any, count: int, dim: int, encoding: int, scale: float, offset: float) -> np.ndarray:
    """Inverse of :func:`encode_descriptors`: bytes -> (count, dim) float32.

    Raises:
        ValueError: unknown encoding, or a byte count that does not match count x dim.
    """
    if encoding not in _DTYPES:
        raise ValueError(f"unknown descriptor encoding {encoding}")
    raw = np.frombuffer(data, dtype=np.uint8)
    expected_bytes = count * dim * _DTYPES[encoding].itemsize
    if raw.size != expected_bytes:
        raise ValueError(f"{raw.size} bytes of descriptor values for {count} keypoints of dimension {dim}, "
                         f"expected {expected_bytes}")
    values = raw.view(_DTYPES[encoding])
    values = values.reshape(count, dim).astype(np.float32)
    return values * np.float32(scale) + np.float32(offset) if encoding == DESCRIPTOR_ENCODINGS["uint8"] else values


def _float_array(values: np.ndarray) -> array.array:
    buffer = array.array("f")
    buffer.frombytes(np.ascontiguousarray(values, dtype="<f4").tobytes())
    return buffer


def features_to_message(features: Features, message: Any, model_name: str, encoding: int,
                        tracks: Tracks | None = None, rectified: bool = False) -> Any:
    """Fills a Keypoints message (its header is left to the caller) from features, best first.

    Args:
        tracks: the keypoints' tracks, when tracking is on.
        rectified: whether the keypoints' x, y are rectified pixel coordinates.
    """
    keypoints = features.keypoints.float().cpu().numpy()
    encoded = encode_descriptors(features.descriptors, encoding)
    message.image_width, message.image_height = (int(v) for v in features.image_size)
    message.count = len(keypoints)
    message.x = _float_array(keypoints[:, 0])
    message.y = _float_array(keypoints[:, 1])
    message.scale = _float_array(keypoints[:, 2])
    message.score = _float_array(features.scores.float().cpu().numpy())
    message.descriptor_dim = int(features.descriptors.shape[1])
    message.descriptor_encoding = encoded.encoding
    message.descriptor_scale = encoded.scale
    message.descriptor_offset = encoded.offset
    descriptor_bytes = array.array("B")
    descriptor_bytes.frombytes(encoded.data.tobytes())
    message.descriptors = descriptor_bytes
    message.model_name = model_name
    message.rectified = rectified
    ids, lengths = (tracks.ids, tracks.lengths) if tracks is not None else (np.zeros(0), np.zeros(0))
    message.track_ids = array.array("q", np.ascontiguousarray(ids, "<i8").tobytes())
    message.track_lengths = array.array("I", np.ascontiguousarray(lengths, "<u4").tobytes())
    return message


def message_to_arrays(message: Any) -> dict[str, np.ndarray]:
    """A Keypoints message as numpy: keypoints (N, 3) x, y, scale; scores (N,); descriptors (N, D) float32;
    track_ids (N,) int64 and track_lengths (N,) uint32 (empty when tracking is off)."""
    count = message.count
    keypoints = np.stack(
        [np.frombuffer(message.x, np.float32), np.frombuffer(message.y, np.float32),
         np.frombuffer(message.scale, np.float32)], axis=1
    ).reshape(count, 3)
    descriptors = decode_descriptors(
        message.descriptors, count, message.descriptor_dim, message.descriptor_encoding,
        message.descriptor_scale, message.descriptor_offset,
    )
    return {"keypoints": keypoints, "scores": np.frombuffer(message.score, np.float32).copy(), "descriptors": descriptors,
            "track_ids": np.asarray(message.track_ids, np.int64), "track_lengths": np.asarray(message.track_lengths, np.uint32)}
