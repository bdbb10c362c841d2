"""r2d2_node in its own process, driven over real DDS."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from r2d2_ros.extraction import ExtractionConfig
from r2d2_ros.msg import Keypoints
from r2d2_ros.ros.node import EXIT_CONFIGURATION_ERROR
from r2d2_ros.conversions.image_codec import decode_image
from r2d2_ros.conversions.keypoints_message import message_to_arrays
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from ..conversions.test_image_codec import png_claiming_pixels
from ..serving.test_inference import write_oversized_checkpoint
from .client import (COLOUR, EQUIVALENT, EQUIVALENT_COLOUR, GREY, HEIGHT, RGB, WIDTH, Client, image_message, level,
                     value)
from .conftest import FAST_PARAMETERS, NodeProcess, spin_until


@pytest.fixture(scope="module")
def node_process(random_checkpoint: Path) -> Iterator[NodeProcess]:
    process = NodeProcess({**FAST_PARAMETERS, "model": random_checkpoint, "diagnostics_period": 0.2})
    process.wait_ready()
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture
def client(node_process: NodeProcess, test_node: Node) -> Client:
    client = Client(test_node)
    assert spin_until(test_node, lambda: client.image_pub.get_subscription_count() > 0, 20)
    return client


class TestOutputs:
    def test_header_passes_through_and_top_k_holds(self, client: Client) -> None:
        keypoints = client.send(image_message("mono8", GREY, stamp=11, frame_id="front_camera_optical"))
        assert keypoints is not None
        assert keypoints.header.frame_id == "front_camera_optical" and keypoints.header.stamp.sec == 11
        assert 0 < keypoints.count <= FAST_PARAMETERS["top_k"]
        assert (keypoints.image_width, keypoints.image_height) == (WIDTH, HEIGHT)
        arrays = message_to_arrays(keypoints)
        assert arrays["descriptors"].shape == (keypoints.count, 128)
        assert np.allclose(np.linalg.norm(arrays["descriptors"], axis=1), 1, atol=1e-4)
        assert np.all(np.diff(arrays["scores"]) <= 0)
        assert keypoints.model_name == "random_n16"

    def test_heatmaps_and_overlay_have_the_image_size_and_header(self, client: Client) -> None:
        def pictures_of(stamp: int) -> dict[str, Image]:
            return {topic: image for topic, images in client.heatmaps.items() for image in images
                    if image.header.stamp.sec == stamp}

        # The node draws only while subscribed: frames go on until it has seen the subscriptions.
        stamp, deadline = 12, time.monotonic() + 30
        while len(pictures_of(stamp)) < len(client.heatmaps):
            assert time.monotonic() < deadline, f"no heatmaps or overlay for frames 12..{stamp}"
            stamp += 1
            assert client.send(image_message("mono8", GREY, stamp=stamp)) is not None
            spin_until(client.node, lambda: len(pictures_of(stamp)) == len(client.heatmaps), 2.0)
        for topic, image in pictures_of(stamp).items():
            assert (image.height, image.width, image.encoding) == (HEIGHT, WIDTH, "rgb8"), topic
            assert image.header.frame_id == "camera_optical_frame"

    @staticmethod
    def _keypoints_per_encoding(client: Client, messages: dict[str, Image], first_stamp: int) -> dict[str, np.ndarray]:
        results = {}
        for stamp, (encoding, message) in enumerate(messages.items(), start=first_stamp):
            message.header.stamp.sec = stamp
            keypoints = client.send(message)
            assert keypoints is not None, f"{encoding}: no keypoints"
            results[encoding] = message_to_arrays(keypoints)["keypoints"]
        return results

    def test_equivalent_encodings_give_identical_keypoints(self, client: Client) -> None:
        results = self._keypoints_per_encoding(client, EQUIVALENT, 100)
        for encoding, keypoints in results.items():
            np.testing.assert_allclose(keypoints, results["mono8"], atol=1e-4, err_msg=encoding)

    def test_colour_encodings_give_identical_keypoints_and_colour_order_matters(self, client: Client) -> None:
        results = self._keypoints_per_encoding(client, EQUIVALENT_COLOUR, 120)
        for encoding, keypoints in results.items():
            np.testing.assert_allclose(keypoints, results["rgb8"], atol=1e-4, err_msg=encoding)
        # Red and blue swapped is another picture to the network: a swap in the node would show.
        swapped = message_to_arrays(client.send(image_message("rgb8", COLOUR[:, :, ::-1], stamp=130)))["keypoints"]
        assert swapped.shape != results["rgb8"].shape or not np.allclose(swapped, results["rgb8"], atol=1e-4)

    @pytest.mark.parametrize(("encoding", "other"), [("bayer_rggb8", "bayer_bggr8"), ("bayer_bggr8", "bayer_gbrg8"),
                                                     ("bayer_gbrg8", "bayer_grbg8"), ("bayer_grbg8", "bayer_rggb8")])
    def test_bayer_frames_give_the_keypoints_of_their_colour_picture(self, client: Client, encoding: str,
                                                                      other: str) -> None:
        self._check_decoded(client, encoding, other, COLOUR[:, :, 0] // 2 + COLOUR[:, :, 2] // 2, 200)

    @pytest.mark.parametrize(("encoding", "other"), [("yuv422", "yuyv"), ("yuv422_yuy2", "uyvy"), ("uyvy", "yuyv"),
                                                     ("yuyv", "uyvy")])
    def test_yuv_frames_give_the_keypoints_of_their_colour_picture(self, client: Client, encoding: str,
                                                                    other: str) -> None:
        packed = np.empty((HEIGHT, WIDTH * 2), np.uint8)
        packed[:, 0::2] = np.clip(COLOUR[:, :, 2].astype(int) // 2 + 64, 0, 255)  # chroma or luma, by layout
        packed[:, 1::2] = GREY
        self._check_decoded(client, encoding, other, packed, 210)

    @staticmethod
    def _check_decoded(client: Client, encoding: str, other: str, raw: np.ndarray, stamp: int) -> None:
        """The frame's keypoints are those of the rgb8 picture its layout decodes to, not another layout's."""
        def rgb_keypoints(layout: str, stamp: int) -> np.ndarray:
            picture = decode_image(layout, HEIGHT, WIDTH, raw.shape[1], raw.tobytes())
            return message_to_arrays(client.send(image_message("rgb8", picture, stamp=stamp)))["keypoints"]

        keypoints = client.send(image_message(encoding, raw, stamp=stamp))
        assert keypoints is not None
        received = message_to_arrays(keypoints)["keypoints"]
        np.testing.assert_allclose(received, rgb_keypoints(encoding, stamp + 1), atol=1e-4)
        wrong = rgb_keypoints(other, stamp + 2)
        assert wrong.shape != received.shape or not np.allclose(wrong, received, atol=1e-4), "layouts look alike"

    def test_padded_rows_are_handled(self, client: Client) -> None:
        padded = np.hstack([GREY, np.full((HEIGHT, 32), 255, np.uint8)])
        with_padding = client.send(image_message("mono8", padded, step=WIDTH + 32, stamp=202))
        without = client.send(image_message("mono8", GREY, stamp=203))
        np.testing.assert_allclose(message_to_arrays(with_padding)["keypoints"],
                                   message_to_arrays(without)["keypoints"])


class TestBadInput:
    @pytest.mark.parametrize(
        ("message", "cause"),
        [
            (image_message("rgb16", RGB, stamp=300), "encoding"),
            (image_message("mono8", GREY, step=WIDTH - 1, stamp=301, data=GREY.tobytes()), "size"),
            (image_message("mono8", GREY, step=WIDTH, stamp=302, data=GREY.tobytes()[:-100]), "size"),
            (image_message("mono8", GREY, step=0, stamp=303, data=b"", height=0, width=0), "size"),
            # OpenCV raises on odd-width YUV 4:2:2: this once killed the worker for good.
            (image_message("yuv422", GREY[:, 1:], stamp=304, data=bytes(HEIGHT * 2 * (WIDTH - 1)),
                           width=WIDTH - 1), "size"),
            (image_message("yuyv", GREY[:, 1:], stamp=305, data=bytes(HEIGHT * 2 * (WIDTH - 1)),
                           width=WIDTH - 1), "size"),
        ],
    )
    def test_dropped_counted_and_node_keeps_serving(self, client: Client, message: Image, cause: str) -> None:
        client.send_bad(message, "/r2d2_node", cause)
        assert client.send(image_message("mono8", GREY, stamp=message.header.stamp.sec + 50)) is not None


class TestParameters:
    def test_update_applies_without_restart(self, client: Client) -> None:
        assert client.set_parameters("/r2d2_node/set_parameters", top_k=7) == [(True, "")]
        try:
            keypoints = client.send(image_message("mono8", GREY, stamp=400))
            assert keypoints.count == 7
        finally:
            client.set_parameters("/r2d2_node/set_parameters", top_k=FAST_PARAMETERS["top_k"])

    def test_descriptor_encoding_update(self, client: Client) -> None:
        assert client.set_parameters("/r2d2_node/set_parameters", descriptor_encoding="uint8") == [(True, "")]
        try:
            keypoints = client.send(image_message("mono8", GREY, stamp=401))
            assert keypoints.descriptor_encoding == Keypoints.ENCODING_UINT8
            assert len(keypoints.descriptors) == keypoints.count * 128
        finally:
            client.set_parameters("/r2d2_node/set_parameters", descriptor_encoding="float32")

    def test_subpixel_positions_by_default_and_whole_pixels_at_runtime(self, client: Client) -> None:
        """By default most keypoints sit between pixels; with subpixel off, single-scale ones sit on whole pixels."""
        refined = message_to_arrays(client.send(image_message("mono8", GREY, stamp=402)))["keypoints"][:, :2]
        assert np.mean(refined != np.rint(refined)) > 0.5
        assert client.set_parameters("/r2d2_node/set_parameters", subpixel=False) == [(True, "")]
        try:
            whole = message_to_arrays(client.send(image_message("mono8", GREY, stamp=403)))["keypoints"][:, :2]
        finally:
            client.set_parameters("/r2d2_node/set_parameters", subpixel=True)
        assert np.array_equal(whole, np.rint(whole))
        # the same detections in the same order (the scores do not change), each moved by half a pixel at most
        assert refined.shape == whole.shape and np.abs(refined - whole).max() <= 0.5

    @pytest.mark.parametrize(
        ("values", "reason"),
        [
            ({"top_k": 0}, "top_k"),
            ({"min_size": 5000}, "min_size <= max_size"),
            ({"precision": "int8"}, "precision"),
            ({"device": "cuda:9"}, "cuda"),
            ({"model": "/nonexistent/model.pt"}, "no such file"),
            ({"use_compressed": True}, "read-only"),
        ],
    )
    def test_invalid_update_is_rejected_with_reason(self, client: Client, values: dict, reason: str) -> None:
        [(successful, message)] = client.set_parameters("/r2d2_node/set_parameters", **values)
        assert not successful and reason in message
        assert client.send(image_message("mono8", GREY, stamp=402)).count == FAST_PARAMETERS["top_k"]


class TestDiagnostics:
    """The module's node is /r2d2_node (diagnostics every 0.2 s, a 5 s recent window)."""

    def test_warn_follows_recent_drops_and_clears_when_they_stop(self, client: Client) -> None:
        good = image_message("mono8", GREY, stamp=800)
        client.wait_status("/r2d2_node", lambda s: level(s) == "OK", 30, lambda: client.send(good))
        client.send_bad(image_message("rgb16", RGB, stamp=801), "/r2d2_node", "encoding")
        warned = client.status("/r2d2_node")
        assert level(warned) == "WARN" and "encoding" in warned.message, warned.message
        cleared = client.wait_status("/r2d2_node", lambda s: level(s) == "OK", 30, lambda: client.send(good))
        assert int(value(cleared, "dropped_encoding")) >= 1, "the total stays in the values"

    def test_error_when_every_frame_fails_then_recovers(self, client: Client) -> None:
        bad = image_message("mono8", GREY, step=WIDTH, stamp=810, data=GREY.tobytes()[:-1])

        def send_bad_frames() -> None:
            client.image_pub.publish(bad)
            spin_until(client.node, lambda: False, 0.3)

        failing = client.wait_status("/r2d2_node", lambda s: level(s) == "ERROR", 30, send_bad_frames)
        assert "every frame fails" in failing.message and "size" in failing.message, failing.message
        assert client.send(image_message("mono8", GREY, stamp=811)) is not None
        assert level(client.status("/r2d2_node")) != "ERROR"

    def test_stale_when_no_output_while_input_arrives(self, client: Client) -> None:
        # Slow frames that travel well: 640x480 (0.3 MB; best-effort messages of several MB can lose a
        # fragment each on the loopback and never arrive) through a pyramid of about 50 levels, about
        # 16 times the frame's pixels: tenths of a second per frame on a CPU.
        large = cv2.resize(GREY, (640, 480))
        slow = {"scale_f": 1.03, "min_scale": 0.2}
        assert client.set_parameters("/r2d2_node/set_parameters", stale_timeout=0.1, **slow) == [(True, "")] * 3

        def keep_input_waiting() -> None:
            # Several frames at once: while the node works on one, a newer one waits, for longer than
            # the timeout however fast this CPU answers a single frame.
            for _ in range(3):
                client.image_pub.publish(image_message("mono8", large, stamp=820))

        try:
            stale = client.wait_status("/r2d2_node", lambda s: "stale" in s.message, 60, keep_input_waiting)
            assert level(stale) == "ERROR", stale.message
        finally:
            restored = {"stale_timeout": 30.0, "scale_f": FAST_PARAMETERS.get("scale_f", ExtractionConfig.scale_f),
                        "min_scale": FAST_PARAMETERS["min_scale"]}
            assert client.set_parameters("/r2d2_node/set_parameters", **restored) == [(True, "")] * 3
        client.send(image_message("mono8", GREY, stamp=821))
        client.wait_status("/r2d2_node", lambda s: "stale" not in s.message, 30)


