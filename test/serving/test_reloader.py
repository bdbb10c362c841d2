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


def test_a_newer_request_during_the_settle_time_replaces_the_one_waiting() -> None:
    loaded = []
    finished = threading.Event()
    reloader = ModelReloader(lambda request: loaded.append(request) or request,
                             lambda request, model, reason: finished.set(), settle_s=1.0)
    assert not reloader.busy, "nothing requested yet"
    reloader.request("a")
    threading.Event().wait(0.2)  # the thread now waits out "a"'s settle time
    reloader.request("b")
    assert finished.wait(10)
    reloader.stop(1.0)
    assert loaded == ["b"]
    assert reloader._thread.daemon  # noqa: SLF001 (a load stuck in a driver never keeps the process alive)
    assert reloader._thread.name == "r2d2_reload"  # noqa: SLF001 (named for thread dumps, as the worker is)


def test_busy_while_loading_and_nothing_loads_after_stop() -> None:
    loading, release = threading.Event(), threading.Event()
    loaded = []

    def load(request: str) -> str:
        loaded.append(request)
        loading.set()
        release.wait(10)
        return request

    reloader = ModelReloader(load, lambda request, model, reason: None, settle_s=0.0)
    reloader.request("first")
    assert loading.wait(10) and reloader.busy, "a load in progress is busy"
    release.set()
    reloader.stop(10)
    reloader.request("after stop")
    threading.Event().wait(0.3)
    assert loaded == ["first"]
