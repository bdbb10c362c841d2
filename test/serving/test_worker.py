"""The inference worker without ROS: newest item first, faults cost one item, a dead or hung thread is reported."""
from __future__ import annotations

import threading

import pytest

from r2d2_ros.serving.stats import FrameDropped
from r2d2_ros.serving.worker import INTERNAL_ERROR, InferenceWorker


class Recorder:
    def __init__(self) -> None:
        self.answered: list[int] = []
        self.dropped: list[tuple[int, str]] = []
        self.done = threading.Semaphore(0)

    def answer(self, item: int) -> None:
        if item == 2:
            raise FrameDropped("size", "bad size")
        if item == 3:
            raise KeyError("a bug outside every stage")
        if item == 4:
            raise SystemExit("the thread itself ends")
        self.answered.append(item)
        self.done.release()

    def drop(self, item: int, drop: FrameDropped) -> None:
        self.dropped.append((item, drop.reason))
        self.done.release()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def _wait(recorder: Recorder, count: int = 1) -> None:
    for _ in range(count):
        assert recorder.done.acquire(timeout=10)


def test_a_fault_costs_one_item_and_the_worker_goes_on(recorder: Recorder) -> None:
    worker = InferenceWorker(recorder.answer, recorder.drop)
    worker.start()
    for item in (1, 2, 3, 5):
        worker.offer(item)
        _wait(recorder)
    assert recorder.answered == [1, 5]
    assert recorder.dropped == [(2, "size"), (3, INTERNAL_ERROR)]
    assert worker.failure(hang_timeout_s=0) is None
    assert worker.stop(1.0)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread re-raises, by design
def test_a_thread_that_ends_is_reported_with_why(recorder: Recorder) -> None:
    worker = InferenceWorker(recorder.answer, recorder.drop)
    worker.start()
    worker.offer(4)
    worker._thread.join(10)  # noqa: SLF001 (waiting for the thread's end is the point)
    assert worker.failure(hang_timeout_s=0) == "SystemExit: the thread itself ends"


def test_one_item_running_past_the_hang_timeout_is_a_hang() -> None:
    release, started = threading.Event(), threading.Event()
    now = [100.0]

    def stuck(item: int) -> None:
        started.set()
        release.wait(10)

    worker = InferenceWorker(stuck, lambda item, drop: None, clock=lambda: now[0])
    assert worker.failure(1.0) is None, "not started: nothing to report"
    worker.start()
    worker.offer(1)
    assert started.wait(10) and worker.busy
    now[0] += 1.5
    assert worker.failure(1.0).startswith("hung: one frame has run for 1.5 s")
    assert worker.failure(0.0) is None, "0 = never"
    assert not worker.stop(0.0), "still inside the item"
    assert worker.failure(1.0) is None, "stopping on request is not a failure"
    release.set()
    worker._thread.join(10)  # noqa: SLF001


def test_a_newer_item_replaces_one_not_taken_yet() -> None:
    release, started = threading.Event(), threading.Event()
    answered: list[int] = []

    def slow(item: int) -> None:
        answered.append(item)
        started.set()
        release.wait(10)

    worker = InferenceWorker(slow, lambda item, drop: None)
    worker.start()
    worker.offer(1)
    assert started.wait(10)
    assert worker.offer(2) is False and worker.offer(3) is True, "2 waited, 3 replaced it"
    release.set()
    assert worker.stop(10)
    assert answered[0] == 1 and 2 not in answered


def test_the_drop_of_a_fault_outside_every_stage_names_it(recorder: Recorder) -> None:
    drops: list[FrameDropped] = []
    done = threading.Event()
    worker = InferenceWorker(recorder.answer, lambda item, drop: (drops.append(drop), done.set()))
    assert not worker.busy, "nothing in progress before the first item"
    worker.start()
    worker.offer(3)
    assert done.wait(10)
    assert INTERNAL_ERROR == "internal_error" and drops[0].reason == "internal_error"
    assert str(drops[0]) == "internal_error: KeyError: 'a bug outside every stage'"
    assert not worker.busy, "nothing in progress once the item is answered"
    # A daemon thread named for thread dumps: a worker stuck in a driver never keeps the process alive.
    assert worker._thread.daemon and worker._thread.name == "r2d2_inference"  # noqa: SLF001
    assert worker.stop(1.0)
