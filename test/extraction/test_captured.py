"""Captured pyramids (cuda_graphs) without a GPU: the CPU runs eagerly with the same features, and the
decisions (first frame eager, second captured, later replayed, failures and other runners eager, least
recently used dropped) with a stand-in for the CUDA graph. test/gpu/test_captured.py captures for real."""
from __future__ import annotations

import argparse
import gc
import logging
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from r2d2_ros.cli.common import add_extraction_arguments, extraction_config
from r2d2_ros.cli.extract import _bag_settings
from r2d2_ros.evaluation.methods import R2D2Method
from r2d2_ros.extraction import ExtractionConfig, TorchRunner, extract_multiscale, extract_multiscale_batch, captured
from r2d2_ros.extraction.captured import GraphCache, PyramidGraphs, pyramid_graphs
from r2d2_ros.extraction.timing import StageTimer
from r2d2_ros.model.nets import Quad_L2Net_ConfCFS

from ..conftest import rectangles_image

from .test_batch import CONFIG, model  # noqa: F401 (the same small pyramid and random network)


def test_on_the_cpu_cuda_graphs_run_eagerly_with_the_same_features(model: torch.nn.Module) -> None:
    images = [rectangles_image(96, 128, 40, seed=1), rectangles_image(96, 128, 40, seed=2)]
    eager = [extract_multiscale(model, image, CONFIG, return_maps=True) for image in images]
    asked = extract_multiscale_batch(model, images, CONFIG.replace(cuda_graphs=True), return_maps=True)
    alone = extract_multiscale(model, images[0], CONFIG.replace(cuda_graphs=True))
    assert len(eager[0]) > 100
    for expected, actual in zip([*eager, eager[0]], [*asked, alone]):
        for name in ("keypoints", "descriptors", "scores"):
            assert torch.equal(getattr(actual, name), getattr(expected, name)), name
    assert torch.equal(asked[1].maps.repeatability, eager[1].maps.repeatability)
    graphs = pyramid_graphs(model)
    assert graphs.replays == 0 and graphs.fallbacks == {"not on a CUDA device": 2}


def test_a_key_is_captured_on_its_second_frame() -> None:
    cache: GraphCache[str, str] = GraphCache(max_graphs=2)
    assert not cache.admit("vga")
    assert cache.admit("vga")
    assert not cache.admit("hd")  # a sighting of one key does not count for another


def test_the_least_recently_used_graph_is_dropped() -> None:
    cache: GraphCache[str, str] = GraphCache(max_graphs=2)
    assert cache.put("a", "graph a") is None
    assert cache.put("b", "graph b") is None
    assert cache.get("a") == "graph a"  # a is now more recent than b
    assert cache.put("c", "graph c") == "b"
    assert "a" in cache and "c" in cache and "b" not in cache and len(cache) == 2
    assert cache.get("b") is None


def test_a_refused_key_is_never_captured() -> None:
    cache: GraphCache[str, str] = GraphCache()
    cache.admit("vga")
    cache.refuse("vga")
    assert cache.refused("vga") and not cache.admit("vga") and not cache.admit("vga")


def test_sightings_are_bounded() -> None:
    cache: GraphCache[int, str] = GraphCache()
    for key in range(1000):  # a folder of photos, each of its own size
        cache.admit(key)
    assert not cache.admit(0)  # forgotten long ago: a first frame again
    assert cache.admit(999)


def test_at_least_one_graph() -> None:
    with pytest.raises(ValueError, match="max_graphs"):
        GraphCache(max_graphs=0)


class _Outputs(NamedTuple):
    doubled: torch.Tensor


class _FakeCapture:
    """Stands in for CapturedCall on the CPU: 'captures' by remembering compute, 'replays' by calling it."""

    captured: list[tuple[int, ...]] = []
    fail_for: tuple[int, ...] | None = None

    def __init__(self, compute, example: torch.Tensor) -> None:
        if tuple(example.shape) == self.fail_for:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.compute = compute
        self.replayed = 0
        _FakeCapture.captured.append(tuple(example.shape))

    def __call__(self, inputs: torch.Tensor) -> _Outputs:
        self.replayed += 1
        return self.compute(inputs)


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> type[_FakeCapture]:
    monkeypatch.setattr(captured, "_capturable", lambda device: True)
    monkeypatch.setattr(captured, "CapturedCall", _FakeCapture)
    monkeypatch.setattr(_FakeCapture, "captured", [])
    return _FakeCapture


def _double(inputs: torch.Tensor, timer: StageTimer | None) -> _Outputs:
    return _Outputs(inputs * 2)


