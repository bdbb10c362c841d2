"""r2d2-extract --ray: the CLI's jobs spread over Ray actors, each holding the network once.

    r2d2-extract --bag bags/ --output-bag features/ --ray                       # a local cluster here
    r2d2-extract --bag bags/ --output-bag features/ --ray-address auto --device cuda --ray-gpus-per-worker 1

Every job goes through :func:`r2d2_ros.cli.extract.run_job`, the single-process path, so the files
are the same. Images travel a few to a task; a bag is one task (its frames stay in order on one
actor). A rerun skips images whose output exists and continues unfinished bags (their writer
resumes). A failed input is reported by name and the others go on.

Inputs, outputs and ``--model`` must be at the same paths on every node (a shared file system).
Needs ``pip install r2d2_ros[cluster]`` (ray).
"""
from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import ray
import torch
from tqdm import tqdm

from .common import extraction_config, model_path, runner_from_args
from .extract import Job, Outcome, run_job

__all__ = ["extract_on_ray", "shard", "ExtractionWorker"]

log = logging.getLogger("r2d2-extract")

# Images per task: enough to hide Ray's per-task cost (about a millisecond) behind a GPU's ~20 ms
# per image, few enough that workers finish together.
IMAGES_PER_TASK = 8


@dataclass(frozen=True)
class JobResult:
    """A job's outcome, or why it failed (one line)."""

    job: Job
    outcome: Outcome | None
    error: str | None = None


class ExtractionWorker:
    """A Ray actor: loads the network once, then runs the jobs it is handed, one after the other."""

    def __init__(self, args: argparse.Namespace, threads: int) -> None:
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
        torch.set_num_threads(threads)
        self.args = args
        self.config = extraction_config(args)
        self.runner, _ = runner_from_args(args, self.config)
        self.checkpoint = model_path(args)

    def run(self, jobs: list[Job]) -> list[JobResult]:
        """Each job's outcome; a job that raises is returned with its error, and the next one runs."""
        results = []
        for job in jobs:
            try:
                results.append(JobResult(job, run_job(job, self.args, self.runner, self.config, self.checkpoint)))
            except Exception as error:  # noqa: BLE001 (any input's failure is reported, not fatal to the others)
                results.append(JobResult(job, None, f"{type(error).__name__}: {error}"))
        return results


def shard(jobs: list[Job], workers: int) -> list[list[Job]]:
    """Tasks: each bag alone, first (the longest tasks, so that no worker is left with one at the end),
    then the images, up to :data:`IMAGES_PER_TASK` a task and fewer when there are too few to keep every
    worker busy."""
    bags = [[job] for job in jobs if job.is_bag]
    images = [job for job in jobs if not job.is_bag]
    size = max(1, min(IMAGES_PER_TASK, math.ceil(len(images) / workers)))
    return bags + [images[start : start + size] for start in range(0, len(images), size)]


def pending(jobs: list[Job]) -> list[Job]:
    """The jobs a rerun still has to do: every bag (a finished one is recognised by its writer), and
    the images without an output file (files are renamed into place whole)."""
    return [job for job in jobs if job.is_bag or not job.output.exists()]


def _worker_count(args: argparse.Namespace) -> int:
    """--ray-workers, else as many workers as the cluster's CPUs (or GPUs, for GPU workers) hold."""
    if args.ray_workers:
        return args.ray_workers
    resources = ray.cluster_resources()
    if args.ray_gpus_per_worker:
        return max(1, int(resources.get("GPU", 0) / args.ray_gpus_per_worker))
    return max(1, int(resources.get("CPU", 1) // args.ray_cpus_per_worker))


def _results(tasks: list[list[Job]], workers: list[ray.actor.ActorHandle]) -> Iterator[JobResult]:
    """Runs the tasks, one in flight per worker, handing each worker the next task when it returns one.

    A worker that dies (e.g. out of memory) fails its task's jobs and takes no more.
    """
    queue = list(reversed(tasks))
    in_flight: dict[ray.ObjectRef, tuple[ray.actor.ActorHandle, list[Job]]] = {}

    def hand_out(worker: ray.actor.ActorHandle) -> None:
        if queue:
            task = queue.pop()
            in_flight[worker.run.remote(task)] = (worker, task)

    for worker in workers:
        hand_out(worker)
    while in_flight:
        [done], _ = ray.wait(list(in_flight), num_returns=1)
        worker, task = in_flight.pop(done)
        try:
            yield from ray.get(done)
        except ray.exceptions.RayActorError as error:
            yield from (JobResult(job, None, f"worker lost: {error}") for job in task)
            if not in_flight:  # no worker left to take the rest
                yield from (JobResult(job, None, "no worker left") for task in queue for job in task)
                queue.clear()
            continue
        hand_out(worker)


def extract_on_ray(jobs: list[Job], args: argparse.Namespace) -> int:
    """Runs ``jobs`` on Ray workers with a progress bar of inputs and frames per second.

    Returns:
        0 when every job was written whole, 1 when some failed or skipped corrupt messages.

    Raises:
        ValueError: a missing model file (checked before any worker starts).
    """
    checkpoint = model_path(args)
    if not checkpoint.is_file():
        raise ValueError(f"{checkpoint}: no such file")
    todo = pending(jobs)
    log.info("%d of %d inputs done already; %d to extract", len(jobs) - len(todo), len(jobs), len(todo))
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=args.ray_address, include_dashboard=False)
    try:
        tasks = shard(todo, _worker_count(args))
        count = min(_worker_count(args), len(tasks))
        actor = ray.remote(num_cpus=args.ray_cpus_per_worker, num_gpus=args.ray_gpus_per_worker)(ExtractionWorker)
        workers = [actor.remote(args, args.ray_cpus_per_worker) for _ in range(count)]
        failed = skipped = frames = 0
        start = time.monotonic()
        with tqdm(total=len(todo), desc=f"r2d2-extract ({count} Ray workers)", unit="input", disable=None) as bar:
            for result in _results(tasks, workers):
                if result.error is not None:
                    log.warning("failed %s: %s", result.job.input, result.error)
                    failed += 1
                else:
                    frames += result.outcome.frames
                    skipped += result.outcome.skipped
                bar.update(1)
                bar.set_postfix(frames_per_s=f"{frames / max(time.monotonic() - start, 1e-9):.2f}")
    finally:
        if started_here:
            ray.shutdown()
    log.info("%d of %d inputs written (%d frames) on %d Ray workers; %d failed", len(todo) - failed, len(todo),
             frames, count, failed)
    return 1 if failed or skipped else 0
