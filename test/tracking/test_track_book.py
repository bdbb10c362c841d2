"""Track ids and trails over long sequences: id sequences with a start, capped trails, renamed tracks."""
from __future__ import annotations

import numpy as np
import pytest

from r2d2_ros.tracking import TrackBook, TrackIdSequence

NO_MATCHES = np.zeros((0, 2), int)


def _same_points(count: int) -> np.ndarray:
    """Every point of the previous frame is the point with the same index in this one."""
    return np.column_stack([np.arange(count), np.arange(count)])


def test_an_id_sequence_starts_where_asked_and_counts_up_across_takes() -> None:
    ids = TrackIdSequence(start=40)
    assert ids.take(3).tolist() == [40, 41, 42]
    assert ids.take(0).tolist() == [] and ids.take(2).tolist() == [43, 44]
    assert TrackIdSequence().take(2).tolist() == [0, 1], "ids start at 0 by default"


def test_a_book_takes_new_ids_from_a_shared_sequence() -> None:
    ids = TrackIdSequence(start=100)
    first, second = TrackBook(ids=ids), TrackBook(ids=ids)
    assert first.update(np.zeros((2, 2)), NO_MATCHES).ids.tolist() == [100, 101]
    assert second.update(np.zeros((1, 2)), NO_MATCHES).ids.tolist() == [102]


def test_trails_keep_the_last_twenty_positions_by_default_over_a_long_sequence() -> None:
    book = TrackBook()
    for frame in range(25):
        tracks = book.update(np.array([[frame, 2.0 * frame]]), _same_points(1) if frame else NO_MATCHES)
    assert tracks.ids.tolist() == [0] and tracks.lengths.tolist() == [25], "the length counts every frame"
    trail, = book.trails()
    np.testing.assert_array_equal(trail, [[frame, 2.0 * frame] for frame in range(5, 25)])


@pytest.mark.parametrize("trail_length", [2, 3])
def test_a_trail_length_caps_each_trail(trail_length: int) -> None:
    book = TrackBook(trail_length=trail_length)
    for frame in range(6):
        book.update(np.array([[frame, 0.0]]), _same_points(1) if frame else NO_MATCHES)
    trail, = book.trails()
    assert trail[:, 0].tolist() == list(range(6 - trail_length, 6))


def test_only_tracks_seen_twice_have_trails_and_ended_tracks_lose_theirs() -> None:
    book = TrackBook()
    book.update(np.array([[0.0, 0], [10, 0]]), NO_MATCHES)
    # Point 0 goes on, point 1 ends; a new point appears.
    tracks = book.update(np.array([[1.0, 0], [30, 30]]), np.array([[0, 0]]))
    assert tracks.ids.tolist() == [0, 2] and tracks.lengths.tolist() == [2, 1]
    trail, = book.trails()
    np.testing.assert_array_equal(trail, [[0.0, 0], [1, 0]])


def test_a_track_that_comes_back_under_a_new_id_starts_a_new_trail() -> None:
    book = TrackBook()
    book.update(np.array([[0.0, 0]]), NO_MATCHES)
    book.update(np.array([[1.0, 0]]), NO_MATCHES)  # unmatched: a new track, id 1
    tracks = book.update(np.array([[2.0, 0]]), _same_points(1))
    assert tracks.ids.tolist() == [1] and tracks.lengths.tolist() == [2]
    trail, = book.trails()
    np.testing.assert_array_equal(trail, [[1.0, 0], [2, 0]])


def test_adopted_ids_keep_their_lengths_and_trails_and_go_on_in_later_frames() -> None:
    book = TrackBook(ids=TrackIdSequence(start=10))
    book.update(np.array([[0.0, 0], [5, 5]]), NO_MATCHES)
    book.update(np.array([[1.0, 0], [6, 5]]), _same_points(2))
    adopted = book.adopt(np.array([1]), np.array([500]))
    assert adopted.ids.tolist() == [10, 500] and adopted.lengths.tolist() == [2, 2]
    later = book.update(np.array([[2.0, 0], [7, 5]]), _same_points(2))
    assert later.ids.tolist() == [10, 500] and later.lengths.tolist() == [3, 3]
    trails = sorted(book.trails(), key=lambda trail: trail[0, 0])
    np.testing.assert_array_equal(trails[1], [[5.0, 5], [6, 5], [7, 5]])


def test_adopting_an_id_a_live_track_has_is_refused_and_changes_nothing() -> None:
    book = TrackBook()
    book.update(np.array([[0.0, 0], [5, 5]]), NO_MATCHES)
    with pytest.raises(ValueError, match="^an adopted id already names another live track$"):
        book.adopt(np.array([0]), np.array([1]))
    assert book.update(np.array([[1.0, 0], [6, 5]]), _same_points(2)).ids.tolist() == [0, 1]


def test_a_new_or_reset_book_has_no_live_tracks() -> None:
    book = TrackBook()
    for _ in range(2):  # new, then reset after a frame
        nothing = book.adopt(np.zeros(0, int), np.zeros(0, int))
        assert nothing.ids.tolist() == [] and nothing.lengths.tolist() == [] and book.trails() == []
        book.update(np.array([[0.0, 0]]), NO_MATCHES)
        book.reset()
