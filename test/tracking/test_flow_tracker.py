"""Flow-assisted tracking on a synthetic pan: a smooth random texture shifted by known sub-pixel amounts.

The detections stand in for R2D2's: the texture's grid points with a descriptor per point, found with
up to half a pixel of jitter (as a detector finds a point again), so the tracked positions can only be
that precise if they come from the flow.
"""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros.features import Features
from r2d2_ros.tracking import FeatureTracker, FlowTracker, TrackerConfig, TrackIdSequence, Tracks
from r2d2_ros.tracking.flow_tracker import VERIFY_RADIUS_PX, flow_points, trackability
from r2d2_ros.tracking.optical_flow import inside_image
from r2d2_ros.tracking import reidentification
from r2d2_ros.tracking.reidentification import REIDENTIFY_FRAMES, LostTracks
from r2d2_ros.tracking.tracker import NEW_POINT_SPACING_PX
from r2d2_ros.tracking.verification import MIN_MATCHES

WIDTH, HEIGHT = 320, 240
MARGIN = 120  # texture around the first view, panned into
SPACING = 12.0  # between the texture's grid points
FLOW = TrackerConfig(mode="flow")


def _texture(seed: int, size: tuple[int, int]) -> np.ndarray:
    noise = np.random.default_rng(seed).uniform(0, 255, size).astype(np.float32)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 2.0), None, 0, 255, cv2.NORM_MINMAX)


TEXTURE = _texture(0, (HEIGHT + 2 * MARGIN, WIDTH + 2 * MARGIN))
# The scene's points, in the coordinates of the first view; their descriptors, one per point.
SCENE = (np.stack(np.meshgrid(np.arange(-MARGIN + 10, WIDTH + MARGIN - 10, SPACING),
                              np.arange(-MARGIN + 10, HEIGHT + MARGIN - 10, SPACING)), -1).reshape(-1, 2) + 0.3)
DESCRIPTORS = torch.nn.functional.normalize(torch.randn(len(SCENE), 32, generator=torch.Generator().manual_seed(0)),
                                            dim=1)


