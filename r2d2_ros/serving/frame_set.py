"""The work of one frame set, without rclpy: decode, extract, choose intrinsics, rectify, track, build messages.

A *set* is one image per camera served by the node (one image with a single camera). It is
answered for every camera or for none: every stage that can fail runs for all cameras before any
message exists, and raises :class:`~.stats.FrameDropped` naming the stage. Every output of a
camera carries the header of that camera's own image; the set's stamp (the first camera's) goes
into each Keypoints message's ``set_stamp``, so that a consumer can pair a set exactly.

With ``stereo_ids`` (2+ cameras, tracking), each further camera's points that are stereo partners of
the first camera's take their ids (see :mod:`r2d2_ros.tracking.stereo`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..conversions.image_codec import decode_message
from ..conversions.keypoints_message import DESCRIPTOR_ENCODINGS, features_to_message
from ..extraction import ExtractionConfig, extract_multiscale_batch
from ..features import Features
from ..msg import Keypoints
from ..tracking import CameraModel, FrontEndResult, TrackerConfig, TrackIdSequence, TrackingFrontEnd
from ..tracking.stereo import StereoConfig, StereoView, ids_to_adopt, stereo_matches
from ..viz import colorize_heatmap, draw_keypoints, draw_tracks
from .camera_info import CameraInfoHistory, CameraInfoMismatch, MissingCameraInfo, stamp_ns
from .inference import InferenceModel
from .stats import FrameDropped, frame_stage

__all__ = ["CameraAnswer", "CameraState", "FrameSetProcessor", "PictureRequest", "image_message"]


@dataclass
class CameraState:
    """One camera served by the node: its recent intrinsics and its tracker."""

    name: str  # "" for the single camera on ``image``, else the namespace of its topics
    front_end: TrackingFrontEnd
    camera_infos: CameraInfoHistory = field(default_factory=CameraInfoHistory)
    stereo_adopted: set[int] = field(default_factory=set)  # ids its tracks took from the first camera


@dataclass(frozen=True)
class CameraAnswer:
    """What one camera publishes for a set."""

    keypoints: Any  # r2d2_ros/Keypoints
    camera_info: Any | None  # sensor_msgs/CameraInfo used for (or fitting) this image, stamped like it; None: none fits
    image: np.ndarray  # the decoded RGB image, for the pictures
    features: Features  # the published keypoints in image pixels (for the overlay), with the maps when asked
    result: FrontEndResult
    header: Any  # the camera's own image header
    stereo_skipped: str = ""  # why stereo ids were not searched for this camera ("" when they were or are off)


@dataclass(frozen=True)
class PictureRequest:
    """Which pictures someone subscribes to, for one camera."""

    repeatability: bool = False
    reliability: bool = False
    overlay: bool = False


def image_message(array: np.ndarray, header: Any) -> Image:
    """An rgb8 sensor_msgs/Image of an (H, W, 3) uint8 array."""
    message = Image(header=header, height=array.shape[0], width=array.shape[1], encoding="rgb8",
                    is_bigendian=0, step=array.shape[1] * 3)
    message.data = array.tobytes()
    return message


def _restamped(info: Any, header: Any) -> CameraInfo:
    """A copy of a CameraInfo with another header (the image's, exactly as the keypoints carry it)."""
    fields = {name: getattr(info, name) for name in info.get_fields_and_field_types()}
    return CameraInfo(**{**fields, "header": header})


def _usable_model(info: Any | None) -> CameraModel | None:
    """The camera model of a camera_info, None without one or for one that cannot rectify."""
    try:
        return CameraModel.from_camera_info(info) if info is not None else None
    except ValueError:
        return None


def _stereo_view(result: FrontEndResult, camera: CameraModel | None) -> StereoView:
    """A camera's published points of this set, as the stereo matching takes them."""
    return StereoView(result.features.keypoints[:, :2].float().cpu().numpy(), result.features.descriptors, camera,
                      result.rectified)


class FrameSetProcessor:
    """Answers frame sets for the cameras of one node.

    Args:
        camera_names: the cameras in set order ("" for the single camera on ``image``).
        ids: the node's track id sequence: no two cameras give one id to different points.
    """

    def __init__(self, camera_names: Sequence[str], ids: TrackIdSequence | None = None) -> None:
        ids = ids if ids is not None else TrackIdSequence()
        self.cameras = [CameraState(name, TrackingFrontEnd(ids)) for name in camera_names]

    def answer(self, messages: Sequence[Image | CompressedImage], model: InferenceModel, config: ExtractionConfig,
               values: dict[str, Any], want_maps: bool = False) -> list[CameraAnswer]:
        """Every camera's keypoints (and camera_info) for one set, or :class:`FrameDropped` for the whole set.

        Args:
            messages: one image message per camera, in camera order.
            values: the node's parameter values (a consistent snapshot).
            want_maps: keep the heatmaps (someone subscribes to them).
        """
        if len(messages) != len(self.cameras):
            raise FrameDropped("internal_error", f"{len(messages)} images for {len(self.cameras)} cameras")
        rectify = bool(values["rectify_keypoints"])
        if rectify:  # checked first: no network time for a set that is dropped
            for camera in self.cameras:
                if not len(camera.camera_infos):
                    raise FrameDropped("no_camera_info", f"no camera_info received for {camera.name or 'image'} yet")
        compressed = isinstance(messages[0], CompressedImage)
        with frame_stage("decode"):
            images = [decode_message(message, compressed, values["significant_bits"]) for message in messages]
        with frame_stage("inference_error"):
            features = extract_multiscale_batch(model.network, images, config, return_maps=want_maps)
        infos = [self._camera_info(camera, message.header, image, rectify)
                 for camera, message, image in zip(self.cameras, messages, images)]
        with frame_stage("camera_info_invalid"):
            models = [CameraModel.from_camera_info(info) if rectify else None for info in infos]
        with frame_stage("tracking_error"):
            tracker_config = TrackerConfig(values["track_max_distance"], values["track_ransac_px"],
                                           max_points=values["track_max_points"],
                                           guided_radius_px=values["track_guided_radius"], mode=values["track_mode"])
            results = [camera.front_end.process(found, camera_model, values["tracking"], tracker_config,
                                                stamp_ns(message.header.stamp), image)
                       for camera, found, camera_model, message, image
                       in zip(self.cameras, features, models, messages, images)]
            stereo_skipped = [""] * len(self.cameras)
            if values["stereo_ids"] and values["tracking"] and len(self.cameras) > 1:
                stereo_models = models if rectify else [_usable_model(info) for info in infos]
                stereo_skipped[1:] = self._adopt_stereo_ids(results, stereo_models, values["track_max_distance"])
        with frame_stage("message_error"):
            set_stamp = messages[0].header.stamp
            answers = []
            for message, image, found, result, info, skipped in zip(messages, images, features, results, infos,
                                                                    stereo_skipped):
                keypoints = features_to_message(result.features, Keypoints(header=message.header), model.name,
                                                DESCRIPTOR_ENCODINGS[values["descriptor_encoding"]], result.tracks,
                                                result.rectified)
                keypoints.set_stamp = set_stamp
                # The published points in image pixels (for the overlay): flowed points, kept detections or all.
                published = (result.image_features if result.image_features is not None
                             else found if result.kept is None else found.select(result.kept))
                answers.append(CameraAnswer(keypoints, _restamped(info, message.header) if info is not None else None,
                                            image, published, result, message.header, skipped))
        return answers

    def _adopt_stereo_ids(self, results: list[FrontEndResult], models: Sequence[CameraModel | None],
                          max_descriptor_distance: float) -> list[str]:
        """Gives the further cameras' stereo partners of the first camera's points its ids (``results`` in place).

        Returns why the search was skipped, per further camera ("" when it ran).
        """
        config = StereoConfig(max_descriptor_distance=max_descriptor_distance)
        left = _stereo_view(results[0], models[0])
        skipped = []
        for index in range(1, len(self.cameras)):
            camera, result = self.cameras[index], results[index]
            matches = stereo_matches(left, _stereo_view(result, models[index]), config)
            skipped.append(matches.skipped)
            right_ids = result.tracks.ids
            camera.stereo_adopted &= set(right_ids.tolist())  # forget tracks that ended
            indices, ids = ids_to_adopt(results[0].tracks.ids, right_ids, matches.pairs, camera.stereo_adopted)
            if len(indices):
                results[index] = camera.front_end.adopt_ids(result, indices, ids)
                camera.stereo_adopted |= set(ids.tolist())
        return skipped

    @staticmethod
    def _camera_info(camera: CameraState, header: Any, image: np.ndarray, rectify: bool) -> Any | None:
        """The camera_info of this image (same stamp, else the latest of its size), fitted to its binning and ROI.

        Without rectification a missing or non-fitting one is not an error: the keypoints stay in raw
        pixels and no camera_info is published beside them.
        """
        height, width = image.shape[:2]
        try:
            return camera.camera_infos.for_frame(stamp_ns(header.stamp), width, height)
        except MissingCameraInfo as error:
            if rectify:
                raise FrameDropped("no_camera_info", f"{camera.name or 'image'}: {error}") from error
        except CameraInfoMismatch as error:
            if rectify:
                raise FrameDropped("camera_info_mismatch", f"{camera.name or 'image'}: {error}") from error
        return None

    def pictures(self, camera: CameraState, answer: CameraAnswer, request: PictureRequest,
                 values: dict[str, Any]) -> dict[str, Image]:
        """The heatmaps and the overlay someone subscribes to, by output name, with the camera's own header.

        Raises:
            FrameDropped: ``heatmap_error`` or ``overlay_error``.
        """
        pictures = {}
        with frame_stage("heatmap_error"):
            maps = answer.features.maps
            for name, wanted in (("repeatability", request.repeatability), ("reliability", request.reliability)):
                if wanted and maps is not None:
                    heatmap = getattr(maps, name).float().cpu().numpy()
                    pictures[name] = image_message(colorize_heatmap(heatmap, values["heatmap_colormap"]), answer.header)
        with frame_stage("overlay_error"):
            if request.overlay:
                limit = values["overlay_max_keypoints"]  # best first: download only what is drawn
                keypoints = answer.features.keypoints[:limit].float().cpu().numpy()
                overlay = draw_keypoints(answer.image, keypoints, answer.features.scores[:limit].float().cpu().numpy())
                if answer.result.tracks is not None and not answer.result.rectified:  # trails are in image pixels
                    overlay = draw_tracks(overlay, camera.front_end.trails()[:limit])
                pictures["overlay"] = image_message(overlay, answer.header)
        return pictures