class TestModelReload:
    def test_a_failed_reload_is_reported_put_back_and_the_old_model_serves(self, client: Client,
                                                                           tmp_path: Path) -> None:
        oversized = write_oversized_checkpoint(tmp_path / "oversized.pt")
        # Accepted at once (parameter services never wait for a load); the load fails on its thread.
        assert client.set_parameters("/r2d2_node/set_parameters", model=str(oversized)) == [(True, "")]
        status = client.wait_status("/r2d2_node", lambda s: value(s, "model_reload").startswith("failed"), 60)
        assert "allocate" in value(status, "model_reload") and level(status) == "WARN", status.message
        assert value(status, "model") == "random_n16"
        assert client.get_parameter("/r2d2_node", "model") != str(oversized), "the parameter is put back"
        keypoints = client.send(image_message("mono8", GREY, stamp=900))
        assert keypoints is not None and keypoints.model_name == "random_n16"

    def test_a_reload_never_blocks_parameter_services_and_the_old_model_serves_meanwhile(
        self, client: Client, random_checkpoint: Path, big_random_checkpoint: Path
    ) -> None:
        assert client.set_parameters("/r2d2_node/set_parameters", model=str(big_random_checkpoint)) == [(True, "")]
        # Seen after the call returned: the call did not wait for the load.
        first = client.wait_status("/r2d2_node", lambda s: value(s, "model_reload") == "loading"
                                   or value(s, "model") == "random_big", 60)
        assert value(first, "model_reload") == "loading", "the set call returned before the load finished"
        # Another parameter service call while the model loads: answered, and applied to the serving model.
        assert client.set_parameters("/r2d2_node/set_parameters", top_k=150) == [(True, "")]
        try:
            status = client.wait_status("/r2d2_node", lambda s: value(s, "model") == "random_big", 120)
            assert value(first, "model") == "random_n16", "the old model serves meanwhile"
            assert value(status, "model_reload") == ""
            keypoints = client.send(image_message("mono8", GREY, stamp=910))
            assert keypoints.model_name == "random_big" and keypoints.count == 150
        finally:
            restore = client.set_parameters("/r2d2_node/set_parameters", model=str(random_checkpoint),
                                            top_k=FAST_PARAMETERS["top_k"])
            assert restore == [(True, "")] * 2
            client.wait_status("/r2d2_node", lambda s: value(s, "model") == "random_n16", 120)