def _view(shift: np.ndarray, texture: np.ndarray = TEXTURE) -> np.ndarray:
    """The texture as seen after the camera panned: a scene point at p appears at p + shift."""
    to_texture = np.float32([[1, 0, MARGIN - shift[0]], [0, 1, MARGIN - shift[1]]])
    view = cv2.warpAffine(texture, to_texture, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    return view.round().clip(0, 255).astype(np.uint8)


def _detections(shift: np.ndarray, seed: int, descriptors: torch.Tensor = DESCRIPTORS,
                extra: np.ndarray = np.zeros((0, 2)), hidden: np.ndarray = np.zeros(0, np.int64)) -> Features:
    """The visible scene points but ``hidden`` ones (jittered by up to 0.5 px, in random order) and ``extra``
    points, first."""
    rng = np.random.default_rng(seed)
    points = SCENE + shift + rng.uniform(-0.5, 0.5, SCENE.shape)
    visible = np.flatnonzero((points >= 2).all(axis=1) & (points[:, 0] < WIDTH - 2) & (points[:, 1] < HEIGHT - 2)
                             & ~np.isin(np.arange(len(SCENE)), hidden))
    visible = rng.permutation(visible)
    points = np.vstack([extra, points[visible]])
    descriptors = torch.cat([torch.nn.functional.normalize(torch.randn(len(extra), descriptors.shape[1]), dim=1),
                             descriptors[visible]])
    keypoints = torch.from_numpy(np.column_stack([points, np.full(len(points), 8.0)]).astype(np.float32))
    return Features(keypoints, descriptors, torch.linspace(1, 0.1, len(points)), (WIDTH, HEIGHT))


def _scene_index(points: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """The scene point nearest to each point of a view (by its true position)."""
    return np.linalg.norm(points[:, None] - (SCENE + shift)[None], axis=2).argmin(axis=1)


def _pan(tracker: FlowTracker, shifts: list[np.ndarray]) -> list[tuple[Features, np.ndarray]]:
    """(points, ids) of each view."""
    return [(points, tracks.ids) for points, tracks in
            (tracker.update(_detections(shift, seed), _view(shift)) for seed, shift in enumerate(shifts))]


PAN = [np.array([2.37 * k, -0.61 * k]) for k in range(6)]


def test_flow_is_sub_pixel_and_checked_both_ways() -> None:
    points = SCENE[(SCENE[:, 0] > 20) & (SCENE[:, 0] < 280) & (SCENE[:, 1] > 20) & (SCENE[:, 1] < 200)]
    flowed, followed = flow_points(_view(PAN[0]), _view(PAN[1]), points)
    assert followed.all()
    assert np.abs(flowed - (points + PAN[1])).max() < 0.1
    none = flow_points(_view(PAN[0]), _view(PAN[1]), np.zeros((0, 2)))
    assert none[0].shape == (0, 2) and none[1].shape == (0,)


def test_a_motion_of_tens_of_pixels_is_followed_to_a_tenth_of_a_pixel() -> None:
    # KITTI's road moves 20-40 px a frame near the car: the pyramid must carry the flow that far and
    # Lucas-Kanade still iterate to sub-pixel accuracy there (an early stop leaves whole pixels of error).
    shift = np.array([23.7, -6.1])
    points = SCENE[(SCENE[:, 0] > 30) & (SCENE[:, 0] < 270) & (SCENE[:, 1] > 30) & (SCENE[:, 1] < 210)]
    flowed, followed = flow_points(_view(np.zeros(2)), _view(shift), points)
    assert followed.mean() > 0.8
    assert np.abs(flowed - (points + shift))[followed].max() < 0.1


def test_the_forward_backward_limit_is_inclusive() -> None:
    # Between identical images the flow returns exactly where it started: a limit of 0 keeps it.
    image = _view(PAN[0])
    points = SCENE[(SCENE[:, 0] > 20) & (SCENE[:, 0] < 300) & (SCENE[:, 1] > 20) & (SCENE[:, 1] < 220)]
    flowed, followed = flow_points(image, image, points, forward_backward_px=0.0)
    assert followed.all()
    np.testing.assert_allclose(flowed, points, atol=1e-4)


def test_a_point_is_inside_the_image_on_both_sides_of_every_edge() -> None:
    points = np.array([[0.0, 0], [-0.01, 5], [5, -0.01], [0.5, 0.5], [79.99, 59.99], [80, 5], [5, 60], [60, 70]])
    np.testing.assert_array_equal(inside_image(points, (60, 80)), [1, 0, 0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(inside_image(points, (60, 80, 3)), inside_image(points, (60, 80)))


def test_trackability_is_the_corner_response_at_the_nearest_pixel_clamped_to_the_image() -> None:
    image = _view(PAN[0])
    height, width = image.shape
    response = cv2.cornerMinEigenVal(image, 21)
    points = np.array([[0.0, 0], [width - 1, height - 1], [-3, 2], [width + 5, height + 5], [10.4, 20.6]])
    np.testing.assert_array_equal(trackability(image, points), [response[0, 0], response[-1, -1], response[2, 0],
                                                                response[-1, -1], response[21, 10]])


def test_ids_persist_through_a_pan_at_the_flowed_positions() -> None:
    views = _pan(FlowTracker(FLOW), PAN)
    first_points, first_ids = views[0]
    started_at = first_points.keypoints[:, :2].numpy().astype(np.float64)  # detected, so up to 0.5 px off the scene
    for (points, ids), shift in zip(views[1:], PAN[1:]):
        truth = started_at + shift
        # Every first point still well inside the view is still on its track.
        inside = (truth >= 25).all(axis=1) & (truth[:, 0] < WIDTH - 25) & (truth[:, 1] < HEIGHT - 25)
        assert np.isin(first_ids[inside], ids).all()
        # Within 0.2 px of where it started, panned, after five steps: the flow's positions, not those of
        # the jittered detections (the first frame's ids ascend with its points). Within about half the
        # flow's window of the image's edge, the flow sees less texture: it errs more (up to 0.6 px here) or
        # loses the point, which is then found again at its detection.
        carried = np.isin(ids, first_ids)
        positions, truth = points.keypoints[carried, :2].numpy(), truth[np.searchsorted(first_ids, ids[carried])]
        clear = (truth >= 12).all(axis=1) & (truth[:, 0] < WIDTH - 12) & (truth[:, 1] < HEIGHT - 12)
        assert clear.sum() > 300 and np.abs(positions[clear] - truth[clear]).max() < 0.2


def test_a_point_that_leaves_the_image_ends_its_track() -> None:
    tracker = FlowTracker(FLOW)
    first = tracker.update(_detections(PAN[0], 0), _view(PAN[0]))
    shift = np.array([-30.4, 0.2])  # the left 30 px leave the view
    points, tracks = tracker.update(_detections(shift, 1), _view(shift))
    left = first[0].keypoints[:, 0].numpy() < 30
    assert left.any() and not np.isin(first[1].ids[left], tracks.ids).any()
    later, later_tracks = tracker.update(_detections(-shift, 2), _view(-shift))  # back: they start new tracks
    assert not np.isin(first[1].ids[left], later_tracks.ids).any()
    assert (points.keypoints[:, :2].numpy() >= 0).all()


def _scene_point_near(shift: np.ndarray, x: float, y: float) -> int:
    return int(np.linalg.norm(SCENE + shift - [x, y], axis=1).argmin())


def _covered(shift: np.ndarray, x: float, y: float, half: float) -> np.ndarray:
    """The scene points that a square of ``half`` px either side of x, y covers in the view at ``shift``."""
    return np.flatnonzero((np.abs(SCENE + shift - [x, y]) <= half).all(axis=1))


def test_a_changed_patch_is_dropped_by_the_flow_check() -> None:
    tracker = FlowTracker(FLOW)
    points, tracks = tracker.update(_detections(PAN[0], 0), _view(PAN[0]))
    occluded = _scene_point_near(PAN[0], 160, 120)
    occluder = _texture(5, (41, 41)).round().astype(np.uint8)
    image = _view(PAN[1])
    x, y = np.rint(SCENE[occluded] + PAN[1]).astype(int)
    image[y - 20:y + 21, x - 20:x + 21] = occluder  # something passes in front of the point
    occluded_id = tracks.ids[_scene_index(points.keypoints[:, :2].numpy(), PAN[0]) == occluded]
    _, after = tracker.update(_detections(PAN[1], 1, hidden=_covered(PAN[1], x, y, 20)), image)
    assert len(occluded_id) == 1 and occluded_id[0] not in after.ids
    assert np.isin(tracks.ids, after.ids).mean() > 0.8  # the rest goes on


def test_a_point_whose_detection_looks_different_is_dropped_by_the_descriptor_check() -> None:
    tracker = FlowTracker(FLOW)
    points, tracks = tracker.update(_detections(PAN[0], 0), _view(PAN[0]))
    changed = _scene_point_near(PAN[0], 160, 120)
    descriptors = DESCRIPTORS.clone()
    descriptors[changed] = -descriptors[changed]  # the flow agrees, R2D2 sees another point
    _, after = tracker.update(_detections(PAN[1], 1, descriptors), _view(PAN[1]))
    changed_id = tracks.ids[_scene_index(points.keypoints[:, :2].numpy(), PAN[0]) == changed]
    assert len(changed_id) == 1 and changed_id[0] not in after.ids
    assert np.isin(tracks.ids, after.ids).mean() > 0.8


def _hide_and_show(hidden_frames: range, descriptors: list[torch.Tensor] | None = None, half: int = 20
                   ) -> tuple[list[tuple[Features, np.ndarray]], int, np.ndarray]:
    """A pan in which a flat patch covers the scene point near the centre (and its neighbours) in
    ``hidden_frames``: (points, ids) of each view, the point's scene index and the covered ones.

    ``descriptors``: each view's scene descriptors (default: the scene's); ids must be unique in every view.
    """
    tracker = FlowTracker(FLOW)
    target = _scene_point_near(PAN[0], 160, 120)
    covered = _covered(PAN[0], *(SCENE[target] + PAN[0]), half)
    views = []
    for index, shift in enumerate(PAN[:hidden_frames.stop + 1]):
        image, hidden = _view(shift), np.zeros(0, np.int64)
        if index in hidden_frames:
            x, y = np.rint(SCENE[target] + shift).astype(int)
            image[y - half:y + half + 1, x - half:x + half + 1] = 128
            hidden = covered
        points, tracks = tracker.update(_detections(shift, index, descriptors[index] if descriptors else DESCRIPTORS,
                                                    hidden=hidden), image)
        assert len(np.unique(tracks.ids)) == len(tracks.ids)
        views.append((points, tracks.ids))
    return views, target, covered


def _id_of(view: tuple[Features, np.ndarray], scene_index: int, shift: np.ndarray) -> int | None:
    """The id of the view's point within 1 px of a scene point, None if there is none."""
    points, ids = view
    gap = np.linalg.norm(points.keypoints[:, :2].numpy() - (SCENE[scene_index] + shift), axis=1)
    return int(ids[gap.argmin()]) if len(gap) and gap.min() < 1.0 else None


def test_a_point_hidden_for_two_frames_keeps_its_id_when_seen_again() -> None:
    views, target, covered = _hide_and_show(range(1, 3))
    first_id = _id_of(views[0], target, PAN[0])
    assert first_id is not None
    assert all(first_id not in ids for _, ids in views[1:3])  # hidden: flow lost it, nothing took its id
    assert _id_of(views[3], target, PAN[3]) == first_id
    # Its neighbours under the patch too.
    assert all(_id_of(views[3], point, PAN[3]) == _id_of(views[0], point, PAN[0]) for point in covered)


def test_a_track_hidden_as_long_as_the_limit_resumes_and_one_hidden_longer_does_not() -> None:
    views, target, _ = _hide_and_show(range(1, REIDENTIFY_FRAMES + 1))
    assert _id_of(views[-1], target, PAN[len(views) - 1]) == _id_of(views[0], target, PAN[0])
    views, target, _ = _hide_and_show(range(1, REIDENTIFY_FRAMES + 2))
    first_id, last_id = _id_of(views[0], target, PAN[0]), _id_of(views[-1], target, PAN[len(views) - 1])
    assert last_id is not None and last_id != first_id and first_id not in views[-1][1]


def test_a_different_point_where_a_hidden_one_was_does_not_take_its_id() -> None:
    target = _scene_point_near(PAN[0], 160, 120)
    changed = DESCRIPTORS.clone()
    changed[target] = -changed[target]  # back in view, R2D2 describes another point there
    views, _, _ = _hide_and_show(range(1, 3), [DESCRIPTORS] * 3 + [changed])
    first_id, last_id = _id_of(views[0], target, PAN[0]), _id_of(views[3], target, PAN[3])
    assert last_id is not None and last_id != first_id and first_id not in views[3][1]


def test_a_hidden_point_resumes_under_the_id_it_adopted_from_a_stereo_partner() -> None:
    tracker = FlowTracker(FLOW)
    first, _ = tracker.update(_detections(PAN[0], 0), _view(PAN[0]))
    target = _scene_point_near(PAN[0], 160, 120)
    index = int(np.flatnonzero(_scene_index(first.keypoints[:, :2].numpy(), PAN[0]) == target)[0])
    tracker.book.adopt(np.array([index]), np.array([10_000]))  # the other camera's id for this point
    covered = _covered(PAN[0], *(SCENE[target] + PAN[0]), 20)
    for shift, seed in ((PAN[1], 1), (PAN[2], 2)):
        image = _view(shift)
        x, y = np.rint(SCENE[target] + shift).astype(int)
        image[y - 20:y + 21, x - 20:x + 21] = 128
        tracker.update(_detections(shift, seed, hidden=covered), image)
    points, tracks = tracker.update(_detections(PAN[3], 3), _view(PAN[3]))
    assert _id_of((points, tracks.ids), target, PAN[3]) == 10_000


# Frame 0's points in view: the one near the centre is lost, the others are the tracked points of frame 1.
_IN_VIEW = np.flatnonzero(((SCENE + PAN[0]) >= 30).all(axis=1) & (SCENE[:, 0] + PAN[0][0] < WIDTH - 30)
                          & (SCENE[:, 1] + PAN[0][1] < HEIGHT - 30))
LOST_POINT, ANCHORS = _IN_VIEW[len(_IN_VIEW) // 2], np.delete(_IN_VIEW, len(_IN_VIEW) // 2)


def _lost_track(frame: int = 0) -> LostTracks:
    """Lost tracks that remember frame ``frame`` (the view at PAN[0], ids = scene indices) and lost LOST_POINT
    there."""
    lost = LostTracks()
    points = SCENE + PAN[0]
    lost.remember(frame, _view(PAN[0]), _IN_VIEW.astype(np.int64), points[_IN_VIEW], np.zeros(0, np.int64))
    keypoints = torch.from_numpy(np.column_stack([points[[LOST_POINT]], [8.0]]).astype(np.float32))
    lost.lose(np.array([LOST_POINT]), Features(keypoints, DESCRIPTORS[[LOST_POINT]], torch.ones(1), (WIDTH, HEIGHT)),
              frame)
    return lost


def _search(lost: LostTracks, tracked: np.ndarray = ANCHORS, extra_positions: np.ndarray = np.zeros((0, 2)),
            image: np.ndarray | None = None, eligible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(lost indices, positions) found in the view at PAN[1] (or ``image``) with ``tracked`` scene points
    tracked there, and points of new ids at ``extra_positions``."""
    positions = np.vstack([SCENE[tracked] + PAN[1], extra_positions]).astype(np.float32)
    ids = np.concatenate([tracked, 10_000 + np.arange(len(extra_positions))])
    found = lost.search(_view(PAN[1]) if image is None else image,
                        np.ones(len(lost.ids), bool) if eligible is None else eligible, ids, positions, None, 1.0)
    assert len(found.lost) == len(found.positions) and found.positions.shape[1:] == (2,)
    return found.lost, found.positions


def test_a_lost_track_is_not_found_again_where_a_tracked_point_is() -> None:
    found, positions = _search(_lost_track())
    assert found.tolist() == [0] and np.abs(positions[0] - (SCENE[LOST_POINT] + PAN[1])).max() < 0.1
    # A track started since holds its place.
    assert len(_search(_lost_track(), extra_positions=SCENE[[LOST_POINT]] + PAN[1])[0]) == 0
    # "Where a tracked point is": within NEW_POINT_SPACING_PX, the new points' rule; exactly that far counts as
    # there (flowed x is in [128, 256), where adding 4 px and subtracting again are exact in float32).
    flowed = positions[0]
    assert 128 <= flowed[0] < 252
    exactly = (flowed + np.float32([NEW_POINT_SPACING_PX, 0]))[None]
    assert len(_search(_lost_track(), extra_positions=exactly)[0]) == 0
    assert _search(_lost_track(), extra_positions=exactly + [[0.01, 0]])[0].tolist() == [0]


def test_a_lost_track_the_flow_check_rejects_is_not_found_beside_tracked_points() -> None:
    image = _view(PAN[1])
    x, y = np.rint(SCENE[LOST_POINT] + PAN[1]).astype(int)
    image[y - 10:y + 11, x - 10:x + 11] = 128  # covered: nothing for the flow to follow
    assert not flow_points(_view(PAN[0]), image, (SCENE[[LOST_POINT]] + PAN[0]))[1].any()
    assert len(_search(_lost_track(), image=image)[0]) == 0


def test_the_motion_since_a_track_was_lost_needs_min_matches_anchors() -> None:
    # Fewer anchors (points seen then and now) than the epipolar fit needs: nothing is accepted unverified.
    assert _search(_lost_track(), tracked=ANCHORS[:: len(ANCHORS) // MIN_MATCHES][:MIN_MATCHES])[0].tolist() == [0]
    assert len(_search(_lost_track(), tracked=ANCHORS[:: len(ANCHORS) // MIN_MATCHES][: MIN_MATCHES - 1])[0]) == 0


def test_nothing_is_found_again_when_no_motion_fits_the_anchors(monkeypatch: pytest.MonkeyPatch) -> None:
    # The epipolar fit can fail (degenerate anchors); no lost track is then accepted unverified.
    monkeypatch.setattr(reidentification, "epipolar_model", lambda *args: (np.zeros(len(args[0]), bool), None))
    assert len(_search(_lost_track())[0]) == 0


def test_tracks_lost_before_any_frame_was_remembered_are_kept_as_given() -> None:
    lost = LostTracks()
    keypoints = torch.tensor([[10.0, 20, 8], [30, 40, 8]])
    lost.lose(np.array([5, 6]), Features(keypoints, DESCRIPTORS[:2], torch.ones(2), (WIDTH, HEIGHT)), 3)
    assert lost.ids.tolist() == [5, 6]
    lost.remember(4, _view(PAN[0]), np.zeros(0, np.int64), np.zeros((0, 2)), np.array([1]))
    assert lost.ids.tolist() == [5] and lost.points is not None
    assert lost.points.keypoints[:, :2].tolist() == [[10.0, 20.0]]
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):  # x, y, scale: not anchors of an epipolar fit
        lost.remember(5, _view(PAN[0]), np.zeros(1, np.int64), np.zeros((1, 3)), np.zeros(0, np.int64))


def test_a_lost_track_whose_id_is_taken_is_not_searched_for() -> None:
    # Two lost tracks, lost in frames 0 and 1; the first one's id was taken since (a stereo partner's).
    lost = _lost_track(0)
    lost.remember(1, _view(PAN[0]), _IN_VIEW.astype(np.int64), (SCENE + PAN[0])[_IN_VIEW], np.zeros(0, np.int64))
    other = _IN_VIEW[len(_IN_VIEW) // 2 + 3]
    keypoints = torch.from_numpy(np.column_stack([(SCENE + PAN[0])[[other]], [8.0]]).astype(np.float32))
    lost.lose(np.array([other]), Features(keypoints, DESCRIPTORS[[other]], torch.ones(1), (WIDTH, HEIGHT)), 1)
    tracked = ANCHORS[ANCHORS != other]
    assert sorted(_search(lost, tracked)[0].tolist()) == [0, 1]
    assert _search(lost, tracked, eligible=np.array([False, True]))[0].tolist() == [1]
    assert _search(lost, tracked, eligible=np.array([True, False]))[0].tolist() == [0]


@pytest.mark.parametrize("first_frame", [0, 7])
def test_lost_tracks_are_forgotten_once_found_or_lost_too_long(first_frame: int) -> None:
    # Frame numbers count on over a long sequence: what counts is how long ago, not the frame's number.
    lost = _lost_track(first_frame)
    assert lost.ids.tolist() == [LOST_POINT] and lost.points is not None and len(lost.points.keypoints) == 1
    for frame in range(first_frame + 1, first_frame + REIDENTIFY_FRAMES + 1):
        lost.remember(frame, _view(PAN[0]), ANCHORS, (SCENE + PAN[0])[ANCHORS], np.zeros(0, np.int64))
        assert lost.ids.tolist() == [LOST_POINT], "searched for in the next frame still"
    lost.remember(first_frame + REIDENTIFY_FRAMES + 1, _view(PAN[0]), ANCHORS, (SCENE + PAN[0])[ANCHORS],
                  np.zeros(0, np.int64))
    assert len(lost.ids) == 0 and lost.points is not None and len(lost.points.keypoints) == 0
    found = _lost_track(first_frame)
    found.remember(first_frame + 1, _view(PAN[1]), ANCHORS, (SCENE + PAN[1])[ANCHORS], np.array([0]))
    assert len(found.ids) == 0


def test_new_points_keep_away_from_tracked_ones_and_from_each_other() -> None:
    tracker = FlowTracker(FLOW)
    first, first_tracks = tracker.update(_detections(PAN[0], 0), _view(PAN[0]))
    tracked = first.keypoints[:, :2].numpy() + PAN[1]
    # Ahead of the scene points, best first: one 3 px from a tracked point and two 3 px apart.
    extra = np.array([tracked[0] + [3.0, 0], [151.0, 101.0], [151.0, 104.0]])
    points, tracks = tracker.update(_detections(PAN[1], 1, extra=extra), _view(PAN[1]))
    positions = points.keypoints[:, :2].numpy()
    old, new = np.isin(tracks.ids, first_tracks.ids), ~np.isin(tracks.ids, first_tracks.ids)
    assert new.any()
    gaps = np.linalg.norm(positions[new][:, None] - positions[None], axis=2)
    gaps[:, np.flatnonzero(new)] += np.eye(new.sum()) * 1e9  # a point and itself
    assert gaps.min() > 4.0
    assert (tracks.lengths[old] == 2).all() and (tracks.lengths[new] == 1).all()


def test_max_points_keeps_the_tracked_points_then_the_most_trackable_new_ones() -> None:
    tracker = FlowTracker(TrackerConfig(mode="flow", max_points=100))
    first, first_tracks = tracker.update(_detections(PAN[0], 0), _view(PAN[0]))
    shift = np.array([-30.4, 0.2])  # the left 30 px leave the view: new points take their place
    detections, image = _detections(shift, 1), _view(shift)
    points, tracks = tracker.update(detections, image)
    assert len(first) == len(points) == 100
    tracked = np.isin(tracks.ids, first_tracks.ids)
    assert tracked.sum() < 100 and tracked[:tracked.sum()].all()  # the tracked points first
    # The new ones are the most trackable detections away from the tracked points, most trackable first:
    # an eligible detection left out lies within 4 px of a kept point, or is less trackable.
    candidates = detections.keypoints[:, :2].numpy()
    kept = points.keypoints[:, :2].numpy()
    eligible = np.linalg.norm(candidates[:, None] - kept[tracked][None], axis=2).min(axis=1) > 4.0
    new_response = trackability(image, kept[~tracked])
    assert np.all(np.diff(new_response) <= 0)
    left_out = eligible & (np.linalg.norm(candidates[:, None] - kept[None], axis=2).min(axis=1) > 4.0)
    assert left_out.any() and trackability(image, candidates[left_out]).max() <= new_response.min()


def test_new_tracks_start_where_flow_can_follow_rather_than_on_flat_or_blurred_patches() -> None:
    image = _view(PAN[0])
    image[40:100, 40:100] = 128  # a flat patch
    image[140:200, 200:260] = cv2.GaussianBlur(image, (0, 0), 8.0)[140:200, 200:260]  # a smeared one
    # R2D2's best two detections on the flat and the blurred patch, a cornery one third.
    points = np.array([[70.0, 70.0], [230.0, 170.0], [_corner(image)[0], _corner(image)[1]]])
    keypoints = torch.from_numpy(np.column_stack([points, np.full(3, 8.0)]).astype(np.float32))
    detections = Features(keypoints, DESCRIPTORS[:3], torch.tensor([1.0, 0.9, 0.8]), (WIDTH, HEIGHT))
    started, _ = FlowTracker(TrackerConfig(mode="flow", max_points=1)).update(detections, image)
    assert np.array_equal(started.keypoints[:, :2].numpy(), points[2:])
    assert trackability(image, points[:2]).max() < 0.1 * trackability(image, points[2:])[0]


def _corner(image: np.ndarray) -> np.ndarray:
    """The strongest Shi-Tomasi corner of ``image`` away from its border, x, y."""
    corners = cv2.goodFeaturesToTrack(image[20:-20, 20:-20], 1, 0.01, 10)
    return corners.reshape(2) + 20


def test_ids_are_never_shared_with_the_other_trackers_of_a_sequence() -> None:
    ids = TrackIdSequence()
    left, right, descriptor = FlowTracker(FLOW, ids), FlowTracker(FLOW, ids), FeatureTracker(TrackerConfig(), ids)
    seen: list[set[int]] = [set(), set(), set()]
    for seed, shift in enumerate(PAN[:3]):
        seen[0].update(left.update(_detections(shift, seed), _view(shift))[1].ids.tolist())
        seen[1].update(right.update(_detections(shift + 0.5, seed + 10), _view(shift + 0.5))[1].ids.tolist())
        seen[2].update(descriptor.update(_detections(shift, seed + 20))[1].ids.tolist())
    left.reset()
    seen[0].update(left.update(_detections(PAN[0], 0), _view(PAN[0]))[1].ids.tolist())
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])


def test_the_image_must_be_the_features_grey_frame() -> None:
    tracker = FlowTracker(FLOW)
    with pytest.raises(ValueError, match="grey uint8"):
        tracker.update(_detections(PAN[0], 0), cv2.cvtColor(_view(PAN[0]), cv2.COLOR_GRAY2RGB))
    with pytest.raises(ValueError, match="grey uint8 image of 320x240"):
        tracker.update(_detections(PAN[0], 0), _view(PAN[0])[:100])
    with pytest.raises(ValueError, match="grey uint8"):
        tracker.update(_detections(PAN[0], 0), _view(PAN[0]).astype(np.float32))


def test_the_tracking_mode_defaults_to_descriptors_and_is_checked() -> None:
    assert TrackerConfig().mode == "descriptor"
    with pytest.raises(ValueError, match="mode"):
        TrackerConfig(mode="klt")  # type: ignore[arg-type]


TARGET = _scene_point_near(PAN[0], 160, 120)


def _with_first(features: Features, point: np.ndarray, descriptor: torch.Tensor, scale: float = 8.0) -> Features:
    """``features`` with one more detection, listed first: at ``point``, with ``descriptor`` and ``scale``."""
    keypoints = torch.cat([torch.tensor([[*point, scale]], dtype=torch.float32), features.keypoints])
    return Features(keypoints, torch.cat([descriptor[None].float(), features.descriptors]),
                    torch.cat([torch.ones(1), features.scores]), features.image_size)


def _seen_again(offset: tuple[float, float], descriptor: torch.Tensor, scale: float = 8.0,
                descriptors: torch.Tensor = DESCRIPTORS) -> Features | None:
    """TARGET tracked in the view at PAN[0]; at PAN[1] its own detection is replaced by one ``offset`` px from
    where flow takes it, listed first. TARGET's point in the second frame, None if its track ended."""
    tracker = FlowTracker(FLOW)
    points, tracks = tracker.update(_detections(PAN[0], 0, descriptors), _view(PAN[0]))
    index = np.flatnonzero(_scene_index(points.keypoints[:, :2].numpy(), PAN[0]) == TARGET)
    flowed = flow_points(_view(PAN[0]), _view(PAN[1]), points.keypoints[index, :2].numpy())[0][0]
    detections = _with_first(_detections(PAN[1], 1, descriptors, hidden=np.array([TARGET])),
                             flowed + np.float32(offset), descriptor, scale)
    after, after_tracks = tracker.update(detections, _view(PAN[1]))
    assert all(trail.shape[1] == 2 for trail in tracker.book.trails())
    kept = np.flatnonzero(after_tracks.ids == tracks.ids[index])
    return after.select(kept) if len(kept) else None


def test_a_detection_within_the_verify_radius_refutes_a_point_that_looks_different_and_one_beyond_does_not() -> None:
    other = -DESCRIPTORS[TARGET]
    # Exactly VERIFY_RADIUS_PX away (flowed x is in [128, 256): +2 px is exact in float32): within.
    assert _seen_again((VERIFY_RADIUS_PX, 0.0), other) is None
    kept = _seen_again((2.5, 0.0), other)
    assert kept is not None, "no detection of the point's own: flow alone carries it"
    torch.testing.assert_close(kept.descriptors[0], DESCRIPTORS[TARGET])  # its look as last confirmed


def test_the_confirming_detection_gives_the_point_its_look_but_not_its_position() -> None:
    kept = _seen_again((1.0, 0.5), DESCRIPTORS[TARGET], scale=16.0)  # listed first: detection 0
    assert kept is not None
    assert kept.keypoints[0, 2] == 16.0 and kept.scores[0] == 1.0
    flowed = flow_points(_view(PAN[0]), _view(PAN[1]), (SCENE[[TARGET]] + PAN[0]))[0][0]
    assert np.abs(kept.keypoints[0, :2].numpy() - flowed).max() < 0.6  # the flowed position, not the detection's


def test_descriptors_at_exactly_max_descriptor_distance_describe_one_point() -> None:
    # Unit descriptors a, b: |a - b| = sqrt(2 - 2 a.b); a.b = 0.5 is exactly the default limit of 1.0.
    descriptors = DESCRIPTORS.clone()
    descriptors[TARGET] = torch.nn.functional.one_hot(torch.tensor(0), DESCRIPTORS.shape[1]).float()
    assert FLOW.max_descriptor_distance == 1.0

    def unit(cosine: float) -> torch.Tensor:
        return torch.tensor([cosine, (1 - cosine**2) ** 0.5] + [0.0] * (DESCRIPTORS.shape[1] - 2))
    assert _seen_again((0.5, 0.0), unit(0.5), descriptors=descriptors) is not None
    assert _seen_again((0.5, 0.0), unit(0.49), descriptors=descriptors) is None
    assert _seen_again((0.5, 0.0), unit(0.9), descriptors=descriptors) is not None


def test_a_frame_without_detections_carries_the_tracked_points_by_flow() -> None:
    tracker = FlowTracker(FLOW)
    _, tracks = tracker.update(_detections(PAN[0], 0), _view(PAN[0]))
    nothing = Features(torch.zeros(0, 3), torch.zeros(0, DESCRIPTORS.shape[1]), torch.zeros(0), (WIDTH, HEIGHT))
    points, after = tracker.update(nothing, _view(PAN[1]))
    assert np.isin(tracks.ids, after.ids).mean() > 0.8 and len(points) == len(after.ids)


def test_a_frame_with_a_single_detection_still_checks_its_point() -> None:
    for descriptor, goes_on in ((DESCRIPTORS[TARGET], True), (-DESCRIPTORS[TARGET], False)):
        tracker = FlowTracker(FLOW)
        points, first = tracker.update(_detections(PAN[0], 0), _view(PAN[0]))
        target_id = first.ids[_scene_index(points.keypoints[:, :2].numpy(), PAN[0]) == TARGET][0]
        single = Features(torch.tensor([[*(SCENE[TARGET] + PAN[1]), 8.0]], dtype=torch.float32), descriptor[None],
                          torch.ones(1), (WIDTH, HEIGHT))
        _, second = tracker.update(single, _view(PAN[1]))
        assert (target_id in second.ids) == goes_on
        assert np.isin(first.ids, second.ids).mean() > 0.8  # the others go on by flow


def _only_lost_track_seen_again(descriptor: torch.Tensor) -> tuple[int, Features, Tracks]:
    """A flat patch wider than the flow's window hides TARGET alone (its neighbours lie 12 px away) in the second
    view; in the third its detection is listed first with ``descriptor``. TARGET's first id, the third frame's
    points and tracks."""
    tracker = FlowTracker(FLOW)
    points, tracks = tracker.update(_detections(PAN[0], 0), _view(PAN[0]))
    first_id = tracks.ids[_scene_index(points.keypoints[:, :2].numpy(), PAN[0]) == TARGET][0]
    image = _view(PAN[1])
    x, y = np.rint(SCENE[TARGET] + PAN[1]).astype(int)
    image[y - 11:y + 12, x - 11:x + 12] = 128
    _, hidden = tracker.update(_detections(PAN[1], 1, hidden=np.array([TARGET])), image)
    assert first_id not in hidden.ids
    detections = _with_first(_detections(PAN[2], 2, hidden=np.array([TARGET])), SCENE[TARGET] + PAN[2] + 0.2,
                             descriptor)
    return first_id, *tracker.update(detections, _view(PAN[2]))


def test_the_only_lost_track_resumes_when_its_detection_comes_first() -> None:
    first_id, points, again = _only_lost_track_seen_again(DESCRIPTORS[TARGET])
    assert first_id in again.ids
    # Flowed from where it was detected in the first frame (up to 0.5 px off the scene point there).
    assert np.abs(points.keypoints[again.ids == first_id, :2].numpy() - (SCENE[TARGET] + PAN[2])).max() < 0.6
    # Found alone, it is still checked by its detection's descriptor.
    assert first_id not in _only_lost_track_seen_again(-DESCRIPTORS[TARGET])[2].ids


def _zoomed_view(shift: np.ndarray, scale: float, centre: np.ndarray) -> np.ndarray:
    """The view at ``shift`` seen ``scale`` times as large about ``centre`` (the camera moving away: < 1)."""
    # View pixel q shows the scene point (q - centre) / scale + centre - shift, at that plus MARGIN in the texture.
    offset = -centre / scale + centre - shift + MARGIN
    to_texture = np.float32([[1 / scale, 0, offset[0]], [0, 1 / scale, offset[1]]])
    view = cv2.warpAffine(TEXTURE, to_texture, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    return view.round().clip(0, 255).astype(np.uint8)


def test_of_two_tracks_flowed_onto_one_point_the_older_keeps_it() -> None:
    tracker = FlowTracker(FLOW)
    points, first = tracker.update(_detections(PAN[0], 0), _view(PAN[0]))
    target = _scene_index(points.keypoints[:, :2].numpy(), PAN[0]) == TARGET
    older = first.ids[target][0]
    flowed = flow_points(_view(PAN[0]), _view(PAN[1]), points.keypoints[target, :2].numpy())[0][0]
    beside = flowed + np.float32([4.4, 0.0])  # a new track, just farther than NEW_POINT_SPACING_PX
    points, second = tracker.update(_detections(PAN[1], 1, extra=beside[None]), _view(PAN[1]))
    younger = second.ids[np.linalg.norm(points.keypoints[:, :2].numpy() - beside, axis=1) < 1e-3]
    assert len(younger) == 1 and younger[0] not in first.ids and older in second.ids
    # Moving away shrinks the view about TARGET: the two points come within NEW_POINT_SPACING_PX (3.7 px).
    scale, centre = 0.85, flowed
    zoomed = (SCENE + PAN[1] - centre) * scale + centre
    inside = np.flatnonzero(inside_image(zoomed, (HEIGHT, WIDTH)))
    detections = Features(torch.from_numpy(np.column_stack([zoomed, np.full(len(SCENE), 8.0)]).astype(np.float32)),
                          DESCRIPTORS, torch.ones(len(SCENE)), (WIDTH, HEIGHT)).select(inside)
    _, third = tracker.update(detections, _zoomed_view(PAN[1], scale, centre))
    assert np.isin(second.ids, third.ids).mean() > 0.5
    assert older in third.ids and younger[0] not in third.ids


def test_a_detection_exactly_new_point_spacing_from_a_tracked_point_starts_no_track() -> None:
    for gap, starts in ((NEW_POINT_SPACING_PX, False), (NEW_POINT_SPACING_PX + 0.01, True)):
        tracker = FlowTracker(FLOW)
        points, first = tracker.update(_detections(PAN[0], 0), _view(PAN[0]))
        target = _scene_index(points.keypoints[:, :2].numpy(), PAN[0]) == TARGET
        flowed = flow_points(_view(PAN[0]), _view(PAN[1]), points.keypoints[target, :2].numpy())[0][0]
        beside = flowed + np.float32([gap, 0.0])  # x in [128, 256): exact in float32
        points, second = tracker.update(_detections(PAN[1], 1, extra=beside[None]), _view(PAN[1]))
        assert first.ids[target][0] in second.ids
        assert (np.linalg.norm(points.keypoints[:, :2].numpy() - beside, axis=1) < 1e-3).any() == starts


def _lost_pair_seen_again(cosines: tuple[float, float], max_points: int = 0) -> tuple[list[bool], int]:
    """Two points (TARGET and one 60 px left of it) hidden by flat patches for a frame, then seen again with
    descriptors at ``cosines`` to their own, ``max_points`` applying in that frame. Whether each resumed, and
    how many points flow carried into that frame."""
    pair = [TARGET, _scene_point_near(PAN[0], 100, 120)]
    tracker = FlowTracker(FLOW)
    points, tracks = tracker.update(_detections(PAN[0], 0), _view(PAN[0]))
    ids = [tracks.ids[_scene_index(points.keypoints[:, :2].numpy(), PAN[0]) == point][0] for point in pair]
    image = _view(PAN[1])
    for point in pair:
        x, y = np.rint(SCENE[point] + PAN[1]).astype(int)
        image[y - 11:y + 12, x - 11:x + 12] = 128
    _, hidden = tracker.update(_detections(PAN[1], 1, hidden=np.array(pair)), image)
    assert not np.isin(ids, hidden.ids).any()
    detections = _detections(PAN[2], 2, hidden=np.array(pair))
    for point, cosine in zip(pair, cosines):
        own = DESCRIPTORS[point]
        other = DESCRIPTORS[point + 1] - own * own.dot(DESCRIPTORS[point + 1])
        look = cosine * own + (1 - cosine**2) ** 0.5 * torch.nn.functional.normalize(other, dim=0)
        detections = _with_first(detections, SCENE[point] + PAN[2] + 0.2, look)
    tracker.config = replace(tracker.config, max_points=max_points)
    _, again = tracker.update(detections, _view(PAN[2]))
    return [bool(np.isin(id_, again.ids)) for id_ in ids], int(np.isin(again.ids, hidden.ids).sum())


def test_lost_tracks_found_again_resume_most_alike_first_within_max_points() -> None:
    resumed, carried = _lost_pair_seen_again((1.0, 0.8))
    assert resumed == [True, True]
    # Room for one more than the carried points: the more alike resumes, whichever was lost first.
    assert _lost_pair_seen_again((1.0, 0.8), carried + 1)[0] == [True, False]
    assert _lost_pair_seen_again((0.8, 1.0), carried + 1)[0] == [False, True]