def test_first_frame_eager_second_captured_then_replayed(fake_cuda: type[_FakeCapture], model: torch.nn.Module) -> None:
    graphs, runner = PyramidGraphs(), TorchRunner(model)
    frames = [torch.full((1, 3, 4, 6), float(value)) for value in range(4)]
    outputs = [graphs.run(runner, frame, "settings", _double) for frame in frames]
    assert [output.doubled[0, 0, 0, 0].item() for output in outputs] == [0.0, 2.0, 4.0, 6.0]
    assert fake_cuda.captured == [(1, 3, 4, 6)]
    assert graphs.replays == 3 and graphs.fallbacks == {"first frame of its size": 1}
    assert graphs.graphs.get(((1, 3, 4, 6), torch.float32, "settings")).replayed == 3


def test_shape_batch_and_settings_each_have_their_own_graph(fake_cuda: type[_FakeCapture],
                                                             model: torch.nn.Module) -> None:
    graphs, runner = PyramidGraphs(max_graphs=8), TorchRunner(model)
    for shape, settings in [((1, 3, 4, 6), "a"), ((1, 3, 6, 4), "a"), ((2, 3, 4, 6), "a"), ((1, 3, 4, 6), "b")]:
        for _ in range(2):
            graphs.run(runner, torch.zeros(shape), settings, _double)
    assert len(graphs.graphs) == 4 and graphs.fallbacks == {"first frame of its size": 4}


def test_sizes_beyond_the_bound_drop_the_oldest_graph(fake_cuda: type[_FakeCapture], model: torch.nn.Module) -> None:
    graphs, runner = PyramidGraphs(max_graphs=1), TorchRunner(model)
    for height in (4, 4, 6, 6, 4, 4):
        graphs.run(runner, torch.zeros(1, 3, height, 8), "settings", _double)
    # 4 captured, replaced by 6; 4 again is a first frame, then captured anew.
    assert fake_cuda.captured == [(1, 3, 4, 8), (1, 3, 6, 8), (1, 3, 4, 8)]
    assert graphs.fallbacks == {"first frame of its size": 3} and graphs.replays == 3


def test_a_failed_capture_runs_eagerly_from_then_on(fake_cuda: type[_FakeCapture], model: torch.nn.Module,
                                                    caplog: pytest.LogCaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_FakeCapture, "fail_for", (1, 3, 4, 6))
    graphs, runner = PyramidGraphs(), TorchRunner(model)
    with caplog.at_level(logging.INFO, "r2d2_ros.extraction"):
        outputs = [graphs.run(runner, torch.ones(1, 3, 4, 6), "settings", _double) for _ in range(4)]
    assert all(torch.equal(output.doubled, torch.full((1, 3, 4, 6), 2.0)) for output in outputs)
    assert fake_cuda.captured == [] and graphs.replays == 0
    assert graphs.fallbacks == {"first frame of its size": 1, "its capture failed": 3}
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "capture of the pyramid failed" in warnings[0].getMessage()


def test_other_runners_run_eagerly(fake_cuda: type[_FakeCapture]) -> None:
    class ForeignRunner:  # e.g. ONNX Runtime, which launches its own kernels
        pass

    graphs = PyramidGraphs()
    for _ in range(3):
        graphs.run(ForeignRunner(), torch.zeros(1, 3, 4, 6), "settings", _double)
    assert fake_cuda.captured == [] and graphs.fallbacks == {"ForeignRunner runs kernels PyTorch cannot capture": 3}


def test_a_replay_is_timed_as_one_stage(fake_cuda: type[_FakeCapture], model: torch.nn.Module) -> None:
    graphs, runner = PyramidGraphs(), TorchRunner(model)
    timed = []

    def compute(inputs: torch.Tensor, timer: StageTimer | None) -> _Outputs:
        timed.append(timer is not None)
        return _double(inputs, timer)

    timers = [StageTimer(torch.device("cpu")) for _ in range(3)]
    for timer in timers:
        graphs.run(runner, torch.zeros(1, 3, 4, 6), "settings", compute, timer)
    # The eager first frame is timed by stage; what is captured (here: called by each replay) is
    # untimed, the replays are timed as a whole.
    assert timed == [True, False, False]
    assert [set(timer.seconds) for timer in timers] == [set(), {"captured pyramid"}, {"captured pyramid"}]


def test_graphs_belong_to_one_network_and_go_with_it() -> None:
    first, second = Quad_L2Net_ConfCFS(), Quad_L2Net_ConfCFS()
    assert pyramid_graphs(first) is pyramid_graphs(first)
    assert pyramid_graphs(first) is not pyramid_graphs(second)
    count = len(captured._GRAPHS)
    del first
    gc.collect()
    assert len(captured._GRAPHS) == count - 1


def test_the_option_is_a_validated_setting_and_a_cli_flag() -> None:
    with pytest.raises(ValueError, match="cuda_graphs must be true or false"):
        ExtractionConfig(cuda_graphs="yes")
    parser = argparse.ArgumentParser()
    add_extraction_arguments(parser)
    assert extraction_config(parser.parse_args(["--cuda-graphs"])).cuda_graphs
    assert not extraction_config(parser.parse_args([])).cuda_graphs


