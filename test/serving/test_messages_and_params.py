from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from r2d2_ros.features import Features
from r2d2_ros.conversions.keypoints_message import DESCRIPTOR_ENCODINGS, decode_descriptors, encode_descriptors, features_to_message, message_to_arrays
from r2d2_ros.serving.params import PARAMETERS, defaults, spec, validate_update
from r2d2_ros.serving.stats import LatestFrameSlot, NodeStats
from r2d2_ros.tracking import Tracks

REPO = Path(__file__).resolve().parents[2]


def _features(n: int = 50, dim: int = 128) -> Features:
    generator = torch.Generator().manual_seed(0)
    descriptors = torch.nn.functional.normalize(torch.randn(n, dim, generator=generator), dim=1)
    keypoints = torch.rand(n, 3, generator=generator) * torch.tensor([160.0, 120.0, 64.0])
    scores = torch.sort(torch.rand(n, generator=generator), descending=True).values
    return Features(keypoints, descriptors, scores, (160, 120))


class TestDescriptorEncodings:
    @pytest.mark.parametrize(("name", "tolerance"), [("float32", 0.0), ("float16", 1e-3), ("uint8", 4e-3)])
    def test_round_trip(self, name: str, tolerance: float) -> None:
        descriptors = _features().descriptors.numpy()
        encoded = encode_descriptors(descriptors, DESCRIPTOR_ENCODINGS[name])
        assert encoded.data.dtype == np.uint8
        decoded = decode_descriptors(encoded.data.tobytes(), 50, 128, encoded.encoding, encoded.scale, encoded.offset)
        assert np.abs(decoded - descriptors).max() <= tolerance

    def test_wrong_byte_count(self) -> None:
        with pytest.raises(ValueError, match="descriptor values"):
            decode_descriptors(bytes(10), 2, 128, 0, 1.0, 0.0)


class TestMessageConversion:
    def test_features_to_message_and_back(self) -> None:
        features = _features()
        message = features_to_message(features, SimpleNamespace(), "net", DESCRIPTOR_ENCODINGS["float32"])
        assert (message.count, message.image_width, message.image_height, message.descriptor_dim) == (50, 160, 120, 128)
        arrays = message_to_arrays(message)
        np.testing.assert_array_equal(arrays["keypoints"], features.keypoints.numpy())
        np.testing.assert_array_equal(arrays["scores"], features.scores.numpy())
        np.testing.assert_array_equal(arrays["descriptors"], features.descriptors.numpy())

    def test_tracks_and_the_rectified_flag(self) -> None:
        features = _features(4)
        tracks = Tracks(np.array([7, 3, 12, 5], np.int64), np.array([1, 4, 2, 9], np.int32))
        message = features_to_message(features, SimpleNamespace(), "net", DESCRIPTOR_ENCODINGS["float32"], tracks, True)
        arrays = message_to_arrays(message)
        assert message.rectified is True
        assert arrays["track_ids"].tolist() == [7, 3, 12, 5] and arrays["track_lengths"].tolist() == [1, 4, 2, 9]
        untracked = features_to_message(features, SimpleNamespace(), "net", DESCRIPTOR_ENCODINGS["float32"])
        assert untracked.rectified is False
        assert message_to_arrays(untracked)["track_ids"].shape == (0,) == message_to_arrays(untracked)["track_lengths"].shape

    def test_empty_features(self) -> None:
        empty = Features(torch.zeros(0, 3), torch.zeros(0, 128), torch.zeros(0), (8, 8))
        message = features_to_message(empty, SimpleNamespace(), "net", DESCRIPTOR_ENCODINGS["uint8"])
        assert message.count == 0 and message_to_arrays(message)["descriptors"].shape == (0, 128)


