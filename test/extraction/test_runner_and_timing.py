"""The eager PyTorch runner's precisions and the stage timer's bookkeeping (ROS-free, CPU)."""
from __future__ import annotations

import pytest
import torch

from r2d2_ros.extraction import TorchRunner
from r2d2_ros.extraction import timing
from r2d2_ros.extraction.timing import StageTimer
from r2d2_ros.model.nets import Quad_L2Net_ConfCFS


def test_the_trunk_runs_in_the_precision_asked_and_the_heads_in_fp32() -> None:
    runner = TorchRunner(Quad_L2Net_ConfCFS().eval())
    assert runner.device == torch.device("cpu") and runner.dim == 128
    assert runner.precision("fp32") == "fp32" and runner.precision("bf16") == "bf16"
    image = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            trunk, reliability, repeatability = runner(image, precision)
            assert trunk.dtype == dtype and trunk.shape == (1, 128, 32, 40)
            assert reliability.dtype == repeatability.dtype == torch.float32


def test_the_stage_timer_adds_each_stage_s_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([10.0, 10.5, 20.0, 20.25, 30.0, 31.0])  # a fake perf_counter: start and end of each stage
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    timer = StageTimer(torch.device("cpu"))
    for name in ("network", "network", "nms"):
        with timer.stage(name):
            pass
    assert dict(timer.seconds) == {"network": 0.75, "nms": 1.0}
