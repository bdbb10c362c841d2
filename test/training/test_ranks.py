"""The trainer's view of torch.distributed, in this process: a one-rank gloo group for the real collectives,
stand-ins where a GPU or a second process would be needed (fast; test_distributed.py runs two ranks)."""
from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from r2d2_ros.training import distributed
from r2d2_ros.training.distributed import (BATCH_NORM_CHOICES, SINGLE_PROCESS, Ranks, ShardedSteps, freeze_batch_norm,
                                           from_environment, prepare_batch_norm, resolve_batch_norm)

from .test_distributed import _free_port

CPU, GPU = torch.device("cpu"), torch.device("cuda", 0)


@pytest.fixture
def one_rank_group(monkeypatch: pytest.MonkeyPatch) -> Iterator[Ranks]:
    """torchrun's variables for a job of one process on the CPU, joined as the trainer joins it."""
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(_free_port())}.items():
        monkeypatch.setenv(name, value)
    ranks = from_environment("cpu")
    try:
        yield ranks
    finally:
        if dist.is_initialized():
            ranks.close()


def test_a_plain_run_is_a_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ranks = from_environment("cpu")
    assert ranks is SINGLE_PROCESS and ranks == Ranks(0, 1, 0, False) and ranks.is_main
    values = torch.ones(3)
    assert ranks.sum(values) is values and ranks.from_main(lambda: 7) == 7
    module = nn.Linear(2, 2)
    assert ranks.wrap(module, CPU) is module
    ranks.close()  # nothing to leave
    assert not dist.is_initialized()


def test_torchruns_variables_join_a_gloo_group_on_the_cpu(one_rank_group: Ranks) -> None:
    assert one_rank_group == Ranks(0, 1, 0, True) and one_rank_group.is_main
    assert dist.is_initialized() and dist.get_backend() == "gloo" and dist.get_world_size() == 1
    values = torch.tensor([1.0, 2.0])
    total = one_rank_group.sum(values)
    assert torch.equal(total, values) and total is not values  # a new tensor: the caller's is left alone
    assert one_rank_group.from_main(lambda: {"step": 3}) == {"step": 3}
    wrapped = one_rank_group.wrap(nn.Linear(2, 2), CPU)
    assert isinstance(wrapped, DistributedDataParallel) and wrapped.device_ids is None
    one_rank_group.close()
    assert not dist.is_initialized()


def test_the_group_is_joined_with_an_hour_to_wait(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Ranks wait at a collective while rank 0 validates and saves: minutes on a CPU, so an hour's timeout;
    NCCL on a GPU, each process on the GPU of its local rank."""
    joined, devices = [], []
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kwargs: joined.append((backend, kwargs)))
    monkeypatch.setattr(torch.cuda, "set_device", devices.append)
    monkeypatch.setattr(distributed, "resolve_device", lambda name: torch.device(name))
    for name, value in {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO, "r2d2-train")  # the trainer's log, which r2d2-train prints
    assert from_environment("cuda") == Ranks(3, 4, 1, True)
    assert "rank 3 of 4 (local rank 1) on cuda:1, backend nccl" in caplog.text
    monkeypatch.delenv("LOCAL_RANK")
    assert from_environment("cpu") == Ranks(3, 4, 0, True)  # LOCAL_RANK defaults to 0
    timeout = {"rank": 3, "world_size": 4, "timeout": datetime.timedelta(hours=1)}
    assert joined == [("nccl", timeout), ("gloo", timeout)] and devices == [torch.device("cuda", 1)]


def test_each_process_of_a_node_takes_the_gpu_of_its_local_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distributed, "resolve_device", lambda name: torch.device(name))
    assert Ranks(5, 8, 1, True).device_for("cuda") == torch.device("cuda", 1)
    assert Ranks(5, 8, 1, False).device_for("cuda") == torch.device("cuda")  # not in a group: as asked
    assert Ranks(5, 8, 1, True).device_for("cpu") == CPU
    assert not Ranks(5, 8, 1, True).is_main and Ranks(0, 8, 3, True).is_main


def test_a_gpu_module_is_wrapped_on_its_device(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    monkeypatch.setattr(distributed, "DistributedDataParallel", lambda module, device_ids: made.append(device_ids))
    Ranks(0, 2, 0, True).wrap(nn.Linear(2, 2), GPU)
    assert made == [[GPU]]


def test_one_rank_of_many_sums_and_receives_from_rank_0(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 1 does not run ``make``: rank 0's result comes through the broadcast."""
    reduced, broadcast = [], []

    def all_reduce(tensor: torch.Tensor, op: object) -> None:
        reduced.append(op)
        tensor.mul_(2)  # what a second rank's equal contribution would add

    def broadcast_object_list(holder: list, src: int) -> None:
        broadcast.append((list(holder), src))
        holder[0] = "from rank 0"

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    monkeypatch.setattr(dist, "broadcast_object_list", broadcast_object_list)
    rank1 = Ranks(1, 2, 1, True)
    values = torch.tensor([1.0, 3.0])
    assert torch.equal(rank1.sum(values), torch.tensor([2.0, 6.0])) and torch.equal(values, torch.tensor([1.0, 3.0]))
    assert reduced == [dist.ReduceOp.SUM]
    assert rank1.from_main(lambda: pytest.fail("only rank 0 makes it")) == "from rank 0"
    assert broadcast == [([None], 0)]
    assert Ranks(0, 2, 0, True).from_main(lambda: "made here") == "from rank 0" and broadcast[-1] == (["made here"], 0)


def test_steps_of_one_rank() -> None:
    """Steps 2-3 of a global batch of 6 over three ranks: rank 2 takes the last two of each."""
    steps = ShardedSteps(2, 4, 6, Ranks(2, 3))
    assert steps.per_rank == 2 and list(steps) == [16, 17, 22, 23] and len(steps) == 4
    assert len(ShardedSteps(5, 5, 6)) == 0 and list(ShardedSteps(0, 2, 3)) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match=r"run.batch_size=6 \(the global batch\) must be a multiple of the 4"):
        ShardedSteps(0, 1, 6, Ranks(0, 4))


def test_batch_norm_choices() -> None:
    one_gpu_rank, two_gpu_ranks = Ranks(0, 1, distributed=True), Ranks(0, 2, distributed=True)
    assert BATCH_NORM_CHOICES == ("auto", "sync", "local", "frozen")
    assert resolve_batch_norm("auto", one_gpu_rank, GPU) == "local"  # nothing to synchronise with
    assert resolve_batch_norm("auto", Ranks(0, 2), GPU) == "local"  # not in a group
    assert resolve_batch_norm("auto", two_gpu_ranks, GPU) == "sync"
    assert resolve_batch_norm("sync", two_gpu_ranks, GPU) == "sync"
    assert resolve_batch_norm("sync", SINGLE_PROCESS, CPU) == "sync"  # one process: SyncBatchNorm is plain batch norm
    assert resolve_batch_norm("local", two_gpu_ranks, GPU) == "local"
    with pytest.raises(ValueError, match="run.batch_norm=sync needs GPUs"):
        resolve_batch_norm("sync", Ranks(0, 2, distributed=True), CPU)


def test_batch_norm_layers_converted_or_frozen() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, affine=False), nn.ReLU())
    assert prepare_batch_norm(model, "local") is model and prepare_batch_norm(model, "frozen") is model
    synced = prepare_batch_norm(model, "sync")
    assert isinstance(synced[1], nn.SyncBatchNorm) and set(synced.state_dict()) == set(model.state_dict())
    model.train()
    freeze_batch_norm(model)
    assert model.training and model[0].training and not model[1].training
