"""The trainer's parts on ten synthetic photos, each in seconds: what it holds out, how it normalises, logs,
stops, saves and resumes, and a two-step run (no ROS; the long runs are in test_trainer.py)."""
from __future__ import annotations

import logging
import math
import re
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from r2d2_ros.features import Features
from r2d2_ros.model import load_checkpoint, save_checkpoint
from r2d2_ros.model.nets import Quad_L2Net_ConfCFS
from r2d2_ros.training.data import FlowPairs, SyntheticPairs
from r2d2_ros.training.distributed import SINGLE_PROCESS, Ranks
from r2d2_ros.training.trainer import (PairForward, StepResult, Trainer, _ignore_stop_signals, _MixedPairs,
                                       _tensorboard, distractor_seed)

from .test_trainer import _rows
from .test_trainer_synthetic import _trainer, synthetic_photos  # noqa: F401 (a fixture)


class _Writer:
    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []
        self.closed = False

    def add_scalar(self, key: str, value: float, step: int) -> None:
        self.scalars.append((key, value, step))

    def close(self) -> None:
        self.closed = True


def test_every_nth_photo_is_held_out_for_validation(synthetic_photos: Path, tmp_path: Path) -> None:
    trainer = _trainer(synthetic_photos, tmp_path / "runs" / "first", "run.val_image_every=3", "run.val_pairs=4",
                       "model.reset_reliability=true")  # an output folder whose parent does not exist yet
    photos = sorted(synthetic_photos.glob("*.png"))
    assert trainer.validation_images == photos[::3]  # photos 0, 3, 6 and 9
    assert isinstance(trainer.dataset, SyntheticPairs) and trainer.dataset.images == [
        p for i, p in enumerate(photos) if i % 3]
    pairs = trainer._validation_pairs
    assert len(pairs) == 4 and all(pair["image1"].shape == (96, 96, 3) for pair in pairs)  # run.val_size
    extraction = trainer._validation_extraction
    thresholds = (extraction.reliability_threshold, extraction.repeatability_threshold)
    assert thresholds == (0, 0) and extraction.precision == "fp32"
    assert (tmp_path / "runs" / "first").is_dir() and trainer.step == 0 and trainer.best_mma == -1.0
    assert not trainer.model.clf.weight.any() and not trainer.model.clf.bias.any()
    assert trainer.optimizer.param_groups[0]["weight_decay"] == trainer.config.optim.weight_decay


def test_flow_pairs_alternate_with_synthetic_ones(synthetic_photos: Path, tmp_path: Path) -> None:
    flow = tmp_path / "flow"
    flow.mkdir()
    (flow / "pairs.txt").write_text("a.png b.png f.npy\n")
    trainer = _trainer(synthetic_photos, tmp_path / "run", f"flow_pairs=[{flow}]")
    mixed = trainer.dataset
    assert isinstance(mixed, _MixedPairs) and len(mixed) == 2**62
    assert isinstance(mixed.sources[0], SyntheticPairs) and isinstance(mixed.sources[1], FlowPairs)
    mixed.sources = [["s0", "s1", "s2"], ["f0", "f1", "f2"]]  # stand-ins: item g is source g % 2's item g // 2
    assert [mixed[g] for g in range(5)] == ["s0", "f0", "s1", "f1", "s2"]


def test_images_are_imagenet_normalised_in_channels_first_order(synthetic_photos: Path, tmp_path: Path) -> None:
    trainer = _trainer(synthetic_photos, tmp_path)
    images = torch.tensor([[[[0, 128, 255]]]], dtype=torch.uint8)  # one pixel, (B, H, W, 3)
    normalised = trainer._normalise(images)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])  # ImageNet's
    expected = (torch.tensor([0, 128, 255]) / 255 - mean) / std
    assert normalised.shape == (1, 3, 1, 1) and torch.allclose(normalised.flatten(), expected.float())
    wide = trainer._normalise(torch.zeros(2, 4, 5, 3, dtype=torch.uint8))
    assert wide.shape == (2, 3, 4, 5) and wide.is_contiguous(memory_format=torch.channels_last)


