"""What DistributedDataParallel adds to a training step: plain training against DDP at world size 1.

    python benchmarks/ddp_overhead.py [--config config/train_cpu.yaml] [--steps 5] [key=value ...]

Both run real trainer steps on the same batch, in this process, taking turns: plain, and in a one-rank
process group (gloo on a CPU, NCCL on a GPU), where each step also all-reduces the gradients, the
logged loss terms and the stop flag. At world size 1 the all-reduces move no data between
machines, so the difference is DDP's own bookkeeping (bucketing, hooks, the extra collectives);
between machines add the gradient bytes printed at the end over the link's bandwidth.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time

import torch

from r2d2_ros.training import Trainer, load_config
from r2d2_ros.training.distributed import Ranks, from_environment


def seconds_of_a_step(trainer: Trainer, batch: dict[str, torch.Tensor]) -> float:
    """Seconds of one optimizer step on ``batch``."""
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)
    start = time.perf_counter()
    trainer.train_step(batch)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)
    return time.perf_counter() - start


def median_seconds_per_step(trainers: dict[str, Trainer], steps: int) -> dict[str, float]:
    """Median seconds a step of each trainer, on one batch, after a warm-up step each.

    The trainers take turns step by step, so that a change in the machine's load (other jobs)
    falls on all of them alike.
    """
    batch = next(iter(next(iter(trainers.values()))._loader(0)))
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for trainer in trainers.values():
        trainer.train_step(batch)
    for _ in range(steps):
        for name, trainer in trainers.items():
            times[name].append(seconds_of_a_step(trainer, batch))
    return {name: statistics.median(values) for name, values in times.items()}


def _one_rank_group(device: str) -> Ranks:
    """A process group of this process alone, as ``torchrun --nproc_per_node=1`` makes it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.update({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)})
    return from_environment(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/train_cpu.yaml")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as output:
        config = load_config(args.config, [*args.overrides, f"run.output={output}", "run.val_pairs=1"])
        ranks = _one_rank_group(config.run.device)
        try:
            trainer = Trainer(config, ranks=ranks)
            seconds = median_seconds_per_step({"plain": Trainer(config), "ddp": trainer}, args.steps)
        finally:
            ranks.close()
    parameters = sum(p.numel() for p in trainer.model.parameters())
    run = config.run
    print(f"{config.model.arch}, batch {run.batch_size} pairs of {config.data.crop_size} px, device {trainer.device}, "
          f"autocast {trainer.amp_dtype}, {torch.get_num_threads()} threads; median of {args.steps} steps\n")
    print("| run | s/step | vs plain |")
    print("|---|---|---|")
    print(f"| plain r2d2-train | {seconds['plain']:.3f} | 1.000x |")
    print(f"| DDP, world size 1 | {seconds['ddp']:.3f} | {seconds['ddp'] / seconds['plain']:.3f}x |")
    print(f"\ngradients all-reduced each step: {parameters} parameters, {parameters * 4 / 1e6:.2f} MB in fp32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