class TestCameras:
    def test_a_camera_smaller_than_min_size_gets_keypoints(self, client: Client) -> None:
        pyramid = {"min_scale": 0.0, "min_size": 256, "max_size": 1024}  # the defaults; 160x120 is smaller
        assert client.set_parameters("/r2d2_node/set_parameters", **pyramid) == [(True, "")] * 3
        try:
            keypoints = client.send(image_message("mono8", GREY, stamp=1000))
            assert keypoints is not None and keypoints.count > 0
        finally:
            restore = {key: FAST_PARAMETERS[key] for key in pyramid}
            assert client.set_parameters("/r2d2_node/set_parameters", **restore) == [(True, "")] * 3

    def test_a_12_bit_camera_sees_what_an_8_bit_one_sees(self, client: Client) -> None:
        levels = GREY // 17  # 0..15: exact in 8 bits (x 17) and in 12 bits (x 273)
        eight_bit = client.send(image_message("mono8", (levels * 17).astype(np.uint8), stamp=1010))
        assert client.set_parameters("/r2d2_node/set_parameters", significant_bits=12) == [(True, "")]
        try:
            twelve_bit = client.send(image_message("mono16", levels.astype("<u2") * 273, stamp=1011))
        finally:
            assert client.set_parameters("/r2d2_node/set_parameters", significant_bits=16) == [(True, "")]
        np.testing.assert_allclose(message_to_arrays(twelve_bit)["keypoints"],
                                   message_to_arrays(eight_bit)["keypoints"], atol=1e-3)


