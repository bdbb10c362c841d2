"""The learning curve of a training run (loss terms and validation) as a PNG, for the model card.

    python -m r2d2_ros.training.curves RUN_DIR [RUN_DIR ...] --output curve.png

Each RUN_DIR holds the trainer's ``metrics.csv`` and ``validation.csv``; several directories (one
per chunk, or the copies kept in ``docs/training/``) are drawn as one curve over the global step.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["read_rows", "plot_learning_curve", "main"]


def read_rows(paths: list[Path]) -> dict[str, list[float]]:
    """Columns of several CSV logs, concatenated and sorted by step; a step logged twice keeps its last row."""
    by_step: dict[int, dict[str, str]] = {}
    for path in paths:
        with path.open(newline="") as stream:
            for row in csv.DictReader(stream):
                by_step[int(row["step"])] = row
    columns: dict[str, list[float]] = {}
    for step in sorted(by_step):
        for key, value in by_step[step].items():
            columns.setdefault(key, []).append(float(value) if value not in ("", None) else float("nan"))
    return columns


def plot_learning_curve(run_dirs: list[Path], output: Path) -> None:
    """Loss terms and mean AP (left), validation MMA@3 and keypoints per image (right), over the global step."""
    metrics = read_rows([d / "metrics.csv" for d in run_dirs if (d / "metrics.csv").exists()])
    validation = read_rows([d / "validation.csv" for d in run_dirs if (d / "validation.csv").exists()])
    if not metrics and not validation:
        raise ValueError(f"no metrics.csv or validation.csv in {', '.join(map(str, run_dirs))}")
    figure, (losses, checks) = plt.subplots(1, 2, figsize=(11, 3.8))
    terms = [name for name in ("total", "ap", "cosim", "peaky", "mean_ap") if name in metrics]
    for name in terms:
        losses.plot(metrics["step"], metrics[name], label=name, linewidth=1)
    losses.set_xlabel("step")
    losses.set_title("training (mean over each logging window)")
    losses.grid(alpha=0.3)
    if terms:  # a validation log alone leaves this panel empty: no legend to draw
        losses.legend(fontsize=8)
    if validation:
        checks.plot(validation["step"], validation["val_mma3"], marker="o", color="tab:blue", label="MMA@3")
        checks.set_ylabel("validation MMA@3", color="tab:blue")
        checks.set_ylim(0, 1)
        if "val_keypoints" in validation:
            counts = checks.twinx()
            counts.plot(validation["step"], validation["val_keypoints"], marker=".", color="tab:orange")
            counts.set_ylabel("keypoints per image", color="tab:orange")
    checks.set_xlabel("step")
    checks.set_title("validation (held-out photos, node's extraction)")
    checks.grid(alpha=0.3)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        plot_learning_curve(args.run_dirs, args.output)
    except ValueError as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