def test_the_option_does_not_split_feature_caches_or_bags(random_checkpoint: Path, tmp_path: Path) -> None:
    """It changes how features are computed, not which: evaluation caches and resumed bags ignore it."""
    on = CONFIG.replace(cuda_graphs=True)
    cpu = torch.device("cpu")
    assert R2D2Method(random_checkpoint, on, cpu).key == R2D2Method(random_checkpoint, CONFIG, cpu).key
    args = argparse.Namespace(descriptor_encoding="float32")
    assert _bag_settings(args, tmp_path, "/cam/image_raw", on, random_checkpoint) == _bag_settings(
        args, tmp_path, "/cam/image_raw", CONFIG, random_checkpoint)
    assert "cuda_graphs" not in _bag_settings(args, tmp_path, "/cam/image_raw", on, random_checkpoint)["extraction"]


@pytest.mark.parametrize(("others", "remembered"), [(63, True), (64, False)])
def test_the_last_64_sightings_are_remembered(others: int, remembered: bool) -> None:
    """Both sides of the bound: a key seen once is still recognised after 63 other keys, not after 64."""
    cache: GraphCache[int, str] = GraphCache()
    for key in range(others + 1):
        cache.admit(key)
    assert cache.admit(0) == remembered


def test_four_graphs_by_default_and_the_bound_s_text() -> None:
    assert GraphCache().max_graphs == 4
    with pytest.raises(ValueError, match="^max_graphs must be at least 1, got 0$"):
        GraphCache(max_graphs=0)


def test_the_default_pyramid_graphs_keep_four_sizes(fake_cuda: type[_FakeCapture], model: torch.nn.Module) -> None:
    graphs, runner = PyramidGraphs(), TorchRunner(model)
    for width in (4, 5, 6, 7, 8):
        for _ in range(2):
            graphs.run(runner, torch.zeros(1, 3, 4, width), "settings", _double)
    assert len(graphs.graphs) == 4 and ((1, 3, 4, 4), torch.float32, "settings") not in graphs.graphs


def test_only_cuda_devices_capture() -> None:
    assert captured._capturable(torch.device("cuda")) and not captured._capturable(torch.device("cpu"))  # noqa: SLF001


def _logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    return [(record.name, record.levelno, record.getMessage()) for record in caplog.records]


def test_what_an_operator_reads_in_the_log(fake_cuda: type[_FakeCapture], model: torch.nn.Module,
                                           caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Captures and drops at INFO, first frames at DEBUG only, each other reason once at INFO, failures at WARNING."""
    name = "r2d2_ros.extraction"
    graphs, runner = PyramidGraphs(max_graphs=1), TorchRunner(model)
    with caplog.at_level(logging.DEBUG, name):
        for width in (4, 4, 6, 6):
            graphs.run(runner, torch.zeros(1, 3, 4, width), "settings", _double)
    assert _logged(caplog) == [
        (name, logging.DEBUG, "input (1, 3, 4, 4) runs eagerly: first frame of its size"),
        (name, logging.INFO, "captured the pyramid of input (1, 3, 4, 4) as a CUDA graph"),
        (name, logging.DEBUG, "input (1, 3, 4, 6) runs eagerly: first frame of its size"),
        (name, logging.INFO, "captured the pyramid of input (1, 3, 4, 6) as a CUDA graph; "
                             "dropped the least recently used one, of input (1, 3, 4, 4)"),
    ]
    caplog.clear()

    class ForeignRunner:
        pass

    foreign = (name, logging.INFO, "cuda_graphs: input (1, 3, 4, 6) runs eagerly (ForeignRunner runs kernels "
                                   "PyTorch cannot capture); further such frames are counted, not logged")
    with caplog.at_level(logging.INFO, name):
        graphs.run(ForeignRunner(), torch.zeros(1, 3, 4, 6), "settings", _double)
        assert _logged(caplog) == [foreign], "logged at its first frame"
    caplog.clear()
    monkeypatch.setattr(_FakeCapture, "fail_for", (1, 3, 2, 2))
    with caplog.at_level(logging.INFO, name):
        for _ in range(3):
            graphs.run(ForeignRunner(), torch.zeros(1, 3, 4, 6), "settings", _double)
            graphs.run(runner, torch.zeros(1, 3, 2, 2), "settings", _double)
    assert _logged(caplog) == [
        (name, logging.WARNING, "CUDA graph capture of the pyramid failed for input (1, 3, 2, 2), which runs eagerly "
                                "from now on: operation not permitted when stream is capturing"),
        (name, logging.INFO, "cuda_graphs: input (1, 3, 2, 2) runs eagerly (its capture failed); further such frames "
                             "are counted, not logged"),
    ]
