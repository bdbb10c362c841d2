"""Model reloads without ROS: on their own thread, several requests in a row load once, failures are reported."""
from __future__ import annotations

import threading

from r2d2_ros.serving.inference import ModelLoadError
from r2d2_ros.serving.reloader import ModelReloader


def test_requests_in_a_row_load_once_the_newest() -> None:
    loaded, outcomes = [], []
    finished = threading.Event()

    def load(request: str) -> str:
        loaded.append(request)
        return f"model for {request}"

    def done(request: str, model: str | None, reason: str) -> None:
        outcomes.append((request, model, reason))
        finished.set()

    reloader = ModelReloader(load, done, settle_s=0.5)
    for request in ("a", "b", "c"):
        reloader.request(request)
    assert reloader.busy
    assert finished.wait(10)
    reloader.stop(1.0)
    assert loaded == ["c"] and outcomes == [("c", "model for c", "")]


def test_a_failed_load_is_reported_and_the_thread_goes_on() -> None:
    outcomes = []
    finished = threading.Semaphore(0)

    def load(request: str) -> str:
        if request == "bad":
            raise ModelLoadError("out of memory")
        return request

    def done(request: str, model: str | None, reason: str) -> None:
        outcomes.append((request, model, reason))
        finished.release()

    reloader = ModelReloader(load, done, settle_s=0.0)
    reloader.request("bad")
    assert finished.acquire(timeout=10)
    reloader.request("good")
    assert finished.acquire(timeout=10)
    reloader.stop(1.0)
    assert outcomes == [("bad", None, "out of memory"), ("good", "good", "")]
    assert not reloader.busy


def test_a_request_during_a_load_loads_after_it() -> None:
    loading, release = threading.Event(), threading.Event()
    outcomes = []
    finished = threading.Semaphore(0)

    def load(request: str) -> str:
        loading.set()
        if request == "first":
            release.wait(10)
        return request

    def done(request: str, model: str | None, reason: str) -> None:
        outcomes.append(request)
        finished.release()

    reloader = ModelReloader(load, done, settle_s=0.0)
    reloader.request("first")
    assert loading.wait(10)
    reloader.request("second")
    reloader.request("third")
    release.set()
    assert finished.acquire(timeout=10) and finished.acquire(timeout=10)
    reloader.stop(1.0)
    assert outcomes == ["first", "third"]