def test_both_images_of_a_pair_through_one_network() -> None:
    network = Quad_L2Net_ConfCFS().eval()
    pair = PairForward(network)
    image1, image2 = torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        out1, out2 = pair(image1, image2)
        assert torch.equal(out1.reliability, network(image1).reliability)
        assert torch.equal(out2.reliability, network(image2).reliability)


def test_rows_are_logged_with_one_header_and_finite_numbers_to_tensorboard(synthetic_photos: Path,
                                                                           tmp_path: Path) -> None:
    trainer, writer = _trainer(synthetic_photos, tmp_path), _Writer()
    trainer._log_row("metrics.csv", {"step": 5, "total": 1.5, "mean_ap": float("nan"), "note": "x"}, writer)
    trainer._log_row("metrics.csv", {"step": 10, "total": 1.25, "mean_ap": 0.5, "note": "y"}, writer)
    trainer._log_row("metrics.csv", {"step": 15, "total": 1.0, "mean_ap": 0.75, "note": "z"}, None)
    rows = _rows(tmp_path / "metrics.csv")
    assert [row["step"] for row in rows] == ["5", "10", "15"] and rows[0]["mean_ap"] == "nan"
    assert (tmp_path / "metrics.csv").read_text().count("step") == 1
    assert writer.scalars == [("total", 1.5, 5), ("total", 1.25, 10), ("mean_ap", 0.5, 10)]


def test_a_signal_or_the_time_limit_stops_and_skipped_images_add_up(synthetic_photos: Path, tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    trainer = _trainer(synthetic_photos, tmp_path)
    trainer.counters["skipped_images"] = 0
    assert not trainer._agree_to_stop(math.inf, 2) and trainer.counters["skipped_images"] == 2
    assert trainer._agree_to_stop(time.monotonic() - 1, 1) and trainer.counters["skipped_images"] == 3
    later = _trainer(synthetic_photos, tmp_path / "later")
    with caplog.at_level(logging.WARNING, logger="r2d2-train"):
        later._request_stop(15, None)
    assert caplog.messages == ["signal 15: saving a checkpoint at the end of this step"]
    assert later._stop_requested and later._agree_to_stop(math.inf, 0)


def test_validation_of_a_network_that_finds_nothing_scores_zero(synthetic_photos: Path, tmp_path: Path) -> None:
    trainer = _trainer(synthetic_photos, tmp_path, "run.val_threshold=0.99", "model.reset_reliability=true")
    # A reset reliability head says 0.5 everywhere: nothing passes 0.99, every pair scores 0.
    accuracies, counts = trainer.validation_accuracies()
    assert accuracies == [0.0, 0.0] and counts == [0, 0, 0, 0]
    assert trainer.validate() == {"val_mma3": 0.0, "val_keypoints": 0.0}
    trainer._validation_pairs = []
    assert trainer.validate() == {"val_mma3": 0.0, "val_keypoints": 0.0}


def test_checkpoints_record_the_step_and_validation_set_and_resume_from_them(
        synthetic_photos: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trainer = _trainer(synthetic_photos, tmp_path)
    trainer.train_step(next(iter(trainer._loader(0))))  # Adam's moments, to be resumed
    trainer.step, trainer.best_mma, trainer.counters["nonfinite_steps"] = 7, 0.25, 2
    trainer.save(tmp_path / "last.pt", validation_mma=0.25)
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint.meta["step"] == 7 and checkpoint.meta["val_mma3"] == 0.25 and checkpoint.extra["step"] == 7
    validation_set = checkpoint.meta["validation_set"]
    assert validation_set["images"] == [str(synthetic_photos)] and validation_set["seed"] == 0
    assert set(validation_set) == {"images", "data", "val_pairs", "val_size", "val_threshold", "val_image_every",
                                   "seed"}
    assert checkpoint.meta["counters"]["nonfinite_steps"] == 2 and checkpoint.config["run"]["steps"] == 2

    with caplog.at_level(logging.INFO, logger="r2d2-train"):
        resumed = _trainer(synthetic_photos, tmp_path, resume=True)
    assert (resumed.step, resumed.best_mma, resumed.counters["nonfinite_steps"]) == (7, 0.25, 2)
    assert caplog.messages[-1] == f"resumed from {tmp_path / 'last.pt'} at step 7"
    moments = [state["exp_avg"] for state in resumed.optimizer.state.values()]
    assert len(moments) == len(trainer.optimizer.state) > 0
    assert all(torch.equal(a, b["exp_avg"]) for a, b in zip(moments, trainer.optimizer.state.values()))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="r2d2-train"):
        other_pairs = _trainer(synthetic_photos, tmp_path / "other", "run.val_pairs=3",
                               resume_from=tmp_path / "last.pt")
    assert other_pairs.step == 7 and other_pairs.best_mma == -1.0  # validated on other pairs: chosen anew
    assert f"{tmp_path / 'last.pt'} was validated on other pairs: best.pt is chosen anew on these" in caplog.messages


def test_an_exported_checkpoint_continues_at_its_step_with_a_fresh_optimizer(
        synthetic_photos: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trainer = _trainer(synthetic_photos, tmp_path)
    save_checkpoint(tmp_path / "exported.pt", trainer.model, meta={"step": 40})
    with caplog.at_level(logging.INFO, logger="r2d2-train"):
        resumed = _trainer(synthetic_photos, tmp_path / "run", resume_from=tmp_path / "exported.pt")
    assert resumed.step == 40 and resumed.best_mma == -1.0 and not resumed.optimizer.state
    assert f"{tmp_path / 'exported.pt'} has no optimizer state: Adam restarts at step 40" in caplog.messages
    save_checkpoint(tmp_path / "no_step.pt", trainer.model)
    assert _trainer(synthetic_photos, tmp_path / "run2", resume_from=tmp_path / "no_step.pt").step == 0
    save_checkpoint(tmp_path / "no_best.pt", trainer.model, meta={"validation_set": trainer._validation_set()})
    assert _trainer(synthetic_photos, tmp_path / "run3", resume_from=tmp_path / "no_best.pt").best_mma == -1.0
    save_checkpoint(tmp_path / "n16.pt", Quad_L2Net_ConfCFS())
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path))}/n16.pt holds Quad_L2Net_ConfCFS\(\), "
                                         r"this run trains Fast_Quad_L2Net_ConfCFS\(\)$"):
        trainer.read_checkpoint(tmp_path / "n16.pt")


