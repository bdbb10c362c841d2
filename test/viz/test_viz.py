"""Pictures for people: heatmap colours, display conversion, keypoint and track drawings (no ROS)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from r2d2_ros.viz import COLORMAPS, colorize_heatmap, draw_keypoints, draw_tracks, to_display_rgb


def test_heatmap_levels_round_to_the_nearest_grey() -> None:
    """Values clip to [0, 1] (NaN as 0) and scale to 0-255, rounded: 0.5/255 is the first value shown as 1."""
    heatmap = np.array([[-1.0, 0.0, 0.49 / 255, 0.51 / 255, 0.5, 1.0, 2.0, np.nan]], np.float32)
    grey = colorize_heatmap(heatmap, "gray")
    assert grey.shape == (1, 8, 3) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey[0, :, 0], [0, 0, 0, 1, 128, 255, 255, 0])
    assert (grey == grey[:, :, :1]).all()  # grey in all three channels


@pytest.mark.parametrize("name", [name for name in COLORMAPS if name != "gray"])
def test_colour_maps_are_opencvs_in_rgb(name: str) -> None:
    heatmap = np.linspace(0, 1, 256, dtype=np.float32)[None]
    expected = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[None], COLORMAPS[name])[:, :, ::-1]
    np.testing.assert_array_equal(colorize_heatmap(heatmap, name), expected)
    assert name != "turbo" or (tuple(colorize_heatmap(np.ones((1, 1)))[0, 0]) == tuple(expected[0, -1]))  # the default


def test_colour_map_names_and_heatmap_shapes_are_checked() -> None:
    assert set(COLORMAPS) == {"turbo", "jet", "inferno", "viridis", "magma", "gray"}
    with pytest.raises(ValueError, match="unknown colour map 'hot'; use one of turbo, jet"):
        colorize_heatmap(np.zeros((2, 2)), "hot")
    with pytest.raises(ValueError, match=r"expected an \(H, W\) heatmap, got \(2, 2, 1\)"):
        colorize_heatmap(np.zeros((2, 2, 1)))


def test_display_rgb_of_every_input_kind() -> None:
    grey16 = np.array([[0, 255, 256, 65535]], np.uint16)
    shifted = np.array([[0, 0, 1, 255]], np.uint8)  # the high byte
    np.testing.assert_array_equal(to_display_rgb(grey16), np.repeat(shifted[..., None], 3, axis=2))
    floats = np.array([[-0.5, 0.0, 0.49 / 255, 0.51 / 255, 1.0, 1.5]], np.float32)
    np.testing.assert_array_equal(to_display_rgb(floats)[0, :, 1], [0, 0, 0, 1, 255, 255])
    one_channel = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    np.testing.assert_array_equal(to_display_rgb(one_channel), np.repeat(one_channel, 3, axis=2))
    rgba = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(to_display_rgb(rgba), rgba[:, :, :3])
    rgb = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    assert to_display_rgb(rgb) is rgb or np.array_equal(to_display_rgb(rgb), rgb)


def test_keypoints_drawn_as_circles_whose_radius_follows_the_scale() -> None:
    image = np.zeros((80, 120), np.uint8)
    # scale 8 -> radius 1, 40 -> 5, 1000 -> capped at 12 (or max_radius); x, y rounded to the nearest pixel
    keypoints = np.array([[20.4, 20.6, 8.0], [60.0, 40.0, 40.0], [100.0, 50.0, 1000.0]], np.float32)
    drawn = draw_keypoints(image, keypoints)
    expected = np.zeros((80, 120, 3), np.uint8)
    for (x, y), radius in zip([(20, 21), (60, 40), (100, 50)], [1, 5, 12]):
        cv2.circle(expected, (x, y), radius, (0, 255, 0), 1, cv2.LINE_AA)
    np.testing.assert_array_equal(drawn, expected)
    capped = draw_keypoints(image, keypoints, max_radius=6)
    smaller = np.zeros((80, 120, 3), np.uint8)
    for (x, y), radius in zip([(20, 21), (60, 40), (100, 50)], [1, 5, 6]):
        cv2.circle(smaller, (x, y), radius, (0, 255, 0), 1, cv2.LINE_AA)
    np.testing.assert_array_equal(capped, smaller)
    tiny = draw_keypoints(image, np.array([[60.0, 40.0, 1.0]], np.float32))  # below scale 8: still radius 1
    np.testing.assert_array_equal(tiny, cv2.circle(np.zeros((80, 120, 3), np.uint8), (60, 40), 1, (0, 255, 0), 1,
                                                   cv2.LINE_AA))
    assert not image.any(), "the image itself is not drawn on"


def test_keypoint_colours_follow_their_scores() -> None:
    keypoints = np.array([[20.0, 20.0, 16.0], [60.0, 20.0, 16.0]], np.float32)
    drawn = draw_keypoints(np.zeros((40, 80, 3), np.uint8), keypoints, np.array([0.0, 1.0]))
    expected = np.zeros((40, 80, 3), np.uint8)
    for x, colour in zip((20, 60), colorize_heatmap(np.array([[0.0, 1.0]], np.float32))[0]):  # turbo's ends
        cv2.circle(expected, (x, 20), 2, tuple(int(c) for c in colour), 1, cv2.LINE_AA)
    np.testing.assert_array_equal(drawn, expected)
    empty = draw_keypoints(np.full((4, 4), 9, np.uint8), np.zeros((0, 3)), np.zeros(0))
    np.testing.assert_array_equal(empty, np.full((4, 4, 3), 9, np.uint8))


def _expected_tracks(image: np.ndarray, trails: list[list[tuple[int, int]]], colour: tuple[int, int, int]
                     ) -> np.ndarray:
    expected = image.copy()
    for trail in trails:
        cv2.polylines(expected, [np.array(trail, np.int32).reshape(-1, 1, 2)], False, colour, 1, cv2.LINE_AA)
        cv2.circle(expected, trail[-1], 2, (0, 255, 0), -1, cv2.LINE_AA)
    return expected


def test_tracks_drawn_as_trails_ending_in_a_dot() -> None:
    """Trails rounded to the nearest pixel, oldest point first, a green dot at the newest."""
    image = np.zeros((40, 60, 3), np.uint8)
    trails = [np.array([[5.2, 5.0], [25.0, 5.0], [25.0, 30.4]]), np.array([[50.0, 35.0]])]
    rounded = [[(5, 5), (25, 5), (25, 30)], [(50, 35)]]
    np.testing.assert_array_equal(draw_tracks(image, trails), _expected_tracks(image, rounded, (255, 64, 0)))
    np.testing.assert_array_equal(draw_tracks(image, trails, (0, 0, 255)),
                                  _expected_tracks(image, rounded, (0, 0, 255)))
    assert draw_tracks(image, trails)[30, 25, 1] > draw_tracks(image, trails)[5, 5, 1]  # the dot at the newest point
    assert not image.any()