class TestParameters:
    def test_defaults_are_valid(self) -> None:
        assert validate_update(defaults(), {}) is None

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"top_k": 0}, "top_k must be >= 1"),
            ({"precision": "int4"}, "precision must be one of"),
            ({"device": "gpu0"}, "device must be"),
            ({"reliability_threshold": "high"}, "must be a float"),
            ({"min_size": 2000, "max_size": 1000}, "min_size <= max_size"),
            ({"use_compressed": True}, "read-only"),
            ({"cameras": ["left", "right"]}, "read-only"),
            ({"sync_tolerance": -0.1}, "sync_tolerance must be >= 0"),
        ],
    )
    def test_rejects_with_reason(self, changes: dict, message: str) -> None:
        assert message in validate_update(defaults(), changes)

    def test_accepts_integer_for_float_and_ignores_foreign_parameters(self) -> None:
        assert validate_update(defaults(), {"min_scale": 0, "use_sim_time": True}) is None
        # A foreign parameter does not end the checks of those after it.
        assert "top_k must be >= 1" in validate_update(defaults(), {"use_sim_time": True, "top_k": 0})

    def test_every_default_passes_its_own_check(self) -> None:
        assert {p.name: p.check(p.default) for p in PARAMETERS} == {p.name: None for p in PARAMETERS}

    @pytest.mark.parametrize(("name", "accepted", "refused"), [
        ("device", ["auto", "cpu", "cuda", "cuda:1"], ["gpu", "cuda:", "cuda:x", " cpu"]),
        ("heatmap_colormap", ["turbo", "gray"], ["rainbow"]),
        ("descriptor_encoding", ["float32", "float16", "uint8"], ["float64"]),
        ("backend", ["torch", "onnxruntime"], ["tensorflow"]),
    ])
    def test_string_choices(self, name: str, accepted: list, refused: list) -> None:
        assert [spec(name).check(value) for value in accepted] == [None] * len(accepted)
        assert all(spec(name).check(value) for value in refused)

    @pytest.mark.parametrize(("cameras", "message"), [(["left", "left"], "must not repeat"),
                                                      (["left", "/right"], "relative topic namespaces"),
                                                      (["left", ""], "relative topic namespaces"),
                                                      (["left", 3], "relative topic namespaces")])
    def test_camera_lists_are_checked(self, cameras: list, message: str) -> None:
        assert message in spec("cameras").check(cameras)
        assert spec("cameras").check(["left", "stereo/right"]) is None

    def test_defaults_are_those_of_the_shipped_parameters_file(self) -> None:
        """config/r2d2.yaml is what users start from: the node's own defaults must say the same."""
        text = (REPO / "config" / "r2d2.yaml").read_text()
        shipped = yaml.safe_load(text)["/**"]["ros__parameters"]
        shipped.pop("qos_overrides", None)
        for name, value in shipped.items():
            assert spec(name).default == pytest.approx(value), name
        # rcl's YAML parser cannot read an empty list: the one default left out is shown commented.
        assert set(defaults()) - set(shipped) == {"cameras"} and "# cameras: [left, right]" in text

    @pytest.mark.parametrize(("name", "accepted", "refused"), [
        ("reliability_threshold", [0.0, 1.0], [-0.01, 1.01]),  # probabilities
        ("repeatability_threshold", [0.0, 1.0], [-0.01, 1.01]),
        ("scale_f", [1.01, 2.0], [1.0, 0.5]),  # 1 would never shrink the image: an endless pyramid
        ("min_scale", [0.0, 1.0], [-0.1, 1.1]),  # a fraction of the input, up to the input itself
        ("max_scale", [0.0, 1.0, 2.0], [-0.1]),  # above 1 upsamples, which is allowed
        ("top_k", [1], [0]),
        ("min_size", [0], [-1]),
        ("max_size", [0], [-1]),
        ("overlay_max_keypoints", [0], [-1]),  # 0 draws the frame only
        ("significant_bits", [1, 12, 16], [0, 17]),  # of 16-bit pixels
        ("track_max_distance", [0.05, 2.0], [0.0, 2.01]),  # unit vectors are at most 2 apart
        ("track_ransac_px", [0.1, 20.0], [0.0]),
        ("track_max_points", [0, 1], [-1]),  # 0 keeps every detection
        ("track_guided_radius", [0.0, 200.0], [-1.0, 201.0]),  # 0 = no guided search; wider is no prediction
        ("sync_tolerance", [0.0, 0.5], [-0.001]),  # 0 = identical stamps
        ("shutdown_timeout", [0.0], [-1.0]),  # 0 = do not wait for the frame in progress
        ("hang_timeout", [0.0, 1.0, 300.0], [-1.0, 0.5]),  # 0 = never; below 1 s ordinary frames would count
        ("stale_timeout", [0.1], [0.0]),
        ("diagnostics_period", [0.1], [0.0]),
    ])
    def test_ranges_follow_what_each_value_means(self, name: str, accepted: list, refused: list) -> None:
        for value in accepted:
            assert spec(name).check(value) is None, (name, value)
        for value in refused:
            assert spec(name).check(value) is not None, (name, value)

    @pytest.mark.parametrize(("name", "value"), [("diagnostics_period", 2.0), ("use_compressed", True),
                                                 ("cameras", ["a", "b"]), ("engine_cache", "/var/lib/engines")])
    def test_what_is_fixed_at_start_up_is_read_only(self, name: str, value: object) -> None:
        assert spec(name).read_only and "read-only" in validate_update(defaults(), {name: value})

    def test_everything_else_changes_at_runtime(self) -> None:
        assert {p.name for p in PARAMETERS if p.read_only} == {"diagnostics_period", "use_compressed", "cameras",
                                                                       "engine_cache"}

    def test_every_parameter_is_documented(self) -> None:
        assert all(spec.description for spec in PARAMETERS)


