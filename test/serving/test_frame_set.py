"""One frame set's work without rclpy: own stamps and one set stamp, the camera_info that fits each image,
drops that name their stage, pictures with the camera's own header."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image

from r2d2_ros.extraction import ExtractionConfig
from r2d2_ros.serving.frame_set import FrameSetProcessor, PictureRequest
from r2d2_ros.serving.inference import InferenceModel, load_inference_model
from r2d2_ros.serving.params import defaults
from r2d2_ros.serving.stats import FrameDropped

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
