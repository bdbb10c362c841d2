"""Ray extraction throughput: images per second with 1 and 2 (or more) workers, on this machine.

    python benchmarks/ray_extraction.py [--images 12] [--size 480 360] [--workers 1 2] [r2d2-extract options]

Workers are started and have loaded the network before the clock starts (a worker's start, seconds,
is paid once per job, not per image). Each worker has one CPU thread (--ray-cpus-per-worker 1); the
last row, for comparison, is the single-process CLI path in this process with as many threads as
the largest worker count. Images are synthetic (rectangles), so the script needs no data.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import ray
import torch

from r2d2_ros.cli.common import extraction_config, model_path, runner_from_args
from r2d2_ros.cli.extract import _parser, plan_jobs, run_job
from r2d2_ros.cli.extract_ray import ExtractionWorker, _results, shard


def _write_images(folder: Path, count: int, width: int, height: int) -> None:
    rng = np.random.default_rng(0)
    for index in range(count):
        image = np.zeros((height, width, 3), np.uint8)
        for _ in range(width * height // 800):
            x, y = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
            w, h = (int(v) for v in rng.integers(4, 40, 2))
            image[y : y + h, x : x + w] = rng.integers(0, 256, 3)
        cv2.imwrite(str(folder / f"image{index:03d}.png"), image)


def images_per_second_on_ray(args: argparse.Namespace, workers: int) -> float:
    """Runs every job on ``workers`` ready workers; images per second."""
    actor = ray.remote(num_cpus=1)(ExtractionWorker)
    handles = [actor.remote(args, 1) for _ in range(workers)]
    ray.get([handle.run.remote([]) for handle in handles])  # started, network loaded
    jobs = plan_jobs(args)
    start = time.perf_counter()
    results = list(_results(shard(jobs, workers), handles))
    elapsed = time.perf_counter() - start
    assert all(result.error is None for result in results), [result.error for result in results]
    for handle in handles:
        ray.kill(handle)
    return len(jobs) / elapsed


def images_per_second_here(args: argparse.Namespace, threads: int) -> float:
    """The single-process CLI path (run_job in a loop) with ``threads`` threads; images per second."""
    torch.set_num_threads(threads)
    config = extraction_config(args)
    runner, _ = runner_from_args(args, config)
    jobs = plan_jobs(args)
    run_job(jobs[0], args, runner, config, model_path(args))  # warm-up
    start = time.perf_counter()
    for job in jobs:
        run_job(job, args, runner, config, model_path(args))
    return len(jobs) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--size", type=int, nargs=2, default=(480, 360), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    known, extract_options = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        _write_images(Path(folder), known.images, *known.size)
        args = _parser().parse_args([folder, "--output-dir", str(Path(folder) / "out"), "--device", "cpu",
                                     *extract_options])
        ray.init(num_cpus=max(known.workers), include_dashboard=False, log_to_driver=False)
        try:
            rates = {workers: images_per_second_on_ray(args, workers) for workers in known.workers}
        finally:
            ray.shutdown()
        here = images_per_second_here(args, max(known.workers))
    print(f"{known.images} images of {known.size[0]}x{known.size[1]}, {extraction_config(args)}, "
          f"{torch.get_num_threads()} threads in this process\n")
    print("| run | images/s | vs 1 worker |")
    print("|---|---|---|")
    first = rates[known.workers[0]]
    for workers, rate in rates.items():
        print(f"| Ray, {workers} worker(s) x 1 thread | {rate:.3f} | {rate / first:.2f}x |")
    print(f"| one process, {max(known.workers)} threads (no Ray) | {here:.3f} | {here / first:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
