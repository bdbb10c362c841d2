"""Data-parallel training on two gloo ranks: the same weights on both, the same as one process, resumable
at another world size, and one stop for all.

Equivalence with one process needs a loss that splits over the batch: batch-norm frozen (its running
statistics, not the slice's), no distractors (drawn across the whole batch) and homographies that keep
every query inside image 2 (so each pair weighs the same in every mean). What is left is floating-point
summation order (gradients summed over ranks rather than within one batch). Adam divides each gradient
by its own running magnitude, which turns rounding in a near-zero gradient into up to a whole step of
that weight; measured: one process at 1 and at 2 threads differs by up to 7e-4 after 4 steps of ~4e-3,
2 ranks and 1 process (1 thread each) by at most 2.1e-5, 5e-7 in the mean. Hence the two bounds below.
"""
from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from r2d2_ros.cli.train import main as train_main
from r2d2_ros.model import load_checkpoint
from r2d2_ros.training import Trainer, load_config
from r2d2_ros.training.trainer import StepResult
from r2d2_ros.training.distributed import SINGLE_PROCESS, Ranks, ShardedSteps, from_environment, resolve_batch_norm

from .test_trainer import REPO, TINY
from .test_trainer_synthetic import synthetic_photos  # noqa: F401 (a fixture)

WORLD_SIZE = 2
STEPS = 4
SPLITTABLE = [*TINY, "run.batch_size=4", "run.batch_norm=frozen", "loss.distractors_per_image=0",
              "data.homography.max_log2_scale=0", "data.homography.max_log2_aspect=0",
              "data.homography.rotation_probability=0", "data.homography.max_tilt=0",
              "data.homography.max_translation=0", "run.val_pairs=2", "run.val_every=100", "run.checkpoint_every=1"]
MAX_DIFFERENCE = 1e-4  # any one weight (a step is 1e-3)
MEAN_DIFFERENCE = 2e-6  # over each tensor


def _overrides(photos: Path, output: Path, steps: int = STEPS) -> list[str]:
    return [f"images=[{photos}]", f"run.output={output}", *SPLITTABLE, f"run.steps={steps}"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rank(rank: int, port: int, overrides: list[str], stop_after_step: int | None, results: Path) -> None:
    """One torchrun-like rank: trains, then writes its weights and final step to ``results/rank<r>.pt``."""
    torch.set_num_threads(1)
    environment = {"RANK": str(rank), "WORLD_SIZE": str(WORLD_SIZE), "LOCAL_RANK": str(rank),
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    os.environ.update(environment)
    ranks = from_environment("cpu")
    trainer = Trainer(load_config(None, overrides), ranks=ranks)
    if stop_after_step is not None and rank == 1:
        train_step = trainer.train_step

        def signalled_during_the_step(batch: dict[str, torch.Tensor]) -> StepResult:
            if trainer.step == stop_after_step - 1:
                trainer._request_stop(signal.SIGTERM, None)  # what a SIGTERM to this rank alone does
            return train_step(batch)

        trainer.train_step = signalled_during_the_step
    try:
        trainer.fit()
    finally:
        ranks.close()
    torch.save({"step": trainer.step, "weights": trainer.model.state_dict()}, results / f"rank{rank}.pt")


def _spawn(overrides: list[str], results: Path, stop_after_step: int | None = None) -> list[dict]:
    results.mkdir(parents=True, exist_ok=True)
    mp.spawn(_rank, args=(_free_port(), overrides, stop_after_step, results), nprocs=WORLD_SIZE)
    return [torch.load(results / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


@contextmanager
def _one_thread() -> Iterator[None]:
    """One thread, as each rank has: another thread count rounds differently (see the module docstring)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _assert_close(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    for key, value in expected.items():
        if value.numel():
            difference = (weights[key].float() - value.float()).abs()
            assert difference.max() <= MAX_DIFFERENCE and difference.mean() <= MEAN_DIFFERENCE, \
                (key, difference.max().item(), difference.mean().item())


@pytest.fixture(scope="module")
def one_process(synthetic_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """The weights after STEPS steps of one process with the same global batch."""
    with _one_thread():
        trainer = Trainer(load_config(None, _overrides(synthetic_photos, tmp_path_factory.mktemp("one_process"))))
        trainer.fit()
    return trainer.model.state_dict()


def test_ranks_take_disjoint_slices_of_the_single_process_batches() -> None:
    slices = [list(ShardedSteps(3, 5, 4, Ranks(rank, 2))) for rank in range(2)]
    assert slices == [[12, 13, 16, 17], [14, 15, 18, 19]]
    assert sorted(slices[0] + slices[1]) == list(ShardedSteps(3, 5, 4))
    with pytest.raises(ValueError, match="multiple of the 3 processes"):
        ShardedSteps(0, 1, 4, Ranks(0, 3))


def test_batch_norm_choice() -> None:
    cpu, gpu, two_ranks = torch.device("cpu"), torch.device("cuda", 0), Ranks(0, 2, distributed=True)
    assert resolve_batch_norm("auto", SINGLE_PROCESS, cpu) == resolve_batch_norm("auto", two_ranks, cpu) == "local"
    assert resolve_batch_norm("auto", two_ranks, gpu) == "sync"
    assert resolve_batch_norm("frozen", two_ranks, cpu) == "frozen"
    with pytest.raises(ValueError, match="needs GPUs"):
        resolve_batch_norm("sync", two_ranks, cpu)


def test_two_ranks_end_with_the_weights_of_one_process(synthetic_photos: Path, tmp_path: Path,
                                                       one_process: dict[str, torch.Tensor]) -> None:
    rank0, rank1 = _spawn(_overrides(synthetic_photos, tmp_path / "run"), tmp_path / "results")
    assert rank0["step"] == rank1["step"] == STEPS
    for key, value in rank0["weights"].items():
        assert torch.equal(value, rank1["weights"][key]), key  # DDP all-reduced: bit-identical
    _assert_close(rank0["weights"], one_process)


def test_a_stop_on_one_rank_stops_both_and_resumes_on_one_process(synthetic_photos: Path, tmp_path: Path,
                                                                  one_process: dict[str, torch.Tensor]) -> None:
    output = tmp_path / "run"
    rank0, rank1 = _spawn(_overrides(synthetic_photos, output), tmp_path / "results", stop_after_step=2)
    assert rank0["step"] == rank1["step"] == 2
    assert load_checkpoint(output / "last.pt").extra["step"] == 2
    with _one_thread():
        resumed = Trainer(load_config(None, _overrides(synthetic_photos, output)), resume=True)
        assert resumed.step == 2
        resumed.fit()
    _assert_close(resumed.model.state_dict(), one_process)


def test_torchrun_resumes_a_one_process_run_and_rank_0_alone_writes(synthetic_photos: Path, tmp_path: Path,
                                                                    one_process: dict[str, torch.Tensor]) -> None:
    output = tmp_path / "run"
    with _one_thread():
        assert train_main(_overrides(synthetic_photos, output, steps=2)) == 0
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD_SIZE}",
               "-m", "r2d2_ros.cli.train", "--resume", *_overrides(synthetic_photos, output)]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "backend gloo" in finished.stderr
    for table, steps in (("metrics.csv", [2, STEPS]), ("validation.csv", [0, 2, STEPS])):
        with (output / table).open() as stream:  # one header, one row each time: no rank but 0 wrote
            assert [int(row["step"]) for row in csv.DictReader(stream)] == steps, table
    checkpoint = load_checkpoint(output / "last.pt")
    assert checkpoint.extra["step"] == STEPS
    _assert_close(checkpoint.state_dict, one_process)