def test_overload_keeps_latency_bounded_and_memory_flat(node_process: NodeProcess, client: Client) -> None:
    """Frames arrive far faster than the node processes them: it must drop, not queue."""
    assert client.send(image_message("mono8", GREY, stamp=500)) is not None
    rss_before = node_process.rss_kib()
    start = len(client.keypoints)
    sent_at: dict[int, float] = {}
    for stamp in range(1000, 1300):  # ~300 frames as fast as the test can publish
        client.image_pub.publish(image_message("mono8", GREY, stamp=stamp))
        sent_at[stamp] = time.monotonic()
        if stamp % 20 == 0:
            spin_until(client.node, lambda: False, 0.01)
    spin_until(client.node, lambda: any(k.header.stamp.sec == 1299 for k in client.keypoints[start:]), 20)
    received = client.keypoints[start:]
    assert received and received[-1].header.stamp.sec == 1299, "the newest frame is always processed"
    assert len(received) < 300, "frames were queued instead of dropped"
    assert client.dropped("/r2d2_node").get("superseded", 0) > 0
    rss_after = node_process.rss_kib()
    assert rss_after < rss_before * 1.2 + 20_000, (rss_before, rss_after)


def test_compressed_input_and_broken_jpeg(random_checkpoint: Path, test_node: Node) -> None:
    node = NodeProcess({**FAST_PARAMETERS, "model": random_checkpoint, "use_compressed": True,
                        "diagnostics_period": 0.2}, name="r2d2_compressed", namespace="compressed")
    try:
        node.wait_ready()
        client = Client(test_node, prefix="compressed/")
        assert spin_until(test_node, lambda: client.compressed_pub.get_subscription_count() > 0, 20)
        ok, jpeg = cv2.imencode(".jpg", GREY)
        good = CompressedImage(format="jpeg", data=jpeg.tobytes())
        good.header.stamp.sec = 600
        assert client.send(good) is not None
        broken = CompressedImage(format="jpeg", data=jpeg.tobytes()[:50])
        broken.header.stamp.sec = 601
        client.send_bad(broken, "/compressed/r2d2_compressed", "decode")
        good.header.stamp.sec = 602
        assert client.send(good) is not None
        huge = CompressedImage(format="png", data=png_claiming_pixels(100_000, 100_000))  # OpenCV raises on it
        huge.header.stamp.sec = 603
        client.send_bad(huge, "/compressed/r2d2_compressed", "decode")
        good.header.stamp.sec = 604
        assert client.send(good) is not None
    finally:
        assert node.stop() == 0, node.log()


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"model": "/nonexistent/model.pt"}, "no such file"),
        # A GPU index past the last one: "no CUDA GPU" on a CPU machine, "only N GPU(s)" on a GPU one.
        ({"device": f"cuda:{torch.cuda.device_count() + 7}"},
         "GPU(s) exist" if torch.cuda.is_available() else "no CUDA GPU"),
        ({"top_k": -1}, "invalid parameter top_k"),
        ({"top_k": "many"}, "invalid parameter top_k"),
        ({"precision": "int8"}, "precision must be one of"),
        ({"hang_timeout": 0.5}, "hang_timeout must be 0 (never) or at least 1 s"),  # checked by us, not by ROS
    ],
)
def test_bad_start_up_is_one_clear_configuration_error_exit(random_checkpoint: Path, parameters: dict,
                                                           message: str) -> None:
    process = NodeProcess({**FAST_PARAMETERS, "model": random_checkpoint, **parameters}, name="r2d2_bad")
    code = process.process.wait(timeout=60)
    log = process.log()
    process.stop()
    assert code == EXIT_CONFIGURATION_ERROR and message in log, log  # 78: launch files do not respawn it
    assert "Traceback" not in log and log.count("cannot start") == 1, log