class TestLatestFrameSlot:
    def test_newer_frame_replaces_pending_one(self) -> None:
        slot: LatestFrameSlot[int] = LatestFrameSlot()
        assert slot.put(1) is False
        assert slot.put(2) is True
        assert slot.take(timeout=0) == 2
        assert slot.take(timeout=0) is None

    def test_close_wakes_a_waiting_consumer(self) -> None:
        slot: LatestFrameSlot[int] = LatestFrameSlot()
        result = []
        # A daemon: a take that close() does not wake fails the test instead of hanging pytest's exit.
        consumer = threading.Thread(target=lambda: result.append(slot.take()), daemon=True)
        consumer.start()
        slot.close()
        consumer.join(timeout=2)
        assert result == [None]


def test_stats_count_drops_by_cause() -> None:
    now = [100.0]
    stats = NodeStats(window_s=10, clock=lambda: now[0])
    arrivals = [stats.set_received() for _ in range(3)]
    now[0] += 0.02
    stats.set_published(arrivals[0])
    stats.set_dropped("size", arrivals[1])
    stats.set_superseded()
    snapshot = stats.snapshot()
    assert (snapshot.received, snapshot.published) == (3, 1)
    assert snapshot.dropped == {"size": 1, "superseded": 1}
    assert snapshot.latency_max_ms == pytest.approx(20.0)


def test_descriptor_encodings_are_the_message_constants() -> None:
    """The node's names map to the ENCODING_* values of msg/Keypoints.msg (read without rclpy)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "msg" / "Keypoints.msg").read_text()
    constants = {name.lower(): int(value) for name, value in re.findall(r"uint8 ENCODING_(\w+)=(\d+)", text)}
    assert DESCRIPTOR_ENCODINGS == constants == {"float32": 0, "float16": 1, "uint8": 2}


def test_unknown_descriptor_encoding_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"^unknown descriptor encoding 7; use one of \[0, 1, 2\]$"):
        encode_descriptors(np.zeros((1, 4), np.float32), 7)
    with pytest.raises(ValueError, match=r"^unknown descriptor encoding 7$"):
        decode_descriptors(bytes(4), 1, 4, 7, 1.0, 0.0)


def test_uint8_maps_the_largest_magnitude_onto_0_and_255_exactly() -> None:
    half = _features().descriptors.numpy()
    descriptors = np.vstack([half, -half])  # -m and m both present
    magnitude = float(np.abs(descriptors).max())
    encoded = encode_descriptors(descriptors, DESCRIPTOR_ENCODINGS["uint8"])
    assert (encoded.data.min(), encoded.data.max()) == (0, 255)
    assert encoded.scale == pytest.approx(2 * magnitude / 255) and encoded.offset == pytest.approx(-magnitude)
    decoded = decode_descriptors(encoded.data.tobytes(), 100, 128, encoded.encoding, encoded.scale, encoded.offset)
    extremes = np.unravel_index(np.argmax(descriptors), descriptors.shape), np.unravel_index(np.argmin(descriptors),
                                                                                             descriptors.shape)
    np.testing.assert_allclose([decoded[extremes[0]], decoded[extremes[1]]],
                               [descriptors[extremes[0]], descriptors[extremes[1]]], atol=1e-6)


@pytest.mark.parametrize("name", ["float32", "float16"])
def test_float_encodings_dequantise_as_identity(name: str) -> None:
    """A consumer may apply value = scale * q + offset whatever the encoding."""
    encoded = encode_descriptors(np.ones((2, 4), np.float32), DESCRIPTOR_ENCODINGS[name])
    assert (encoded.scale, encoded.offset) == (1.0, 0.0)


def test_uint8_message_carries_scale_offset_and_model_name() -> None:
    features = _features()
    message = features_to_message(features, SimpleNamespace(), "my_model", DESCRIPTOR_ENCODINGS["uint8"])
    encoded = encode_descriptors(features.descriptors, DESCRIPTOR_ENCODINGS["uint8"])
    assert (message.descriptor_scale, message.descriptor_offset) == (encoded.scale, encoded.offset)
    assert message.model_name == "my_model" and message.descriptor_encoding == 2
    np.testing.assert_allclose(message_to_arrays(message)["descriptors"], features.descriptors.numpy(), atol=4e-3)


def test_descriptor_byte_count_error_says_what_was_expected() -> None:
    with pytest.raises(ValueError, match=r"^10 bytes of descriptor values for 2 keypoints of dimension 128, "
                                         r"expected 1024$"):
        decode_descriptors(bytes(10), 2, 128, 0, 1.0, 0.0)
