"""One frame set's work without rclpy: own stamps and one set stamp, the camera_info that fits each image,
drops that name their stage, pictures with the camera's own header."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from r2d2_ros.extraction import ExtractionConfig
from r2d2_ros.features import Features
from r2d2_ros.serving.frame_set import FrameSetProcessor, PictureRequest, image_message
from r2d2_ros.serving.inference import InferenceModel, load_inference_model
from r2d2_ros.serving.params import defaults
from r2d2_ros.serving.stats import FrameDropped
from r2d2_ros.tracking import CameraModel, TrackerConfig
from r2d2_ros.viz import draw_keypoints

pytest.importorskip("r2d2_ros.msg", reason="r2d2_ros.msg is not built: run the tests through 'make test'")

CONFIG = ExtractionConfig(precision="fp32", min_scale=1.0, min_size=0, max_size=4096, reliability_threshold=0.0,
                          repeatability_threshold=0.0, top_k=50)
K = [150.0, 0, 80, 0, 150, 60, 0, 0, 1]


@pytest.fixture(scope="module")
def model(random_checkpoint: Path) -> InferenceModel:
    return load_inference_model(str(random_checkpoint), "cpu", CONFIG)


def _values(**changes: object) -> dict:
    return {**defaults(), "tracking": True, **changes}


def _image(sec: int, nanosec: int = 0, frame_id: str = "left", seed: int = 0, encoding: str = "mono8") -> Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (120, 160), dtype=np.uint8)
    message = Image(height=120, width=160, encoding=encoding, step=160, data=pixels.tobytes())
    message.header.stamp.sec, message.header.stamp.nanosec, message.header.frame_id = sec, nanosec, frame_id
    return message


def _info(sec: int, width: int = 160, height: int = 120, binning: int = 0) -> CameraInfo:
    scale = max(binning, 1)
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[value * scale if index in (0, 2, 4, 5) else value for index, value in enumerate(K)],
                      binning_x=binning, binning_y=binning)
    info.header.stamp.sec = sec
    return info


def test_each_camera_keeps_its_own_header_and_all_carry_the_set_stamp(model: InferenceModel) -> None:
    processor = FrameSetProcessor(["left", "right"])
    left, right = _image(10, 0, "left", 0), _image(10, 2_000_000, "right", 1)
    answers = processor.answer([left, right], model, CONFIG, _values())
    for answer, image in zip(answers, (left, right)):
        assert answer.keypoints.header == image.header and answer.header == image.header
        assert answer.keypoints.set_stamp == left.header.stamp
        assert answer.camera_info is None and not answer.keypoints.rectified
    ids = [set(answer.result.tracks.ids.tolist()) for answer in answers]
    assert ids[0] and ids[1] and not ids[0] & ids[1], "one id sequence for the node"


def test_rectification_without_camera_info_drops_before_the_network(model: InferenceModel) -> None:
    class NoNetwork:
        network = None  # extraction would fail on it: the drop must come first

    with pytest.raises(FrameDropped) as drop:
        FrameSetProcessor([""]).answer([_image(1)], NoNetwork(), CONFIG, _values(rectify_keypoints=True))
    assert drop.value.reason == "no_camera_info"


def test_a_camera_info_of_another_size_is_a_mismatch_drop_when_rectifying(model: InferenceModel) -> None:
    processor = FrameSetProcessor([""])
    processor.cameras[0].camera_infos.add(_info(1, 320, 240))
    with pytest.raises(FrameDropped) as drop:
        processor.answer([_image(2)], model, CONFIG, _values(rectify_keypoints=True))
    assert drop.value.reason == "camera_info_mismatch" and "320x240" in str(drop.value)
    answer, = processor.answer([_image(3)], model, CONFIG, _values(rectify_keypoints=False))
    assert answer.camera_info is None, "raw keypoints: a camera_info that does not fit is not republished"


def test_the_camera_info_used_is_the_one_republished_fitted_and_stamped_like_the_image(model: InferenceModel) -> None:
    processor = FrameSetProcessor([""])
    processor.cameras[0].camera_infos.add(_info(4, 320, 240, binning=2))
    image = _image(5, frame_id="cam")
    answer, = processor.answer([image], model, CONFIG, _values(rectify_keypoints=True))
    assert answer.keypoints.rectified
    assert answer.camera_info.header == image.header
    assert (answer.camera_info.width, answer.camera_info.height, answer.camera_info.binning_x) == (160, 120, 0)
    assert list(answer.camera_info.k) == K


def test_a_bad_image_names_its_cause_and_the_pictures_carry_the_camera_header(model: InferenceModel) -> None:
    processor = FrameSetProcessor(["left", "right"])
    with pytest.raises(FrameDropped) as drop:
        processor.answer([_image(6), _image(6, encoding="yuv999")], model, CONFIG, _values())
    assert drop.value.reason == "encoding"
    images = [_image(7, 0, "left"), _image(7, 5, "right", 1)]
    answers = processor.answer(images, model, CONFIG, _values(), want_maps=True)
    pictures = processor.pictures(processor.cameras[1], answers[1], PictureRequest(True, False, True), _values())
    assert set(pictures) == {"repeatability", "overlay"}
    assert all(picture.header == images[1].header and picture.encoding == "rgb8" for picture in pictures.values())


def test_a_set_of_the_wrong_size_is_refused(model: InferenceModel) -> None:
    with pytest.raises(FrameDropped) as drop:
        FrameSetProcessor(["left", "right"]).answer([_image(8)], model, CONFIG, _values())
    assert drop.value.reason == "internal_error"


def _stereo_info(sec: int, baseline_px: float) -> CameraInfo:
    info = _info(sec)
    info.p = [K[0], 0.0, K[2], -baseline_px, 0.0, K[4], K[5], 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


@pytest.mark.parametrize("rectify", [False, True])
def test_stereo_ids_give_the_second_camera_the_first_camera_s_ids(model: InferenceModel, rectify: bool) -> None:
    processor = FrameSetProcessor(["left", "right"])
    processor.cameras[0].camera_infos.add(_stereo_info(1, 0.0))
    processor.cameras[1].camera_infos.add(_stereo_info(1, 15.0))
    # One image in both cameras: each point is its own partner at disparity 0.
    for sec in (2, 3):
        left, right = processor.answer([_image(sec, 0, "left"), _image(sec, 0, "right")], model, CONFIG,
                                       _values(stereo_ids=True, rectify_keypoints=rectify))
        assert right.stereo_skipped == ""
        assert right.result.tracks.ids.tolist() == left.result.tracks.ids.tolist()
        assert list(right.keypoints.track_ids) == list(left.keypoints.track_ids)


def test_stereo_ids_without_a_baseline_say_why_and_keep_their_own_ids(model: InferenceModel) -> None:
    processor = FrameSetProcessor(["left", "right"])
    for camera in processor.cameras:
        camera.camera_infos.add(_info(1))  # no P: no baseline
    left, right = processor.answer([_image(2, 0, "left"), _image(2, 0, "right")], model, CONFIG,
                                   _values(stereo_ids=True))
    assert "baseline" in right.stereo_skipped and left.stereo_skipped == ""
    assert not set(right.result.tracks.ids.tolist()) & set(left.result.tracks.ids.tolist())


def test_a_picture_message_describes_its_pixels() -> None:
    pixels = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)  # 2 rows of 4 pixels: no side is 3 (channels)
    header = _image(9).header
    message = image_message(pixels, header)
    assert (message.height, message.width, message.step, message.is_bigendian) == (2, 4, 12, 0)
    assert message.encoding == "rgb8" and message.header == header and bytes(message.data) == pixels.tobytes()


def test_nothing_is_drawn_unless_asked_and_maps_are_kept_only_when_wanted(model: InferenceModel) -> None:
    # The node compares its request with the default one to skip the pictures of an unwatched camera.
    assert PictureRequest() == PictureRequest(False, False, False)
    processor = FrameSetProcessor([""])
    answer, = processor.answer([_image(1)], model, CONFIG, _values())
    assert answer.features.maps is None, "no heatmap subscriber: the maps are not kept"
    assert processor.pictures(processor.cameras[0], answer, PictureRequest(), _values()) == {}
    overlay_only = processor.pictures(processor.cameras[0], answer, PictureRequest(overlay=True), _values())
    assert set(overlay_only) == {"overlay"}


def test_a_set_of_the_wrong_size_says_how_many_images_for_how_many_cameras(model: InferenceModel) -> None:
    with pytest.raises(FrameDropped, match="^3 images for 2 cameras$"):
        FrameSetProcessor(["left", "right"]).answer([_image(8)] * 3, model, CONFIG, _values())


def test_no_camera_info_names_the_camera_that_has_none(model: InferenceModel) -> None:
    with pytest.raises(FrameDropped, match="^no camera_info received for image yet$"):
        FrameSetProcessor([""]).answer([_image(1)], model, CONFIG, _values(rectify_keypoints=True))
    processor = FrameSetProcessor(["left", "right"])
    processor.cameras[0].camera_infos.add(_info(1))
    with pytest.raises(FrameDropped, match="^no camera_info received for right yet$"):
        processor.answer([_image(1), _image(1)], model, CONFIG, _values(rectify_keypoints=True))


@pytest.mark.parametrize("name", ["", "right"])
def test_a_mismatch_drop_names_the_camera(model: InferenceModel, name: str) -> None:
    processor = FrameSetProcessor([name])
    processor.cameras[0].camera_infos.add(_info(1, 320, 240))
    with pytest.raises(FrameDropped) as drop:
        processor.answer([_image(2)], model, CONFIG, _values(rectify_keypoints=True))
    assert str(drop.value).startswith(f"{name or 'image'}: none of the last 1 camera_info messages describes 160x120")


def test_colour_images_raw_and_compressed_are_answered(model: InferenceModel) -> None:
    colour = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    raw = Image(height=120, width=160, encoding="rgb8", step=480, data=colour.tobytes())
    compressed = CompressedImage(format="png", data=cv2.imencode(".png", colour[:, :, ::-1])[1].tobytes())
    for message in (raw, compressed):
        message.header.stamp.sec = 3
        answer, = FrameSetProcessor([""]).answer([message], model, CONFIG, _values())
        np.testing.assert_array_equal(answer.image, colour)


class _FailingNetwork:
    name = "failing"
    network = None  # extraction fails on it


@pytest.mark.parametrize(("reason", "messages", "changes"), [
    ("decode", lambda: [SimpleNamespace(header=_image(1).header)], {}),  # no image fields at all
    ("inference_error", lambda: [_image(1)], {}),
    ("camera_info_invalid", lambda: [_image(1)], {"rectify_keypoints": True}),  # an all-zero K
    ("tracking_error", lambda: [_image(1)], {"track_mode": "no such mode"}),
    ("message_error", lambda: [_image(1)], {"descriptor_encoding": "no such encoding"}),
])
def test_each_stage_names_its_drop(model: InferenceModel, reason: str, messages, changes: dict) -> None:
    processor = FrameSetProcessor([""])
    uncalibrated = _info(1)
    uncalibrated.k = [0.0] * 9
    processor.cameras[0].camera_infos.add(uncalibrated)
    with pytest.raises(FrameDropped) as drop:
        processor.answer(messages(), _FailingNetwork() if reason == "inference_error" else model, CONFIG,
                         _values(**changes))
    assert drop.value.reason == reason


def test_pictures_name_their_drops(model: InferenceModel) -> None:
    processor = FrameSetProcessor([""])
    answer, = processor.answer([_image(1)], model, CONFIG, _values(), want_maps=True)
    camera = processor.cameras[0]
    with pytest.raises(FrameDropped) as drop:
        processor.pictures(camera, answer, PictureRequest(reliability=True), _values(heatmap_colormap="no such map"))
    assert drop.value.reason == "heatmap_error"
    with pytest.raises(FrameDropped) as drop:
        processor.pictures(camera, answer, PictureRequest(overlay=True), _values(overlay_max_keypoints="all"))
    assert drop.value.reason == "overlay_error"
    assert set(processor.pictures(camera, answer, PictureRequest(reliability=True), _values())) == {"reliability"}


def test_the_overlay_draws_only_the_best_overlay_max_keypoints(model: InferenceModel) -> None:
    processor = FrameSetProcessor([""])
    answer, = processor.answer([_image(1)], model, CONFIG, _values(tracking=False))
    camera = processor.cameras[0]
    nothing = processor.pictures(camera, answer, PictureRequest(overlay=True), _values(overlay_max_keypoints=0))
    assert bytes(nothing["overlay"].data) == draw_keypoints(answer.image, np.zeros((0, 3)), np.zeros(0)).tobytes()
    five = processor.pictures(camera, answer, PictureRequest(overlay=True), _values(overlay_max_keypoints=5))
    keypoints, scores = answer.features.keypoints.numpy(), answer.features.scores.numpy()
    assert bytes(five["overlay"].data) == draw_keypoints(answer.image, keypoints[:5], scores[:5]).tobytes()


def test_trails_are_drawn_only_over_raw_keypoints(model: InferenceModel) -> None:
    """Trails are in the pixels the tracker saw: drawn over raw keypoints, never over rectified ones."""
    processor = FrameSetProcessor([""])
    for sec in (2, 3):  # the same image twice: every track has a trail of two positions
        answer, = processor.answer([_image(sec)], model, CONFIG, _values())
    camera = processor.cameras[0]
    assert camera.front_end.trails() and not answer.result.rectified
    keypoints_only = draw_keypoints(answer.image, answer.features.keypoints.numpy(), answer.features.scores.numpy())
    raw = processor.pictures(camera, answer, PictureRequest(overlay=True), _values())["overlay"]
    assert bytes(raw.data) != keypoints_only.tobytes()
    # The same trails beside keypoints said to be rectified (a rectified tracker's trails are in rectified pixels).
    rectified = dataclasses.replace(answer, result=dataclasses.replace(answer.result, rectified=True))
    overlay = processor.pictures(camera, rectified, PictureRequest(overlay=True), _values())["overlay"]
    assert bytes(overlay.data) == keypoints_only.tobytes()


def test_stereo_ids_need_tracking(model: InferenceModel) -> None:
    processor = FrameSetProcessor(["left", "right"])
    left, right = processor.answer([_image(2, 0, "left"), _image(2, 0, "right")], model, CONFIG,
                                   _values(stereo_ids=True, tracking=False))
    assert left.result.tracks is None and right.result.tracks is None and right.stereo_skipped == ""


# A calibrated rig as a stereo camera's camera_infos give it: each camera its own K and rectifying R, one
# rectified P with the right camera's baseline. Raw pixels of one camera rectified with the other's model miss
# their rows.
RIG_P = np.array([[300.0, 0, 160, 0], [0, 300, 120, 0], [0, 0, 1, 0]])
RIG_BASELINE = 0.2
RIG_K = (np.array([[310.0, 0, 158], [0, 305, 121], [0, 0, 1]]), np.array([[295.0, 0, 163], [0, 298, 118], [0, 0, 1]]))
RIG_R = (cv2.Rodrigues(np.array([0.02, -0.03, 0.01]))[0], cv2.Rodrigues(np.array([-0.015, 0.025, -0.02]))[0])


def _rig_camera(index: int) -> CameraModel:
    projection = RIG_P.copy()
    projection[0, 3] = -RIG_P[0, 0] * RIG_BASELINE * index
    return CameraModel(320, 240, RIG_K[index], np.zeros(5), RIG_R[index], projection)


def _rig_features(scene: np.ndarray, descriptors: torch.Tensor, index: int, order: np.ndarray) -> Features:
    """The raw pixels of ``scene`` (rectified left-camera coordinates) in camera ``index``, points in ``order``."""
    rectified = scene[order] - [RIG_BASELINE * index, 0, 0]
    raw = rectified @ RIG_R[index] @ RIG_K[index].T  # R maps the raw camera frame onto the rectified one
    pixels = raw[:, :2] / raw[:, 2:]
    keypoints = torch.from_numpy(np.column_stack([pixels, np.full(len(pixels), 32.0)]).astype(np.float32))
    return Features(keypoints, descriptors[order], torch.linspace(1, 0.5, len(pixels)), (320, 240))


def test_stereo_partners_in_raw_pixels_take_the_left_ids_and_keep_them_when_the_left_restarts() -> None:
    rng = np.random.default_rng(4)
    scene = np.column_stack([rng.uniform(-2, 2, 80), rng.uniform(-1.5, 1.5, 80), rng.uniform(6, 12, 80)])
    descriptors = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(80, 32))).float(), dim=1)
    processor = FrameSetProcessor(["left", "right"])
    models = [_rig_camera(0), _rig_camera(1)]
    config = TrackerConfig()

    def frame(count: int, left_stamp: int, right_stamp: int) -> tuple[dict[int, int], dict[int, int]]:
        """Scene points 0..count-1 in both cameras, the right camera's in another order; ids by scene point."""
        orders = np.arange(count), rng.permutation(count)
        results = [camera.front_end.process(_rig_features(scene, descriptors, index, order), None, True, config,
                                            stamp)
                   for index, (camera, order, stamp) in enumerate(zip(processor.cameras, orders,
                                                                      (left_stamp, right_stamp)))]
        # The set's stereo step as answer() runs it, on features whose every point is known.
        assert processor._adopt_stereo_ids(results, models, config.max_descriptor_distance) == [""]  # noqa: SLF001
        return tuple(dict(zip(order.tolist(), result.tracks.ids.tolist())) for order, result in zip(orders, results))

    left, right = frame(60, 10, 10)
    assert right == left, "each right point took its partner's id"
    left, right = frame(80, 11, 11)  # 20 new points, in both cameras
    assert right == left
    kept = right
    left, right = frame(80, 5, 12)  # the left camera's stamp went back: its tracker restarts with new ids
    assert not set(left.values()) & set(kept.values())
    assert right == kept, "adopted ids stay, the old points' as well as the new ones'"