def test_starts_on_the_bundled_model_without_parameters(test_node: Node) -> None:
    from r2d2_ros.weights import DEFAULT_MODEL

    if not DEFAULT_MODEL.is_file():
        pytest.fail(f"the bundled default model {DEFAULT_MODEL} is missing")
    parameters = {key: value for key, value in FAST_PARAMETERS.items() if key != "top_k"}
    node = NodeProcess(parameters, name="r2d2_default", namespace="default_model")
    try:
        node.wait_ready()
        assert "model r2d2_ros_default" in node.log()
        client = Client(test_node, prefix="default_model/")
        assert spin_until(test_node, lambda: client.image_pub.get_subscription_count() > 0, 20)
        keypoints = client.send(image_message("mono8", GREY, stamp=700))
        assert keypoints is not None and keypoints.model_name == "r2d2_ros_default" and keypoints.count > 0
    finally:
        assert node.stop() == 0, node.log()


def test_the_onnxruntime_backend_serves_the_same_keypoints(random_checkpoint: Path, node_process: NodeProcess,
                                                           client: Client, test_node: Node) -> None:
    """backend:=onnxruntime: the exported network answers over DDS as the PyTorch one does (fp32)."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: run the tests through 'make test'")
    frame = image_message("mono8", GREY, stamp=800)
    torch_keypoints = message_to_arrays(client.send(frame))["keypoints"]
    onnx_node = NodeProcess({**FAST_PARAMETERS, "model": random_checkpoint, "backend": "onnxruntime",
                             "diagnostics_period": 0.2}, name="r2d2_onnx", namespace="onnx")
    try:
        onnx_node.wait_ready()
        onnx_client = Client(test_node, prefix="onnx/")
        assert spin_until(test_node, lambda: onnx_client.image_pub.get_subscription_count() > 0, 20)
        answer = onnx_client.send(image_message("mono8", GREY, stamp=801))
        assert answer is not None
        onnx_keypoints = message_to_arrays(answer)["keypoints"]
        # Thresholds are off and top_k cuts 200 of thousands of local maxima, where near-equal scores
        # may swap; maps that differ by 1e-6 move a plateau's maximum to a neighbouring pixel. So:
        # the best 150 of one are among the 200 of the other, within a pixel, all but a tie or two.
        best = onnx_keypoints[:150, None, :2]  # best first
        same = (np.abs(best - torch_keypoints[None, :, :2]).max(axis=2) <= 1.0).any(axis=1)
        assert same.mean() >= 0.98, same.mean()
        status = onnx_client.status("/onnx/r2d2_onnx")
        assert value(status, "backend") == "onnxruntime" and value(status, "precision") == "fp32"
    finally:
        assert onnx_node.stop() == 0, onnx_node.log()
