"""Training throughput: optimizer steps per second for each architecture and precision, on this machine.

    python benchmarks/training.py [--config config/train_cpu.yaml] [--device cpu] [--steps 5]
        [--archs "Quad_L2Net_ConfCFS()" "Fast_Quad_L2Net_ConfCFS()"] [--amps none bf16] [key=value ...]

Runs real trainer steps (forward of both images, losses, backward, Adam) on the configured data:
first on one batch over and over (compute only), then on fresh batches (with data loading). All
rows come from one run, so their ratios compare like with like.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

from r2d2_ros.device import cpu_has_native_bf16
from r2d2_ros.training import Trainer, load_config


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(config_path: str, overrides: list[str], steps: int) -> tuple[float, float, Trainer]:
    """Median seconds per step on one batch, and mean seconds per step with data loading."""
    with tempfile.TemporaryDirectory() as output:
        config = load_config(config_path, [*overrides, f"run.output={output}", f"run.steps={steps * 3 + 2}",
                                           "run.val_pairs=1"])
        trainer = Trainer(config)
        loader = iter(trainer._loader(0))
        batch = next(loader)
        trainer.train_step(batch)  # warm-up (kernel selection, allocator)
        compute = []
        for _ in range(steps):
            _synchronise(trainer.device)
            start = time.perf_counter()
            trainer.train_step(batch)
            _synchronise(trainer.device)
            compute.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step(next(loader))
        _synchronise(trainer.device)
        return statistics.median(compute), (time.perf_counter() - start) / steps, trainer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/train_cpu.yaml")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--archs", nargs="+", default=["Quad_L2Net_ConfCFS()", "Fast_Quad_L2Net_ConfCFS()"])
    parser.add_argument("--amps", nargs="+", default=["none", "bf16"], help="none = fp32; bf16 / fp16 autocast")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    rows = []
    for arch in args.archs:
        for amp in args.amps:
            overrides = [*args.overrides, f"model.arch={arch}", f"run.amp={amp}", f"run.device={args.device}"]
            compute, with_data, trainer = measure(args.config, overrides, args.steps)
            rows.append((arch, amp, compute, with_data))
    run, data, device = trainer.config.run, trainer.config.data, trainer.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}"
    print(f"batch {run.batch_size} pairs of {data.crop_size} px, {run.workers} loader workers, {name}\n")
    print("| architecture | autocast | s/step (compute) | steps/s (compute) | steps/s (with data) | vs first row |")
    print("|---|---|---|---|---|---|")
    for arch, amp, compute, with_data in rows:
        print(f"| {arch} | {amp} | {compute:.2f} | {1 / compute:.3f} | {1 / with_data:.3f} | {rows[0][2] / compute:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
