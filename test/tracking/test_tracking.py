"""Tracking (ROS-free): ids persist through matches, RANSAC rejects outliers, rectification inverts distortion."""
from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros.features import Features
from r2d2_ros.matching import mutual_nearest_neighbours
from r2d2_ros.tracking import CameraModel, FeatureTracker, TrackBook, TrackerConfig, epipolar_inliers, rectify_points
from r2d2_ros.tracking.tracker import _pixel_distances, _spaced_in_order

K = np.array([[400.0, 0, 320], [0, 400, 240], [0, 0, 1]])


def _scene(count: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(-4, 4, count), rng.uniform(-3, 3, count), rng.uniform(6, 20, count)])


def _project(points: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    camera = points @ rotation.T + translation
    pixels = camera @ K.T
    return pixels[:, :2] / pixels[:, 2:]


def _features(points: np.ndarray, descriptors: torch.Tensor) -> Features:
    keypoints = torch.from_numpy(np.column_stack([points, np.full(len(points), 32.0)]).astype(np.float32))
    return Features(keypoints, descriptors, torch.linspace(1, 0.5, len(points)), (640, 480))


def test_mutual_nearest_neighbours_with_a_distance_limit() -> None:
    generator = torch.Generator().manual_seed(0)
    descriptors = torch.nn.functional.normalize(torch.randn(50, 16, generator=generator), dim=1)
    noisy = torch.nn.functional.normalize(descriptors + 0.05 * torch.randn(50, 16, generator=generator), dim=1)
    noisy[:10] = torch.nn.functional.normalize(torch.randn(10, 16, generator=generator), dim=1)  # gone, replaced
    matches = mutual_nearest_neighbours(descriptors, noisy, max_distance=0.5)
    assert set(matches[:, 0].tolist()) == set(range(10, 50)) and torch.equal(matches[:, 0], matches[:, 1])
    unlimited = mutual_nearest_neighbours(descriptors, noisy)
    assert len(unlimited) > len(matches)
    distance = (descriptors[matches[:, 0]] - noisy[matches[:, 1]]).norm(dim=1)
    assert distance.max() <= 0.5


# K as the node gets it from camera_info: a (3, 3) slice of the (3, 4) projection, not contiguous.
K_FROM_P = np.hstack([K, np.zeros((3, 1))])[:, :3]


@pytest.mark.parametrize("camera_matrix", [K, K_FROM_P, None], ids=["essential", "essential-from-P", "fundamental"])
def test_epipolar_inliers_reject_matches_off_the_motion(camera_matrix: np.ndarray | None) -> None:
    scene = _scene()
    rotation = cv2.Rodrigues(np.array([0.0, 0.05, 0.01]))[0]
    first, second = _project(scene, np.eye(3), np.zeros(3)), _project(scene, rotation, np.array([0.3, 0.0, 0.1]))
    second[:30] += np.random.default_rng(1).uniform(15, 40, (30, 2))  # 10% wrong matches
    inliers = epipolar_inliers(first, second, camera_matrix)
    assert not inliers[:30].any()
    assert inliers[30:].mean() > 0.95
    assert not epipolar_inliers(first[:7], second[:7]).any()  # too few to verify: nothing accepted


def test_track_book_keeps_ids_and_lengths() -> None:
    book = TrackBook(trail_length=3)
    first = book.update(np.array([[0.0, 0], [10, 0], [20, 0]]), np.zeros((0, 2), int))
    assert first.ids.tolist() == [0, 1, 2] and first.lengths.tolist() == [1, 1, 1]
    # Point 0 of frame 2 is point 2 of frame 1, point 2 is point 0; point 1 is new.
    second = book.update(np.array([[21.0, 1], [50, 50], [1, 1]]), np.array([[2, 0], [0, 2]]))
    assert second.ids.tolist() == [2, 3, 0] and second.lengths.tolist() == [2, 1, 2]
    third = book.update(np.array([[2.0, 2], [22, 2]]), np.array([[2, 0], [0, 1]]))
    assert third.ids.tolist() == [0, 2] and third.lengths.tolist() == [3, 3]
    assert sorted(map(len, book.trails())) == [3, 3]
    book.reset()
    assert book.update(np.array([[0.0, 0]]), np.zeros((0, 2), int)).ids.tolist() == [4]  # ids never reused


def test_track_book_resumes_a_lately_ended_track_under_its_id_and_nothing_else() -> None:
    book = TrackBook(resume_frames=2)
    none = np.zeros((0, 2), int)
    first = book.update(np.array([[0.0, 0], [10, 0]]), none)
    book.update(np.array([[1.0, 0], [11, 0]]), np.array([[0, 0], [1, 1]]))
    book.update(np.array([[2.0, 0]]), np.array([[0, 0]]))  # point 1 is missed, twice
    assert book.resumable(first.ids).tolist() == [False, True]  # point 0's track goes on
    book.update(np.array([[3.0, 0]]), np.array([[0, 0]]))
    # Seen in two frames, then back: a length of three, the trail goes on.
    back = book.update(np.array([[4.0, 0], [14, 0]]), np.array([[0, 0]]), resumed=np.array([[first.ids[1], 1]]))
    assert back.ids.tolist() == first.ids.tolist() and back.lengths.tolist() == [5, 3]
    assert sorted(map(len, book.trails())) == [3, 5]
    with pytest.raises(ValueError, match="resume"):  # a live track's id, for a second point
        book.update(np.array([[5.0, 0], [15, 0], [25, 0]]), np.array([[0, 0], [1, 1]]),
                    resumed=np.array([[first.ids[0], 2]]))
    for _ in range(3):  # missed three frames: more than resume_frames
        book.update(np.array([[5.0, 0]]), np.array([[0, 0]]))
    assert not book.resumable(first.ids[1:]).any()
    with pytest.raises(ValueError, match="resume"):
        book.update(np.array([[5.0, 0], [15, 0]]), np.array([[0, 0]]), resumed=np.array([[first.ids[1], 1]]))
    with pytest.raises(ValueError, match="resume"):  # an id this book never gave
        book.update(np.array([[5.0, 0], [15, 0]]), np.array([[0, 0]]), resumed=np.array([[99, 1]]))


def test_an_adopted_id_cannot_resume_as_another_point() -> None:
    book = TrackBook(resume_frames=3)
    first = book.update(np.array([[0.0, 0], [10, 0]]), np.zeros((0, 2), int))
    book.update(np.array([[1.0, 0]]), np.array([[0, 0]]))  # point 1 ends
    assert book.resumable(first.ids[1:]).all()
    book.adopt(np.array([0]), first.ids[1:])  # point 0 takes its id (a stereo partner's)
    assert not book.resumable(first.ids[1:]).any()
    with pytest.raises(ValueError, match="resume"):
        book.update(np.array([[2.0, 0], [12, 0]]), np.array([[0, 0]]), resumed=np.array([[first.ids[1], 1]]))


def test_tracker_follows_a_moving_camera_and_drops_wrong_matches() -> None:
    scene = _scene(400)
    descriptors = torch.nn.functional.normalize(torch.randn(400, 32, generator=torch.Generator().manual_seed(2)), dim=1)
    tracker = FeatureTracker(TrackerConfig(max_descriptor_distance=0.6))
    first_order = np.random.default_rng(0).permutation(400)
    for frame in range(5):
        rotation = cv2.Rodrigues(np.array([0.0, 0.02 * frame, 0.0]))[0]
        points = _project(scene, rotation, np.array([0.2 * frame, 0.0, 0.0]))
        order = first_order if frame == 0 else np.random.default_rng(frame).permutation(400)  # any order
        points = points[order]
        if frame == 4:  # 40 detections that match by descriptor but sit off the camera's motion
            points[:40] += np.random.default_rng(9).uniform(10, 30, (40, 2))
        _, tracks = tracker.update(_features(points, descriptors[order]), K)
    survivors = tracks.lengths == 5
    assert survivors.sum() >= 0.8 * 360
    id_of_scene_point = np.argsort(first_order)  # frame 0 numbered its detections in their order
    assert np.array_equal(tracks.ids[survivors], id_of_scene_point[order[survivors]])
    assert (tracks.lengths[:40] == 1).all(), "matches off the motion must start new tracks, not continue"


def test_guided_search_finds_matches_that_mutual_nearest_neighbours_missed() -> None:
    """A decoy elsewhere that resembles a point more than its true match takes its nearest neighbour;
    searching near the predicted position, on the epipolar line, finds the true match; a look-alike
    off the epipolar line is refused."""
    scene = _scene(300)
    generator = torch.Generator().manual_seed(6)
    descriptors = torch.nn.functional.normalize(torch.randn(300, 32, generator=generator), dim=1)
    rotation, translation = cv2.Rodrigues(np.array([0.0, 0.02, 0.0]))[0], np.array([0.2, 0.0, 0.0])
    first, second = _project(scene, np.eye(3), np.zeros(3)), _project(scene, rotation, translation)
    seen_again = torch.nn.functional.normalize(descriptors + 0.05 * torch.randn(300, 32, generator=generator), dim=1)
    # Points 40-59 are not detected again; a look-alike sits 5 px off each one's epipolar line instead.
    skew = np.array([[0, -translation[2], translation[1]], [translation[2], 0, -translation[0]],
                     [-translation[1], translation[0], 0]])
    fundamental = np.linalg.inv(K).T @ skew @ rotation @ np.linalg.inv(K)
    lines = np.column_stack([first, np.ones(300)]) @ fundamental.T
    second[40:60] += 5 * lines[40:60, :2] / np.linalg.norm(lines[40:60, :2], axis=1, keepdims=True)
    # Decoys of points 0-39, far from them, carry exactly their descriptors.
    decoys = np.random.default_rng(3).uniform([0, 0], [640, 480], (40, 2))
    decoys[np.linalg.norm(decoys - second[:40], axis=1) < 60] += 60
    current = _features(np.vstack([second, decoys]), torch.cat([seen_again, descriptors[:40]]))

    def track(radius: float) -> np.ndarray:
        tracker = FeatureTracker(TrackerConfig(max_descriptor_distance=0.6, guided_radius_px=radius))
        first_ids = tracker.update(_features(first, descriptors), K)[1].ids
        tracks = tracker.update(current, K)[1]
        continued = tracks.lengths == 2
        assert np.array_equal(tracks.ids[continued], first_ids[np.flatnonzero(continued)]), "same point, same id"
        assert (tracks.lengths[300:] == 1).all(), "decoys are new points"
        return continued

    without, guided = track(0.0), track(10.0)
    assert not without[:40].any() and without[60:300].mean() > 0.95
    assert guided[:40].mean() >= 0.9, "the decoyed points are found near their predicted positions"
    assert not guided[40:60].any(), "a look-alike off the epipolar line is not a match"
    assert guided[60:300].mean() > 0.95
    with pytest.raises(ValueError, match="guided_radius_px"):
        TrackerConfig(guided_radius_px=-1)


def test_guided_search_chooses_by_position_among_look_alikes() -> None:
    """R2D2's descriptors of detections a few pixels apart are nearly the same: the guided search
    takes the detection nearest to the predicted position, on the epipolar line within half the
    RANSAC threshold, not the most similar one."""
    scene = _scene(300)
    generator = torch.Generator().manual_seed(7)
    descriptors = torch.nn.functional.normalize(torch.randn(300, 32, generator=generator), dim=1)
    rotation, translation = cv2.Rodrigues(np.array([0.0, 0.03, 0.0]))[0], np.array([0.05, 0.0, 0.0])
    first, second = _project(scene, np.eye(3), np.zeros(3)), _project(scene, rotation, translation)
    skew = np.array([[0, -translation[2], translation[1]], [translation[2], 0, -translation[0]],
                     [-translation[1], translation[0], 0]])
    lines = np.column_stack([first, np.ones(300)]) @ (np.linalg.inv(K).T @ skew @ rotation @ np.linalg.inv(K)).T
    normal = lines[:, :2] / np.linalg.norm(lines[:, :2], axis=1, keepdims=True)
    along = normal @ np.array([[0.0, 1.0], [-1.0, 0.0]])
    seen_again = torch.nn.functional.normalize(descriptors + 0.1 * torch.randn(300, 32, generator=generator), dim=1)
    # Points 0-39 are re-detected with a noisy descriptor, and a decoy far away carries each one's exact
    # descriptor, so that mutual nearest neighbours miss them. 0-19 have a twin 6 px along their epipolar
    # line, more similar than their re-detection; 20-29 are re-detected 0.9 px off the line (Sampson
    # distance about 0.64: inside the 1 px RANSAC threshold, outside half of it), 30-39 0.25 px.
    second[20:30] += 0.9 * normal[20:30]
    second[30:40] += 0.25 * normal[30:40]
    twins = second[:20] + 6 * along[:20]
    twin_descriptors = torch.nn.functional.normalize(descriptors[:20] + 0.03 * torch.randn(20, 32, generator=generator),
                                                     dim=1)
    decoys = np.random.default_rng(4).uniform([0, 0], [640, 480], (40, 2))
    decoys[np.linalg.norm(decoys - second[:40], axis=1) < 60] += 60
    # The twins come first: the nearer candidate wins, not the one listed first.
    current = _features(np.vstack([twins, second, decoys]), torch.cat([twin_descriptors, seen_again, descriptors[:40]]))
    for threshold in (1.0, 2.0):
        tracker = FeatureTracker(TrackerConfig(max_descriptor_distance=0.8, ransac_threshold_px=threshold,
                                               guided_radius_px=10))
        matches = {previous: current - 20 for previous, current in
                   tracker.match(_features(first, descriptors), current, K).tolist()}
        if threshold == 1.0:
            assert sum(matches.get(i) == i for i in range(20)) >= 18, "the re-detection nearer the prediction, not the twin"
            assert not any(i in matches for i in range(20, 30)), "0.9 px off the line: not a guided match"
            assert sum(matches.get(i) == i for i in range(30, 40)) >= 9
        else:  # half of a 2 px threshold is 1 px: 0.9 px off the line is close enough (a 2 px threshold also
            # passes a few decoys that happen to lie near their epipolar lines: not asserted on here)
            assert sum(matches.get(i) == i for i in range(20, 30)) >= 9


def _camera_info(distortion_model: str, d: list[float]) -> SimpleNamespace:
    return SimpleNamespace(width=640, height=480, k=K.reshape(-1).tolist(), d=d, r=[0.0] * 9, p=[0.0] * 12,
                           distortion_model=distortion_model)


@pytest.mark.parametrize(("model", "coefficients"), [("plumb_bob", [-0.28, 0.07, 0.0002, 0.00002, 0.0]),
                                                     ("equidistant", [0.01, -0.005, 0.001, 0.0])])
def test_rectification_undoes_the_lens(model: str, coefficients: list[float]) -> None:
    camera = CameraModel.from_camera_info(_camera_info(model, coefficients))
    ideal = np.random.default_rng(3).uniform([40, 40], [600, 440], (50, 2))
    normalised = np.column_stack([(ideal - K[:2, 2]) / K[[0, 1], [0, 1]], np.zeros(50)]).reshape(-1, 1, 3)
    distort = cv2.fisheye.distortPoints if model == "equidistant" else None
    if distort is None:
        raw, _ = cv2.projectPoints(np.column_stack([normalised.reshape(-1, 3)[:, :2], np.ones(50)]),
                                   np.zeros(3), np.zeros(3), K, np.array(coefficients))
    else:
        raw = distort(normalised[:, :, :2].astype(np.float64), K, np.array(coefficients))
    raw = raw.reshape(-1, 2)
    assert np.abs(raw - ideal).max() > 1  # the lens moves points by pixels
    np.testing.assert_allclose(rectify_points(raw, camera), ideal, atol=0.05)


def test_uncalibrated_or_unknown_cameras_are_refused() -> None:
    with pytest.raises(ValueError, match="not calibrated"):
        CameraModel.from_camera_info(SimpleNamespace(**{**vars(_camera_info("plumb_bob", [])), "k": [0.0] * 9}))
    with pytest.raises(ValueError, match="not supported"):
        CameraModel.from_camera_info(_camera_info("fov", [0.9]))


def test_max_points_keeps_tracked_points_wherever_they_rank() -> None:
    """A frame keeps its tracked points first, even ranked last among the detections, then the best new ones."""
    scene = _scene(400)
    descriptors = torch.nn.functional.normalize(torch.randn(400, 32, generator=torch.Generator().manual_seed(4)), dim=1)
    tracker = FeatureTracker(TrackerConfig(max_descriptor_distance=0.6, max_points=100))
    first = _project(scene, np.eye(3), np.zeros(3))
    kept, tracks = tracker.update(_features(first, descriptors), K)
    best = _spaced_by_brute_force(first, range(400), np.zeros((0, 2)))[:100]
    assert kept.tolist() == best and tracks.lengths.tolist() == [1] * 100  # the best 100, 4 px apart

    # Frame 2: the 100 tracked points now rank last; 30 of them are not detected at all.
    second = _project(scene, cv2.Rodrigues(np.array([0.0, 0.02, 0.0]))[0], np.array([0.2, 0.0, 0.0]))
    order = np.array([i for i in range(400) if i not in best] + best[30:])
    kept, tracks = tracker.update(_features(second[order], descriptors[order]), K)
    assert np.all(np.diff(kept) > 0), "kept indices are ascending: the published keypoints stay best first"
    tracked = kept[tracks.lengths == 2]
    assert len(kept) == 100 and len(tracked) >= 65
    assert (tracked >= 300).all(), "the tracked points are the last-ranked detections"
    first_ids = {scene_point: track_id for track_id, scene_point in enumerate(best)}
    assert tracks.ids[tracks.lengths == 2].tolist() == [first_ids[i] for i in order[tracked]]  # same point, same id
    new = kept[tracks.lengths == 1]
    assert new.tolist() == _spaced_by_brute_force(second[order], range(300), second[order][tracked])[:len(new)]


def _spaced_by_brute_force(points: np.ndarray, candidates: Iterable[int], occupied: np.ndarray,
                           spacing: float = 4.0) -> list[int]:
    """The candidates, in order, farther than ``spacing`` from the occupied points and the ones taken before."""
    taken: list[int] = []
    for index in candidates:
        others = np.vstack([occupied, points[taken]])
        if not len(others) or np.linalg.norm(others - points[index], axis=1).min() > spacing:
            taken.append(index)
    return taken


def test_spacing_is_greedy_in_order_strict_and_works_on_negative_coordinates() -> None:
    """Rectified pixels can be negative; a point must lie farther than 4 px: exactly 4 px is too close."""
    points = [[-1.0, -1.0], [-1.5, -1.0], [3.0, -1.0], [-5.5, -1.0], [-3.0, 2.0], [-10.0, -1.0]]
    assert _spaced_in_order(points, 4.0, 10).tolist() == [0, 3, 5]  # 1: 0.5 px, 2: 4 px, 4: 3.6 px from point 0
    assert _spaced_in_order(points, 4.0, 2).tolist() == [0, 3]
    assert _spaced_in_order(points, 4.0, 0).tolist() == [] and _spaced_in_order([], 4.0, 5).dtype == np.int64
    rng = np.random.default_rng(6)
    cloud = rng.uniform(-30, 30, (300, 2))
    assert _spaced_in_order(cloud.tolist(), 4.0, 300).tolist() == _spaced_by_brute_force(cloud, range(300),
                                                                                        np.zeros((0, 2)))


def test_pixel_distances_are_exact_at_a_camera_s_coordinates() -> None:
    """Spacing and the guided search's nearest detection compare distances to a fraction of a pixel at
    coordinates in the thousands, where torch.cdist's default (|a|^2 + |b|^2 - 2ab) is off by ~0.2 px."""
    rng = np.random.default_rng(7)
    first, second = rng.uniform(0, [1300, 400], (400, 2)), rng.uniform(0, [1300, 400], (300, 2))
    truth = np.linalg.norm(first[:, None] - second[None], axis=2)
    distances = _pixel_distances(torch.from_numpy(first.astype(np.float32)), torch.from_numpy(second.astype(np.float32)))
    assert np.abs(distances.numpy() - truth).max() < 1e-3


def test_max_points_does_not_add_a_new_point_on_a_tracked_one_or_twice() -> None:
    """A new point within 4 px of a tracked one, or of a better new one (the same point found at another
    pyramid level), would be one scene point under two ids: neither is kept."""
    projected = _project(_scene(90), np.eye(3), np.zeros(3))
    scene = _scene(90)[_spaced_by_brute_force(projected, range(90), np.zeros((0, 2)))[:60]]  # 60 points 4 px apart
    descriptors = torch.nn.functional.normalize(torch.randn(63, 32, generator=torch.Generator().manual_seed(5)), dim=1)
    tracker = FeatureTracker(TrackerConfig(max_descriptor_distance=0.6, max_points=50))
    first = _project(scene, np.eye(3), np.zeros(3))
    tracker.update(_features(first, descriptors[:60]), K)
    second = _project(scene, cv2.Rodrigues(np.array([0.0, 0.02, 0.0]))[0], np.array([0.2, 0.0, 0.0]))[:40]
    # Three unknown points rank first: one 3 px from tracked point 0, one far from every point, and the
    # far one again 1 px away with a descriptor of its own (a coarser level's peak).
    near, far = second[0] + [3.0, 0.0], np.array([2000.0, 2000.0])
    points = np.vstack([near, far, far + [0.0, 1.0], second])
    kept, tracks = tracker.update(_features(points, descriptors[[60, 61, 62, *range(40)]]), K)
    assert (tracks.lengths[kept >= 3] == 2).all(), "the 40 re-detected points are tracked"
    assert kept.tolist() == [1, *range(3, 43)], "only the far new point is kept"
    with pytest.raises(ValueError, match="max_points"):
        TrackerConfig(max_points=-1)


def test_tracker_config_limits_on_both_sides() -> None:
    TrackerConfig(max_descriptor_distance=2.0, ransac_threshold_px=0.01, trail_length=2)  # the extremes allowed
    for bad in ({"max_descriptor_distance": 0.0}, {"max_descriptor_distance": 2.01}, {"ransac_threshold_px": 0.0},
                {"ransac_threshold_px": -1.0}, {"trail_length": 1}):
        with pytest.raises(ValueError):
            TrackerConfig(**bad)


def test_default_tracker_keeps_twenty_trail_positions_and_matches_within_a_cosine_of_a_half() -> None:
    # The node's documented defaults come from TrackerConfig's: descriptors at most 1.0 apart, 20-point trails.
    scene = _scene(60)
    e = torch.eye(32)
    descriptors = torch.nn.functional.normalize(torch.randn(60, 32, generator=torch.Generator().manual_seed(8)), dim=1)
    tracker = FeatureTracker()
    first = tracker.update(_features(_project(scene, np.eye(3), np.zeros(3)), descriptors), K)[1]
    for frame in range(1, 25):
        _, tracks = tracker.update(_features(_project(scene, np.eye(3), np.array([0.01 * frame, 0, 0])), descriptors), K)
    assert (tracks.ids == first.ids).all() and max(len(trail) for trail in tracker.book.trails()) == 20
    # Point 0 looks like e0, then like a unit vector at cosine 0.5 (distance exactly 1.0), then at 0.49; the
    # other points' descriptors have nothing along e0 or e1.
    looks = descriptors.clone()
    looks[:, :2] = 0
    looks = torch.nn.functional.normalize(looks, dim=1)
    looks[0] = e[0]
    for cosine, continues in ((0.5, True), (0.49, False)):
        tracker = FeatureTracker()
        ids = tracker.update(_features(_project(scene, np.eye(3), np.zeros(3)), looks), K)[1].ids
        again = looks.clone()
        again[0] = cosine * e[0] + (1 - cosine**2) ** 0.5 * e[1]
        tracks = tracker.update(_features(_project(scene, np.eye(3), np.array([0.05, 0, 0])), again), K)[1]
        assert (tracks.ids[0] == ids[0]) == continues


def test_a_reset_tracker_starts_over_with_new_ids() -> None:
    scene = _project(_scene(60), np.eye(3), np.zeros(3))
    descriptors = torch.nn.functional.normalize(torch.randn(60, 32, generator=torch.Generator().manual_seed(9)), dim=1)
    tracker = FeatureTracker()
    first = tracker.update(_features(scene, descriptors), K)[1]
    tracker.reset()
    again = tracker.update(_features(scene, descriptors), K)[1]
    assert not np.isin(again.ids, first.ids).any() and (again.lengths == 1).all()


def test_a_single_candidate_match_is_not_accepted_unverified() -> None:
    # One descriptor pair alone agrees: too few for the epipolar check, so no match (a new track).
    scene = _project(_scene(20), np.eye(3), np.zeros(3))
    generator = torch.Generator().manual_seed(10)
    descriptors = torch.nn.functional.normalize(torch.randn(20, 32, generator=generator), dim=1)
    others = torch.nn.functional.normalize(torch.randn(20, 32, generator=generator), dim=1)
    others[0] = descriptors[0]
    for radius in (0.0, 10.0):
        tracker = FeatureTracker(TrackerConfig(max_descriptor_distance=0.6, guided_radius_px=radius))
        tracker.update(_features(scene, descriptors), K)
        assert len(tracker.match(_features(scene, descriptors), _features(scene + 1.0, others), K)) == 0
        assert (tracker.update(_features(scene + 1.0, others), K)[1].lengths == 1).all()


def _one_look_alike(cosine: float, radius: float | None = 10.0, scene: np.ndarray | None = None,
                    translation: tuple[float, float, float] = (0.2, 0.0, 0.0)) -> dict[int, int]:
    """Point 0 (descriptor e0) is re-detected looking more like point 1 (e1, re-detected as itself): at
    ``cosine`` to e0 and 0.866 to e1 or more, so mutual nearest neighbours miss it and it is the only
    unmatched point of either frame. The tracker's matches, previous index -> current index; the current
    frame lists its detections in reverse order. ``radius`` None: the default configuration's."""
    scene = _scene(300) if scene is None else scene
    e = torch.eye(32)
    descriptors = torch.nn.functional.normalize(torch.randn(300, 32, generator=torch.Generator().manual_seed(11)), dim=1)
    descriptors[0], descriptors[1] = e[0], e[1]
    again = descriptors.clone()
    again[0] = cosine * e[0] + (1 - cosine**2) ** 0.5 * e[1]
    first = _project(scene, np.eye(3), np.zeros(3))
    second = _project(scene, cv2.Rodrigues(np.array([0.0, 0.02, 0.0]))[0], np.array(translation))
    reverse = np.arange(300)[::-1].copy()
    tracker = FeatureTracker(TrackerConfig() if radius is None else TrackerConfig(guided_radius_px=radius))
    matches = tracker.match(_features(first, descriptors), _features(second[reverse], again[reverse]), K)
    return {int(previous): int(reverse[current]) for previous, current in matches}


def test_guided_search_takes_the_only_unmatched_detection_if_alike_at_the_descriptor_limit() -> None:
    assert _one_look_alike(0.5, radius=0.0) == {i: i for i in range(1, 300)}, "mutual nearest neighbours miss point 0"
    assert _one_look_alike(0.5) == {i: i for i in range(300)}  # distance exactly 1.0: alike
    assert _one_look_alike(0.49) == {i: i for i in range(1, 300)}  # farther: not the same point


def test_guided_search_adds_nothing_when_every_point_is_matched() -> None:
    scene = _scene(100)
    descriptors = torch.nn.functional.normalize(torch.randn(100, 32, generator=torch.Generator().manual_seed(12)), dim=1)
    tracker = FeatureTracker(TrackerConfig(guided_radius_px=10.0))
    first = _project(scene, np.eye(3), np.zeros(3))
    second = _project(scene, np.eye(3), np.array([0.1, 0.0, 0.0]))
    matches = tracker.match(_features(first, descriptors), _features(second, descriptors), K)
    assert sorted(map(tuple, matches.tolist())) == [(i, i) for i in range(100)]


def test_guided_search_predicts_from_the_nearest_neighbours_motion() -> None:
    # Two depths: a near wall left (z = 5: 40 px of motion), far points right (z = 40: 5 px). Point 0 is on
    # the near wall; the frame's median motion would put it 35 px off, its neighbours' within pixels.
    rng = np.random.default_rng(13)
    near = np.column_stack([rng.uniform(-2.5, -0.2, 100), rng.uniform(-1.8, 1.8, 100), np.full(100, 5.0)])
    far = np.column_stack([rng.uniform(0.5, 20, 200), rng.uniform(-14, 14, 200), rng.uniform(38, 42, 200)])
    scene = np.vstack([near, far])
    assert _one_look_alike(0.5, scene=scene, translation=(0.5, 0.0, 0.0)) == {i: i for i in range(300)}


def test_guided_search_within_a_radius_of_one_pixel() -> None:
    # A small baseline: every point moves alike to within a pixel, so the prediction lands within 1 px.
    assert _one_look_alike(0.5, radius=1.0, translation=(0.005, 0.0, 0.0)) == {i: i for i in range(300)}
    assert _one_look_alike(0.5, radius=None, translation=(0.005, 0.0, 0.0)) == {i: i for i in range(1, 300)}, \
        "the guided search is off by default"
    assert _one_look_alike(0.5, radius=1.0) == {i: i for i in range(1, 300)}, "the 0.2 m baseline: pixels off"


def test_max_points_keeps_a_new_point_only_farther_than_the_spacing_from_a_tracked_one() -> None:
    # Quarter-pixel positions: a detection exactly 4 px from a tracked one is exactly 4 px away in float32.
    scene = _scene(60)
    descriptors = torch.nn.functional.normalize(torch.randn(61, 32, generator=torch.Generator().manual_seed(14)), dim=1)
    first = np.round(_project(scene, np.eye(3), np.zeros(3)) * 4) / 4
    second = np.round(_project(scene, cv2.Rodrigues(np.array([0.0, 0.02, 0.0]))[0], np.array([0.2, 0.0, 0.0])) * 4) / 4
    for gap, kept_too in ((4.0, False), (4.25, True)):
        tracker = FeatureTracker(TrackerConfig(max_descriptor_distance=0.6, max_points=100))
        tracker.update(_features(first, descriptors[:60]), K)
        beside = second[0] + [0.0, gap]
        if np.linalg.norm(second[1:] - beside, axis=1).min() <= 4.5:
            beside = second[0] - [0.0, gap]
        kept, tracks = tracker.update(_features(np.vstack([beside, second]), descriptors[[60, *range(60)]]), K)
        assert (tracks.lengths[kept >= 1] == 2).mean() > 0.9
        assert (0 in kept) == kept_too


def test_mutual_nearest_neighbours_edge_cases() -> None:
    one = torch.tensor([[1.0, 0.0]])
    two = torch.tensor([[0.0, 1.0], [0.8, 0.6]])
    assert mutual_nearest_neighbours(one, two).tolist() == [[0, 1]]  # a single descriptor on either side
    assert mutual_nearest_neighbours(two, one).tolist() == [[1, 0]]
    for empty in (mutual_nearest_neighbours(one[:0], two), mutual_nearest_neighbours(two, one[:0])):
        assert empty.shape == (0, 2) and empty.dtype == torch.long
    # |a - b| = sqrt(2 - 2 * 0.8) = 0.632: within 0.65, not within 0.6 (a limit of d allows cos >= 1 - d^2 / 2).
    assert mutual_nearest_neighbours(one, two, max_distance=0.65).tolist() == [[0, 1]]
    assert mutual_nearest_neighbours(one, two, max_distance=0.6).tolist() == []


def test_mutual_nearest_neighbours_among_allowed_pairs_only() -> None:
    left = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    right = torch.tensor([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]])
    everything = torch.ones(3, 3, dtype=torch.bool)
    assert sorted(mutual_nearest_neighbours(left, right, allowed=everything).tolist()) == [[0, 1], [1, 2], [2, 0]]
    # Left 0 may not pair with its twin (right 1): it takes the nearest allowed one, if that one agrees.
    allowed = everything.clone()
    allowed[0, 1] = False
    assert sorted(mutual_nearest_neighbours(left, right, allowed=allowed).tolist()) == [[1, 2], [2, 0]]
    # A left point with no allowed pair at all pairs with nothing (its "nearest" would be arbitrary).
    allowed = everything.clone()
    allowed[2] = False
    allowed[:, 0] = False
    assert sorted(mutual_nearest_neighbours(left, right, allowed=allowed).tolist()) == [[0, 1], [1, 2]]
    nothing = torch.zeros(3, 3, dtype=torch.bool)
    assert mutual_nearest_neighbours(left, right, allowed=nothing).tolist() == []
