"""The training loop: small methods for a step, validation and checkpoints.

Checkpoints are r2d2_ros checkpoints (loadable by the node and the CLIs as they are) that also
carry the optimizer state and the step. Batch ``s`` is a pure function of (seed, s), so
``--resume`` continues with exactly the batch the interrupted run would have used next.

Under torchrun each process trains on its slice of every global batch (:mod:`.distributed`); rank 0
alone validates and writes checkpoints, logs and the learning curve.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..device import fast_autocast_dtype
from ..extraction import ExtractionConfig, extract_multiscale
from ..evaluation.metrics import match_errors, mean_matching_accuracy, mutual_nearest_neighbours
from ..extraction.multiscale import IMAGENET_MEAN, IMAGENET_STD
from ..image_io import read_rgb
from ..model import R2D2Output, load_checkpoint, load_model, parse_arch, save_checkpoint
from ..model.checkpoint import Checkpoint
from .config import TrainConfig, config_to_dict
from .data import FlowPairs, SyntheticPairs, collate_pairs, list_images, make_synthetic_pair
from .distributed import (SINGLE_PROCESS, Ranks, ShardedSteps, freeze_batch_norm, prepare_batch_norm,
                          resolve_batch_norm)
from .losses import R2D2Loss
from .schedule import learning_rate, reliability_weight

__all__ = ["Trainer", "PairForward"]

log = logging.getLogger("r2d2-train")
_AMP = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_amp(amp: str, device: torch.device, cpuinfo: str | None = None) -> torch.dtype | None:
    """The autocast dtype of ``run.amp`` on ``device`` (None = fp32).

    ``auto`` takes bf16 on a GPU and on a CPU with native bf16, fp32 elsewhere (emulated bf16 is
    several times slower than fp32 there).

    Raises:
        ValueError: fp16 on a CPU (no fast fp16 training there).
    """
    if amp == "auto":
        return fast_autocast_dtype(device, cpuinfo)
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("run.amp=fp16 needs a GPU; use auto, bf16 or none on a CPU")
    return _AMP[amp]


def distractor_seed(seed: int, step: int, rank: int) -> int:
    """The seed of the loss's distractor draws at a global step on a rank.

    A function of the step, so a resumed run draws what the interrupted one would have. Rank 0 keeps
    the single-process stream; other ranks' are 2^40 seeds away, far beyond any step count, so no two
    ranks or steps share one; runs with other seeds are 1,000,003 (a prime) seeds apart.
    """
    return seed * 1_000_003 + step + (rank << 40)


class PairForward(nn.Module):
    """Both images of a pair through the network, one after the other (batch-norm statistics updated twice).

    One module call per step, so that DistributedDataParallel sees one forward per backward.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> tuple[R2D2Output, R2D2Output]:
        return self.network(image1), self.network(image2)


