"""Training throughput: optimizer steps per second, compute alone and with data loading.

    python benchmarks/training.py [--config config/train_default.yaml] [--device cuda] [--steps 10] [key=value ...]

Runs real trainer steps (forward of both images, losses, backward, Adam) on the configured data.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

from r2d2_ros.training import Trainer, load_config


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/train_default.yaml")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as output:
        config = load_config(args.config, [*args.overrides, f"run.device={args.device}", f"run.output={output}",
                                           f"run.steps={args.steps * 3 + 2}", "run.val_pairs=1"])
        trainer = Trainer(config)
        loader = iter(trainer._loader(0))
        batch = next(loader)
        trainer.train_step(batch)  # warm-up (kernel selection, allocator)
        device = trainer.device
        compute = []
        for _ in range(args.steps):
            _synchronise(device)
            start = time.perf_counter()
            trainer.train_step(batch)
            _synchronise(device)
            compute.append(time.perf_counter() - start)
        _synchronise(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step(next(loader))
        _synchronise(device)
        with_data = (time.perf_counter() - start) / args.steps
    run, data = config.run, config.data
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{config.model.arch}, batch {run.batch_size} pairs of {data.crop_size}px, amp {run.amp}, "
          f"{run.workers} loader workers, {name}\n")
    print("| | steps/s | pairs/s |\n|---|---|---|")
    median = statistics.median(compute)
    print(f"| compute only (same batch) | {1 / median:.3f} | {run.batch_size / median:.2f} |")
    print(f"| with data loading | {1 / with_data:.3f} | {run.batch_size / with_data:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
