"""Data-parallel training across processes: what the trainer needs from ``torch.distributed``, and nothing more.

``torchrun`` starts one process per device and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
:func:`from_environment` turns them into a :class:`Ranks` (gloo on CPUs, NCCL on GPUs). Without
them it returns :data:`SINGLE_PROCESS`, whose collectives return their input, so the trainer has one
code path and a plain ``r2d2-train`` runs exactly as it did before.

The batch rule: ``run.batch_size`` is the *global* batch, split evenly over the ranks, and a step is
a global step. Sample ``g`` of the training stream is a pure function of ``(seed, g)`` whatever the
world size (see :mod:`.data`), and rank ``r`` of ``W`` takes the ``r``-th slice of each global batch,
so a checkpoint resumes at another world size on the very pairs it would have seen; the learning rate
belongs to the global batch and needs no change.
"""
from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler

from ..device import resolve_device

__all__ = ["Ranks", "SINGLE_PROCESS", "from_environment", "ShardedSteps", "BATCH_NORM_CHOICES",
           "resolve_batch_norm", "prepare_batch_norm", "freeze_batch_norm"]

log = logging.getLogger("r2d2-train")
T = TypeVar("T")

# sync: statistics over the global batch (SyncBatchNorm; torch synchronises only GPU tensors);
# local: each rank normalises with its own slice's statistics; frozen: the running statistics,
# as in evaluation, so that the network's output no longer depends on how the batch is split.
BATCH_NORM_CHOICES = ("auto", "sync", "local", "frozen")

# Ranks wait at the next collective while rank 0 validates and writes checkpoints: minutes on a CPU.
_COLLECTIVE_TIMEOUT = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes, and the collectives the trainer uses."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False  # a member of a process group (torchrun, even with a single process)

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, logs and validation (rank 0)."""
        return self.rank == 0

    def device_for(self, name: str) -> torch.device:
        """``run.device`` for this rank: on GPUs each process of a node takes ``cuda:LOCAL_RANK``."""
        device = resolve_device(name)
        if device.type == "cuda" and self.distributed:
            return torch.device("cuda", self.local_rank)
        return device

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over the ranks (a new tensor; ``values`` itself on a single process)."""
        if not self.distributed:
            return values
        total = values.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def from_main(self, make: Callable[[], T]) -> T:
        """``make()`` run on rank 0 and its result sent to every rank (e.g. a checkpoint only rank 0 can read)."""
        if not self.distributed:
            return make()
        holder = [make() if self.is_main else None]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` whose backward averages the gradients over the ranks (DDP); itself on a single process."""
        if not self.distributed:
            return module
        return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)

    def close(self) -> None:
        """Leaves the process group (every rank must call it)."""
        if self.distributed:
            dist.destroy_process_group()


SINGLE_PROCESS = Ranks()


def from_environment(device_name: str) -> Ranks:
    """Joins the process group that torchrun's variables describe: NCCL when ``run.device`` is a GPU, else gloo.

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``, and (in ``init_process_group``) ``MASTER_ADDR``
    and ``MASTER_PORT``, as torchrun sets them.

    Args:
        device_name: ``run.device``.

    Returns:
        :data:`SINGLE_PROCESS` when ``WORLD_SIZE`` is not set (a plain ``r2d2-train``).
    """
    if "WORLD_SIZE" not in os.environ:
        return SINGLE_PROCESS
    ranks = Ranks(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)),
                  distributed=True)
    device = ranks.device_for(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's communicators belong to the current device
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world_size, timeout=_COLLECTIVE_TIMEOUT)
    log.info("rank %d of %d (local rank %d) on %s, backend %s", ranks.rank, ranks.world_size, ranks.local_rank,
             device, backend)
    return ranks


class ShardedSteps(Sampler[int]):
    """This rank's sample indices for global steps ``first..last-1``.

    Global step ``s`` is made of samples ``s * batch_size .. (s + 1) * batch_size - 1``; rank ``r`` of
    ``W`` takes the ``r``-th of ``W`` equal slices. Which photo a sample uses is reshuffled every pass
    over the photos by the dataset itself (the epoch is part of the sample index), so nothing like
    ``DistributedSampler.set_epoch`` is needed, and the stream does not depend on ``W``.
    """

    def __init__(self, first_step: int, last_step: int, batch_size: int, ranks: Ranks = SINGLE_PROCESS) -> None:
        if batch_size % ranks.world_size:
            raise ValueError(f"run.batch_size={batch_size} (the global batch) must be a multiple of the "
                             f"{ranks.world_size} processes")
        self.per_rank = batch_size // ranks.world_size
        self.first_step, self.last_step = first_step, last_step
        self.batch_size, self.offset = batch_size, ranks.rank * self.per_rank

    def __iter__(self) -> Iterator[int]:
        for step in range(self.first_step, self.last_step):
            start = step * self.batch_size + self.offset
            yield from range(start, start + self.per_rank)

    def __len__(self) -> int:
        return (self.last_step - self.first_step) * self.per_rank


def resolve_batch_norm(choice: str, ranks: Ranks, device: torch.device) -> str:
    """``run.batch_norm`` made concrete: ``auto`` is sync on GPU ranks, local otherwise.

    Raises:
        ValueError: sync asked for CPU ranks (torch's SyncBatchNorm synchronises GPU tensors only).
    """
    if choice == "auto":
        return "sync" if ranks.distributed and ranks.world_size > 1 and device.type == "cuda" else "local"
    if choice == "sync" and device.type != "cuda" and ranks.distributed:
        raise ValueError("run.batch_norm=sync needs GPUs (torch synchronises batch-norm statistics of GPU tensors "
                         "only); use local or frozen on CPUs")
    return choice


def prepare_batch_norm(model: nn.Module, choice: str) -> nn.Module:
    """The model with SyncBatchNorm layers for ``sync`` (same parameter and buffer names), else itself."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(model) if choice == "sync" else model


def freeze_batch_norm(model: nn.Module) -> None:
    """Puts the batch-norm layers in evaluation mode: they normalise with, and no longer update, running statistics."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