def _ignore_stop_signals(_worker_id: int) -> None:
    """Data workers leave SIGINT/SIGTERM (e.g. Ctrl-C to the process group) to the main process,
    which finishes its step, saves a checkpoint and then shuts the workers down itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _MixedPairs(torch.utils.data.Dataset):
    """Alternates synthetic pairs and real flow pairs (when the config names flow folders)."""

    def __init__(self, sources: list[torch.utils.data.Dataset]) -> None:
        self.sources = sources

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, g: int) -> dict[str, Any]:
        return self.sources[g % len(self.sources)][g // len(self.sources)]


@dataclass
class StepResult:
    """What one optimizer step did."""

    terms: dict[str, float]
    skipped: bool  # the loss or gradients were not finite, so the weights were left unchanged


class Trainer:
    """Trains an R2D2 network as :class:`TrainConfig` says, writing into ``config.run.output``."""

    def __init__(self, config: TrainConfig, resume: bool = False, resume_from: Path | None = None,
                 ranks: Ranks = SINGLE_PROCESS) -> None:
        """Args:
            resume: continue ``<run.output>/last.pt``.
            resume_from: continue from this checkpoint instead (e.g. the bundled model, exported
                without optimizer state: its weights and step are taken, the optimizer restarts).
            ranks: this process's place in a torchrun job (:func:`.distributed.from_environment`).
        """
        self.config = config
        self.ranks = ranks
        run = config.run
        self.output = Path(run.output)
        if ranks.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
        self.device = ranks.device_for(run.device)
        torch.manual_seed(run.seed)
        self.model = load_model(config.model.init, self.device) if config.model.init else \
            parse_arch(config.model.arch).build().to(self.device)
        if config.model.reset_reliability:
            torch.nn.init.zeros_(self.model.clf.weight)
            torch.nn.init.zeros_(self.model.clf.bias)
        if run.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.batch_norm = resolve_batch_norm(run.batch_norm, ranks, self.device)
        self.model = prepare_batch_norm(self.model, self.batch_norm)
        # What a step calls: both images through the network, gradients averaged over the ranks.
        self.pair_forward = ranks.wrap(PairForward(self.model), self.device)
        self.amp_dtype = resolve_amp(run.amp, self.device)
        log.info("device %s, autocast %s%s", self.device, self.amp_dtype or "off (fp32)",
                 " (amp=auto: native bf16 on this CPU)" if run.amp == "auto" and self.device.type == "cpu"
                 and self.amp_dtype else "")
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.optim.lr,
                                          weight_decay=config.optim.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.criterion = R2D2Loss(config.loss)
        self.step = 0
        self.best_mma = -1.0
        self.counters = {"nonfinite_steps": 0, "skipped_images": 0}
        images = list_images(list(config.images))
        self.validation_images = images[:: run.val_image_every]
        held_out = set(self.validation_images)  # the same on every rank: the photos are listed in sorted order
        sources: list[torch.utils.data.Dataset] = [
            SyntheticPairs([p for p in images if p not in held_out], config.data, run.seed)
        ]
        sources += [FlowPairs(folder, config.data, run.seed) for folder in config.flow_pairs]
        self.dataset = sources[0] if len(sources) == 1 else _MixedPairs(sources)
        self._validation_pairs = self._make_validation_pairs() if ranks.is_main else []
        # Validation sees what users see: the default multi-scale extraction, at the 0.7 thresholds;
        # in fp32, so that its figures compare across machines (precision auto is bf16 on some CPUs).
        self._validation_extraction = ExtractionConfig(reliability_threshold=run.val_threshold,
                                                       repeatability_threshold=run.val_threshold, precision="fp32")
        self._stop_requested = False
        if resume or resume_from:
            self.load(Path(resume_from) if resume_from else self.output / "last.pt")

    # --- data --------------------------------------------------------------------------------

    def _make_validation_pairs(self) -> list[dict[str, np.ndarray]]:
        """Synthetic pairs of held-out photos, at ``run.val_size`` (larger than training crops)."""
        data, size = self.config.data, self.config.run.val_size
        validation_data = dataclasses.replace(data, crop_size=size, min_source_side=max(size, data.min_source_side),
                                              max_source_side=max(size, data.max_source_side))
        rng = np.random.default_rng([self.config.run.seed, 99])
        pairs = []
        for index in range(self.config.run.val_pairs):
            path = self.validation_images[index % len(self.validation_images)]
            try:
                pairs.append(make_synthetic_pair(read_rgb(path), rng, validation_data))
            except ValueError:
                self.counters["skipped_images"] += 1
        return pairs

    def _loader(self, first_step: int) -> DataLoader:
        run = self.config.run
        steps = ShardedSteps(first_step, run.steps, run.batch_size, self.ranks)
        return DataLoader(self.dataset, batch_size=steps.per_rank, sampler=steps, num_workers=run.workers,
                          collate_fn=collate_pairs, pin_memory=self.device.type == "cuda",
                          worker_init_fn=_ignore_stop_signals)

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float() / 255
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        images = (images - mean) / std
        if self.config.run.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    # --- steps ---------------------------------------------------------------------------------

    def train_step(self, batch: dict[str, torch.Tensor]) -> StepResult:
        """One optimizer step on a batch (this rank's slice of it under torchrun).

        A non-finite loss or gradient on any rank leaves the weights untouched on every rank. The terms
        returned are the means over the ranks.
        """
        self.model.train()
        if self.batch_norm == "frozen":
            freeze_batch_norm(self.model)
        self.optimizer.zero_grad(set_to_none=True)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.config.optim, self.config.run.steps)
        amp = self.amp_dtype
        generator = torch.Generator(device=self.device).manual_seed(
            distractor_seed(self.config.run.seed, self.step, self.ranks.rank))
        with torch.autocast(self.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out1, out2 = self.pair_forward(self._normalise(batch["image1"]), self._normalise(batch["image2"]))
        out1, out2 = (R2D2Output(o.descriptors.float(), o.reliability.float(), o.repeatability.float())
                      for o in (out1, out2))
        terms = self.criterion(out1, out2, batch["aflow"].to(self.device), generator,
                               reliability_weight(self.step, self.config.loss))
        # One all-reduce gives the logged means and a verdict every rank shares (a NaN on any rank
        # makes every sum NaN): all ranks skip, or all ranks run backward and its gradient all-reduce.
        names = list(terms)
        means = self.ranks.sum(torch.stack([terms[name].detach().float() for name in names])) / self.ranks.world_size
        values = dict(zip(names, means.tolist()))
        if not math.isfinite(values["total"]):
            return self._skip(values)
        self.scaler.scale(terms["total"]).backward()
        self.scaler.unscale_(self.optimizer)
        gradient_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), float("inf"))
        if not torch.isfinite(gradient_norm) and amp != torch.float16:
            return self._skip(values)  # (with fp16 the scaler already skips and lowers its scale)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return StepResult(values, skipped=False)

    def _skip(self, values: dict[str, float]) -> StepResult:
        self.optimizer.zero_grad(set_to_none=True)
        self.counters["nonfinite_steps"] += 1
        log.warning("step %d: non-finite loss or gradient, step skipped (%s)", self.step, values)
        return StepResult(values, skipped=True)

    def validate(self) -> dict[str, float]:
        """MMA@3 of mutual nearest-neighbour matches, and keypoints per image, on the held-out pairs."""
        accuracies, counts = self.validation_accuracies()
        return {"val_mma3": float(np.mean(accuracies)) if accuracies else 0.0,
                "val_keypoints": float(np.mean(counts)) if counts else 0.0}

    @torch.no_grad()
    def validation_accuracies(self) -> tuple[list[float], list[int]]:
        """MMA@3 of each held-out pair, and the keypoints of each of their images.

        A pair where either image has no keypoint counts as MMA 0 (an early network finds none).
        """
        self.model.eval()
        accuracies: list[float] = []
        counts: list[int] = []
        for pair in self._validation_pairs:
            features = [extract_multiscale(self.model, pair[key], self._validation_extraction)
                        for key in ("image1", "image2")]
            counts += [len(f) for f in features]
            if min(counts[-2:]) == 0:
                accuracies.append(0.0)
                continue
            matches = mutual_nearest_neighbours(features[0].descriptors, features[1].descriptors).cpu().numpy()
            errors = match_errors(features[0].keypoints.cpu().numpy(), features[1].keypoints.cpu().numpy(), matches,
                                  pair["homography"])
            accuracies.append(float(mean_matching_accuracy(errors, (3,))[0]))
        return accuracies, counts

    # --- checkpoints -------------------------------------------------------------------------

    def save(self, path: Path, validation_mma: float | None = None) -> None:
        """Writes an r2d2_ros checkpoint with the optimizer state, atomically (rank 0's job under torchrun)."""
        meta = {"step": self.step, "best_val_mma3": self.best_mma, "validation_set": self._validation_set(),
                "counters": dict(self.counters), "val_mma3": validation_mma,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        extra = {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(), "step": self.step}
        save_checkpoint(path, self.model, config=config_to_dict(self.config), meta=meta, extra=extra)

    def _validation_set(self) -> dict[str, Any]:
        """What decides the validation pairs and their scoring, as plain data (checkpoints record it)."""
        plain = config_to_dict(self.config)
        return {"images": plain["images"], "data": plain["data"],
                **{key: plain["run"][key] for key in ("val_pairs", "val_size", "val_threshold", "val_image_every",
                                                      "seed")}}

    def read_checkpoint(self, path: Path) -> Checkpoint:
        """A checkpoint of this run's architecture; ValueError for another one (its weights would not fit)."""
        checkpoint = load_checkpoint(path)
        if checkpoint.arch.to_string() != self.model.arch:
            raise ValueError(f"{path} holds {checkpoint.arch.to_string()}, this run trains {self.model.arch}")
        return checkpoint

    def load(self, path: Path) -> None:
        """Restores weights, step and counters, and the optimizer and scaler state when the checkpoint has them.

        An exported checkpoint (no optimizer state) continues at its step with a fresh optimizer:
        Adam's moments are re-estimated within a few dozen steps, and the schedules follow the step.
        """
        # Read by rank 0 and sent to the others: other nodes need not see rank 0's disk.
        checkpoint = self.ranks.from_main(lambda: self.read_checkpoint(path))
        self.model.load_state_dict(checkpoint.state_dict)
        if "optimizer" in checkpoint.extra:
            self.optimizer.load_state_dict(checkpoint.extra["optimizer"])
            self.scaler.load_state_dict(checkpoint.extra["scaler"])
            self.step = int(checkpoint.extra["step"])
        else:
            self.step = int(checkpoint.meta.get("step", 0))
            log.info("%s has no optimizer state: Adam restarts at step %d", path, self.step)
        self.best_mma = float(checkpoint.meta.get("best_val_mma3", -1.0))
        if checkpoint.meta.get("validation_set") != self._validation_set():
            # A best score from other validation pairs does not compare: the next validation sets it anew.
            log.info("%s was validated on other pairs: best.pt is chosen anew on these", path)
            self.best_mma = -1.0
        self.counters.update(checkpoint.meta.get("counters", {}))
        log.info("resumed from %s at step %d", path, self.step)

    # --- the loop ----------------------------------------------------------------------------

    def _log_row(self, filename: str, row: dict[str, Any], writer: Any) -> None:
        path = self.output / filename
        new = not path.exists()
        with path.open("a", newline="") as stream:
            table = csv.DictWriter(stream, fieldnames=list(row))
            if new:
                table.writeheader()
            table.writerow(row)
        if writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and value == value:
                    writer.add_scalar(key, value, row["step"])

    def _request_stop(self, signum: int, _frame: Any) -> None:
        log.warning("signal %d: saving a checkpoint at the end of this step", signum)
        self._stop_requested = True

    def _agree_to_stop(self, deadline: float, skipped_images: int) -> bool:
        """Whether any rank was signalled or passed the time limit; also adds every rank's skipped images.

        Every rank takes the same decision at the same step (one all-reduce), so none is left waiting
        in a collective for ranks that have stopped.
        """
        if time.monotonic() > deadline and not self._stop_requested:
            log.info("time limit of %.0f minutes reached at step %d", self.config.run.time_limit_minutes, self.step)
            self._stop_requested = True
        stop, skipped = self.ranks.sum(torch.tensor([int(self._stop_requested), skipped_images])).tolist()
        self.counters["skipped_images"] += skipped
        self._stop_requested = stop > 0
        return self._stop_requested

    def fit(self) -> Path:
        """Trains until ``run.steps`` (or a SIGINT/SIGTERM, or the time limit, on any rank); returns the path
        of the last checkpoint."""
        run, main = self.config.run, self.ranks.is_main
        writer = _tensorboard(self.output) if main else None
        previous = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        last = self.output / "last.pt"
        window: list[dict[str, float]] = []
        start_time, first_step = time.monotonic(), self.step
        try:
            if self.step == 0 and main:
                self._validate_and_keep_best(writer)  # the random initialisation, as the baseline
            progress = tqdm(total=run.steps, initial=self.step, desc="r2d2-train", unit="step",
                            disable=None if main else True)
            deadline = start_time + run.time_limit_minutes * 60 if run.time_limit_minutes else math.inf
            for batch in self._loader(self.step):
                window.append(self.train_step(batch).terms)
                self.step += 1
                stop = self._agree_to_stop(deadline, int(batch["skipped"].sum()))
                progress.update(1)
                if main:
                    steps_per_s = (self.step - first_step) / max(time.monotonic() - start_time, 1e-9)
                    window = self._log_and_validate(window, steps_per_s, writer, progress)
                    if self.step % run.checkpoint_every == 0 or stop:
                        self.save(last)
                if stop:
                    break
            progress.close()
            if main:
                self.save(last)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if writer is not None:
                writer.close()
        return last

    def _log_and_validate(self, window: list[dict[str, float]], steps_per_s: float, writer: Any,
                          progress: tqdm) -> list[dict[str, float]]:
        """Logs the mean terms of the steps in ``window`` and validates, each when due.

        Returns:
            The window to go on with (emptied when logged).
        """
        run = self.config.run
        if self.step % run.log_every == 0 or self.step == run.steps:
            row = {"step": self.step, **{k: float(np.mean([w[k] for w in window])) for k in window[0]},
                   "lr": self.optimizer.param_groups[0]["lr"],
                   "reliability_weight": reliability_weight(self.step - 1, self.config.loss),
                   "steps_per_s": steps_per_s, **self.counters}
            self._log_row("metrics.csv", row, writer)
            progress.set_postfix(loss=f"{row['total']:.3f}", ap=f"{row['mean_ap']:.3f}")
            window = []
        if self.step % run.val_every == 0 or self.step == run.steps:
            self._validate_and_keep_best(writer)
        return window

    def _validate_and_keep_best(self, writer: Any) -> None:
        results = self.validate()
        mma = results["val_mma3"]
        self._log_row("validation.csv", {"step": self.step, **results}, writer)
        log.info("step %d: validation MMA@3 %.4f (best %.4f), %.0f keypoints per image", self.step, mma,
                 max(mma, self.best_mma), results["val_keypoints"])
        if mma > self.best_mma:
            self.best_mma = mma
            self.save(self.output / "best.pt", validation_mma=mma)


def _tensorboard(output: Path) -> Any:
    """A TensorBoard writer when the tensorboard package is installed, else None (CSV only)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("tensorboard is not installed: logging to metrics.csv only")
        return None
    return SummaryWriter(str(output / "tensorboard"))