def test_a_two_step_run_logs_validates_and_saves(synthetic_photos: Path, tmp_path: Path) -> None:
    """Validation at step 0 (the baseline) and at the last step; metrics at the last step; last.pt and best.pt."""
    trainer = _trainer(synthetic_photos, tmp_path, "run.log_every=100", "run.checkpoint_every=100")
    last = trainer.fit()
    assert last == tmp_path / "last.pt" and trainer.step == 2 and load_checkpoint(last).extra["step"] == 2
    assert [row["step"] for row in _rows(tmp_path / "validation.csv")] == ["0", "2"]
    rows = _rows(tmp_path / "metrics.csv")
    assert [row["step"] for row in rows] == ["2"]
    row = rows[0]
    assert {"total", "ap", "mean_ap", "lr", "reliability_weight", "steps_per_s", "nonfinite_steps",
            "skipped_images"} <= set(row) and float(row["lr"]) == pytest.approx(0.001)
    assert float(row["steps_per_s"]) > 0 and np.isfinite(float(row["total"]))
    assert (tmp_path / "best.pt").is_file() and trainer.best_mma >= 0
    assert load_checkpoint(tmp_path / "best.pt").meta["val_mma3"] == trainer.best_mma


def _record_saves(trainer: Trainer, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(file name, step) of every checkpoint the trainer writes from now on (they are still written)."""
    saves: list[tuple[str, int]] = []
    save = trainer.save

    def recording(path: Path, validation_mma: float | None = None) -> None:
        saves.append((path.name, trainer.step))
        save(path, validation_mma)

    monkeypatch.setattr(trainer, "save", recording)
    return saves


def test_a_four_step_run_logs_validates_and_saves_when_due_and_a_resumed_one_goes_on(
        synthetic_photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    every_two = ["run.steps=4", "run.log_every=2", "run.val_every=2", "run.checkpoint_every=2", "optim.warmup_steps=4",
                 "loss.reliability_warmup_steps=1", "loss.reliability_ramp_steps=4"]
    trainer = _trainer(synthetic_photos, tmp_path, *every_two)
    saves, totals = _record_saves(trainer, monkeypatch), []
    train_step = trainer.train_step

    def recording_step(batch: dict[str, torch.Tensor]) -> StepResult:
        result = train_step(batch)
        totals.append(result.terms["total"])
        return result

    monkeypatch.setattr(trainer, "train_step", recording_step)
    trainer.fit()
    assert [row["step"] for row in _rows(tmp_path / "validation.csv")] == ["0", "2", "4"]
    rows = _rows(tmp_path / "metrics.csv")
    assert [row["step"] for row in rows] == ["2", "4"]
    # Each row holds the mean of the steps since the last one, the learning rate of the last step taken
    # (warm-up: lr * (s + 1) / 4 at step s) and the reliability weight it was trained with (ramp from step 1).
    assert [float(row["total"]) for row in rows] == pytest.approx([np.mean(totals[:2]), np.mean(totals[2:])])
    assert [float(row["lr"]) for row in rows] == pytest.approx([0.0005, 0.001])
    assert [float(row["reliability_weight"]) for row in rows] == [0.0, 0.5]
    assert [step for name, step in saves if name == "last.pt"] == [2, 4, 4]  # when due, and at the end
    assert {name for name, _ in saves} <= {"last.pt", "best.pt"}
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()  # written and closed by fit
    assert [event.step for event in events.Scalars("total")] == [2, 4]
    assert [event.step for event in events.Scalars("val_mma3")] == [0, 2, 4]

    resumed = _trainer(synthetic_photos, tmp_path, *every_two, "run.steps=5", resume=True)
    assert resumed.fit() == tmp_path / "last.pt" and resumed.step == 5
    # No second baseline validation at the resumed step: only the last step's.
    assert [row["step"] for row in _rows(tmp_path / "validation.csv")] == ["0", "2", "4", "5"]
    assert [row["step"] for row in _rows(tmp_path / "metrics.csv")] == ["2", "4", "5"]


@dataclass(frozen=True)
class _TwinRanks(Ranks):
    """Two ranks with the same loss, without a process group: a sum over them is twice this rank's values."""

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        return values * 2


class _Clock:
    """Stands in for the trainer's ``time`` module: a monotonic clock that moves only when told."""

    strftime = staticmethod(time.strftime)

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


class _Progress:
    """Stands in for tqdm's progress bar (which shows nothing where stderr is not a terminal, as in tests)."""

    def __init__(self, **options: object) -> None:
        self.options, self.postfix, self.closed = options, {}, False
        self.n = int(options["initial"])

    def update(self, steps: int) -> None:
        self.n += steps

    def set_postfix(self, **values: str) -> None:
        self.postfix = values

    def close(self) -> None:
        self.closed = True


def _stand_in_progress(monkeypatch: pytest.MonkeyPatch) -> list[_Progress]:
    bars: list[_Progress] = []

    def progress(**options: object) -> _Progress:
        bars.append(_Progress(**options))
        return bars[-1]

    monkeypatch.setattr("r2d2_ros.training.trainer.tqdm", progress)
    return bars


def _constant_step(batch: dict[str, torch.Tensor]) -> StepResult:
    return StepResult({"total": 1.0, "mean_ap": 0.5}, skipped=False)


@pytest.mark.parametrize("seconds_per_step", [20.25, 30.0])
def test_the_time_limit_stops_after_the_step_that_passes_it_with_a_checkpoint(
        synthetic_photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        seconds_per_step: float) -> None:
    """A one-minute limit on a run resumed at step 1: 20.25 s steps pass it at 60.75 s, 30 s steps reach it
    exactly at 60 s (not past it) and pass it at 90 s; either way the run stops after step 4 with last.pt."""
    trainer = _trainer(synthetic_photos, tmp_path, "run.steps=10", "run.time_limit_minutes=1", "run.log_every=1",
                       "run.checkpoint_every=100")
    trainer.step = 1  # as resumed: no baseline validation, and the speed counts the steps of this chunk only
    clock = _Clock(1000.0)
    monkeypatch.setattr("r2d2_ros.training.trainer.time", clock)

    def timed_step(batch: dict[str, torch.Tensor]) -> StepResult:
        clock.now += seconds_per_step
        return _constant_step(batch)

    monkeypatch.setattr(trainer, "train_step", timed_step)
    saves, writer, bars = _record_saves(trainer, monkeypatch), _Writer(), _stand_in_progress(monkeypatch)
    monkeypatch.setattr("r2d2_ros.training.trainer._tensorboard", lambda output: writer)
    with caplog.at_level(logging.INFO, logger="r2d2-train"):
        assert trainer.fit() == tmp_path / "last.pt" and trainer.step == 4
    assert saves == [("last.pt", 4), ("last.pt", 4)]  # at the stop, and on leaving the loop
    assert "time limit of 1 minutes reached at step 4" in caplog.messages
    rows = _rows(tmp_path / "metrics.csv")
    assert [row["step"] for row in rows] == ["2", "3", "4"] and not (tmp_path / "validation.csv").exists()
    assert [float(row["steps_per_s"]) for row in rows] == pytest.approx([1 / seconds_per_step] * 3)
    assert writer.closed and [step for key, _, step in writer.scalars if key == "total"] == [2, 3, 4]
    (bar,) = bars
    assert bar.options == {"total": 10, "initial": 1, "desc": "r2d2-train", "unit": "step", "disable": None}
    assert bar.n == 4 and bar.postfix == {"loss": "1.000", "ap": "0.500"} and bar.closed


def test_another_rank_trains_without_a_progress_bar_logs_or_checkpoints(synthetic_photos: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = _trainer(synthetic_photos, tmp_path / "rank1", ranks=_TwinRanks(1, 2, 0, False))
    assert trainer._validation_pairs == []  # rank 0 alone validates
    monkeypatch.setattr(trainer, "train_step", _constant_step)
    bars = _stand_in_progress(monkeypatch)
    assert trainer.fit() == tmp_path / "rank1" / "last.pt" and trainer.step == 2
    assert bars[0].options["disable"] is True and not (tmp_path / "rank1").exists()


def test_best_pt_is_written_only_when_the_score_improves(synthetic_photos: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    trainer = _trainer(synthetic_photos, tmp_path)
    saves = _record_saves(trainer, monkeypatch)
    scores = iter([0.0, 0.25, 0.25, 0.5, 0.375])
    monkeypatch.setattr(trainer, "validate", lambda: {"val_mma3": next(scores), "val_keypoints": 10.0})
    with caplog.at_level(logging.INFO, logger="r2d2-train"):
        for step in range(5):
            trainer.step = step
            trainer._validate_and_keep_best(None)
    assert saves == [("best.pt", 0), ("best.pt", 1), ("best.pt", 3)]  # 0 beats the initial -1; ties do not count
    assert caplog.messages[-1] == "step 4: validation MMA@3 0.3750 (best 0.5000), 10 keypoints per image"
    assert trainer.best_mma == 0.5 and load_checkpoint(tmp_path / "best.pt").meta["val_mma3"] == 0.5
    assert [row["val_mma3"] for row in _rows(tmp_path / "validation.csv")] == ["0.0", "0.25", "0.25", "0.5", "0.375"]


def test_a_validation_photo_that_cannot_be_read_is_skipped_and_counted(synthetic_photos: Path,
                                                                       tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(synthetic_photos, photos)
    (photos / "a_corrupt.png").write_bytes(b"not a png")  # first in sorted order: a validation photo
    # Validation pairs larger than any source side the training data allows (128): sources are enlarged to fit.
    trainer = _trainer(photos, tmp_path / "run", "run.val_image_every=5", "run.val_pairs=4", "run.val_size=160")
    assert trainer.validation_images == [photos / "a_corrupt.png", photos / "photo4.png", photos / "photo9.png"]
    assert trainer.counters["skipped_images"] == 2  # pairs 0 and 3 come from the corrupt photo
    assert [pair["image1"].shape for pair in trainer._validation_pairs] == [(160, 160, 3)] * 2


def test_checkpoints_say_when_they_were_saved(synthetic_photos: Path, tmp_path: Path) -> None:
    trainer = _trainer(synthetic_photos, tmp_path)
    trainer.save(tmp_path / "last.pt")
    saved_at = load_checkpoint(tmp_path / "last.pt").meta["saved_at"]
    assert time.strptime(saved_at, "%Y-%m-%dT%H:%M:%S")  # ISO 8601, to the second


def test_distractor_seeds_differ_for_every_step_rank_and_seed() -> None:
    assert distractor_seed(0, 5, 0) == 5  # rank 0 of seed 0: the step itself, as a single process draws
    assert distractor_seed(2, 0, 0) == 2 * 1_000_003 and distractor_seed(0, 0, 3) == 3 * 2**40
    seeds = {distractor_seed(seed, step, rank) for seed in range(3) for step in range(0, 10**6, 997)
             for rank in range(4)}
    assert len(seeds) == 3 * len(range(0, 10**6, 997)) * 4


def test_data_workers_leave_stop_signals_to_the_main_process() -> None:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _ignore_stop_signals(0)
        assert [signal.getsignal(sig) for sig in previous] == [signal.SIG_IGN, signal.SIG_IGN]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_tensorboard_logging_is_optional(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    writer = _tensorboard(tmp_path)
    writer.add_scalar("total", 1.0, 0)
    writer.close()
    assert list((tmp_path / "tensorboard").iterdir())  # an event file
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if the package were not installed
    with caplog.at_level(logging.INFO, logger="r2d2-train"):
        assert _tensorboard(tmp_path / "without") is None
    assert caplog.messages == ["tensorboard is not installed: logging to metrics.csv only"]
    assert not (tmp_path / "without").exists()


def test_the_precision_is_logged_and_used_for_the_forward_pass(synthetic_photos: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr("r2d2_ros.device.cpu_has_native_bf16", lambda cpuinfo=None: True)
    expected = {"none": ("device cpu, autocast off (fp32)", False),
                "bf16": ("device cpu, autocast torch.bfloat16", True),  # asked for: no note on the CPU's bf16
                "auto": ("device cpu, autocast torch.bfloat16 (amp=auto: native bf16 on this CPU)", True)}
    for amp, (message, autocast) in expected.items():
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="r2d2-train"):
            trainer = _trainer(synthetic_photos, tmp_path / amp, f"run.amp={amp}")
        assert caplog.messages == [message] and not trainer.scaler.is_enabled()  # loss scaling is for fp16 only
        seen = []
        pair_forward = trainer.pair_forward

        def recording_forward(image1: torch.Tensor, image2: torch.Tensor):  # noqa: ANN202
            seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
            return pair_forward(image1, image2)

        trainer.pair_forward = recording_forward
        trainer.train_step(next(iter(trainer._loader(0))))
        assert seen[0][0] is autocast and (not autocast or seen[0][1] == torch.bfloat16), amp


def test_batch_norm_statistics_update_unless_frozen(synthetic_photos: Path, tmp_path: Path) -> None:
    for choice, updates in (("local", True), ("frozen", False)):
        trainer = _trainer(synthetic_photos, tmp_path / choice, f"run.batch_norm={choice}")
        norm = next(module for module in trainer.model.modules() if isinstance(module, nn.BatchNorm2d))
        before = norm.running_mean.clone()
        trainer.train_step(next(iter(trainer._loader(0))))
        assert (not torch.equal(norm.running_mean, before)) is updates, choice


def test_each_skipped_step_is_counted_logged_and_leaves_no_gradient(synthetic_photos: Path, tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    trainer = _trainer(synthetic_photos, tmp_path)
    trainer.step = 3
    weight = trainer.model.ops[0].weight
    weight.grad = torch.ones_like(weight)
    with caplog.at_level(logging.WARNING, logger="r2d2-train"):
        first = trainer._skip({"total": float("nan")})
        second = trainer._skip({"total": float("inf")})
    assert first.skipped and second.skipped and trainer.counters["nonfinite_steps"] == 2
    assert weight.grad is None
    assert caplog.messages == ["step 3: non-finite loss or gradient, step skipped ({'total': nan})",
                               "step 3: non-finite loss or gradient, step skipped ({'total': inf})"]


def test_the_loader_leaves_stop_signals_to_the_main_process_and_pins_memory_for_a_gpu_only(
        synthetic_photos: Path, tmp_path: Path) -> None:
    trainer = _trainer(synthetic_photos, tmp_path)
    loader = trainer._loader(0)
    assert loader.worker_init_fn is _ignore_stop_signals and loader.num_workers == 0 and loader.pin_memory is False
    trainer.device = torch.device("cuda")  # only the device's type is read: no GPU needed to build the loader
    assert trainer._loader(0).pin_memory is True


def test_the_logged_terms_are_the_means_over_the_ranks(synthetic_photos: Path, tmp_path: Path) -> None:
    single = _trainer(synthetic_photos, tmp_path / "single")
    batch = next(iter(single._loader(0)))
    twin = _trainer(synthetic_photos, tmp_path / "twin", ranks=_TwinRanks(0, 2, 0, False))
    assert single.ranks is SINGLE_PROCESS
    assert twin.train_step(batch).terms == pytest.approx(single.train_step(batch).terms)


def _features(points: list[tuple[float, float]], descriptors: torch.Tensor) -> Features:
    keypoints = torch.tensor([(x, y, 8.0) for x, y in points], dtype=torch.float32).reshape(-1, 3)
    return Features(keypoints, descriptors, torch.ones(len(points)), (96, 96))


def test_validation_scores_each_pair_by_its_mutual_matches_within_3_pixels(synthetic_photos: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-in features: image 2's points are image 1's moved by the pair's homography (x + 5, y - 2), in
    reverse order (their descriptors too), then 0, 2.9, 3.5 and 10 px off; a pair with an empty image scores 0, one
    with a single keypoint (image 1's first, moved) 1."""
    trainer = _trainer(synthetic_photos, tmp_path)
    shift = np.array([[1.0, 0, 5], [0, 1, -2], [0, 0, 1]])
    trainer._validation_pairs = [{"image1": "textured", "image2": "empty", "homography": shift},
                                 {"image1": "textured", "image2": "moved", "homography": shift},
                                 {"image1": "empty", "image2": "moved", "homography": shift},
                                 {"image1": "textured", "image2": "single", "homography": shift}]
    points = [(10.0, 10.0), (20.0, 10.0), (30.0, 10.0), (40.0, 10.0)]
    offsets = [0.0, 2.9, 3.5, 10.0]
    moved = [(x + 5 + offset, y - 2) for (x, y), offset in zip(points, offsets)][::-1]
    features = {"textured": _features(points, torch.eye(4)), "moved": _features(moved, torch.eye(4).flip(0)),
                "empty": _features([], torch.zeros(0, 4)), "single": _features([(15.0, 8.0)], torch.eye(4)[:1])}
    calls = []

    def stand_in_extraction(model: nn.Module, image: str, config: object) -> Features:
        calls.append((model, config))
        return features[image]

    monkeypatch.setattr("r2d2_ros.training.trainer.extract_multiscale", stand_in_extraction)
    trainer.model.train()
    assert trainer.validation_accuracies() == ([0.0, 0.5, 0.0, 1.0], [4, 0, 4, 4, 0, 4, 4, 1])
    assert not trainer.model.training
    assert all(model is trainer.model and config is trainer._validation_extraction for model, config in calls)
    assert trainer.validate() == pytest.approx({"val_mma3": 1.5 / 4, "val_keypoints": 21 / 8})
