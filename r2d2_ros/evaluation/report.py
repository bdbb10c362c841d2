"""Writing evaluation results: JSON (with the settings), a Markdown table and MMA plots."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from .tracking import SURVIVAL_FRAMES  # noqa: E402

__all__ = ["write_json", "markdown_table", "tracks_table", "trajectory_table", "plot_mma", "plot_trajectories"]


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def markdown_table(hpatches: dict[str, dict[str, Any]], vo: dict[str, dict[str, Any]]) -> str:
    """One row per method: MMA@1/3/5/10 overall and per category, features, matches, homography, VO."""
    categories = sorted({c for summary in hpatches.values() for c in summary if c != "overall"})
    lines = []
    if hpatches:
        header = ["method", "MMA@1", "MMA@3", "MMA@5", "MMA@10", *[f"MMA@3 {c}" for c in categories],
                  "features", "matches", "repeatability@3", "H acc @1/3/5 px"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for method, summary in hpatches.items():
            overall = summary["overall"]
            mma = overall["mma"]
            accuracy = "/".join(f"{v:.2f}" for v in overall["homography_accuracy"].values())
            row = [method, *(f"{mma[t - 1]:.3f}" for t in (1, 3, 5, 10)),
                   *(f"{summary[c]['mma'][2]:.3f}" for c in categories),
                   f"{overall['features']:.0f}", f"{overall['matches']:.0f}", f"{overall['repeatability']:.3f}", accuracy]
            lines.append("| " + " | ".join(row) + " |")
    if vo:
        lines += ["", "| method | rotation error median (deg) | translation direction error median (deg) | "
                      "its 95% interval (bootstrap over pairs) | inliers median | features |", "|---|---|---|---|---|---|"]
        for method, result in vo.items():
            low, high = result["translation_error_median_ci95_deg"]
            lines.append(f"| {method} | {result['rotation_error_median_deg']:.3f} | "
                         f"{result['translation_error_median_deg']:.2f} | {low:.2f}-{high:.2f} | "
                         f"{result['inliers_median']:.0f} | {result['features_mean']:.0f} |")
    return "\n".join(lines) + "\n"


def tracks_table(tracks: dict[str, dict[str, dict[str, float]]]) -> str:
    """One row per sequence and method: features, tracked share, track lengths, survival, consistency, pose errors."""
    header = ["sequence", "method", "features", "tracked share", "track length mean", "median",
              f"still tracked {SURVIVAL_FRAMES} frames later", "consistent share (Sampson < 1 px)",
              "rotation error median (deg)", "translation direction error median (deg)"]
    lines = ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for sequence, methods in tracks.items():
        for method, r in methods.items():
            survival = f"{r['survival_share']:.3f}" if "survival_share" in r else "n/a"
            truth = [f"{r[k]:.3f}" if k in r else "n/a (no poses)" for k in
                     ("consistent_share", "rotation_error_median_deg", "translation_error_median_deg")]
            lines.append(f"| {sequence} | {method} | {r['features_mean']:.0f} | {r['tracked_share']:.3f} | "
                         f"{r['track_length_mean']:.2f} | {r['track_length_median']:.0f} | {survival} | "
                         + " | ".join(truth) + " |")
    return "\n".join(lines) + "\n"



def trajectory_table(trajectories: dict[str, dict[str, dict[str, float]]]) -> str:
    """One row per sequence and front end: its stereo pairing and the stereo back end's trajectory errors (evo)."""
    header = ["sequence", "front end", "points with a stereo partner", "APE RMSE (m)",
              "RPE translation RMSE (m/frame)", "RPE rotation RMSE (deg/frame)", "path length (m)"]
    lines = ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for sequence, methods in trajectories.items():
        for method, r in methods.items():
            lines.append(f"| {sequence} | {method} | {r['stereo_share']:.3f} | {r['ape_rmse_m']:.3f} | "
                         f"{r['rpe_translation_rmse_m']:.4f} | {r['rpe_rotation_rmse_deg']:.4f} | "
                         f"{r['length_m']:.1f} |")
    return "\n".join(lines) + "\n"

def plot_mma(path: Path, hpatches: dict[str, dict[str, Any]]) -> None:
    """MMA against the pixel threshold, one panel per category plus overall (as in D2-Net/R2D2)."""
    panels = ["overall", *sorted({c for s in hpatches.values() for c in s if c != "overall"})]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), squeeze=False)
    for axis, panel in zip(axes[0], panels):
        for method, summary in hpatches.items():
            if panel in summary:
                axis.plot(summary[panel]["thresholds"], summary[panel]["mma"], marker="o", markersize=3, label=method)
        axis.set_title(panel)
        axis.set_xlabel("threshold (px)")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("MMA")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_trajectories(path: Path, truth: np.ndarray, estimates: dict[str, np.ndarray], title: str = "") -> None:
    """The ground truth and each (aligned) estimate seen from above (x-z, the camera's ground plane; the
    axes scaled apart, so that a drift across a straight drive shows), and each estimate's position
    error frame by frame.

    ``truth``: (N, 3, 4) or (N, 4, 4) camera-to-world poses; ``estimates``: (N, 4, 4) each.
    """
    figure, (above, error) = plt.subplots(1, 2, figsize=(11, 5))
    above.plot(truth[:, 0, 3], truth[:, 2, 3], "k--", label="ground truth")
    for name, poses in estimates.items():
        above.plot(poses[:, 0, 3], poses[:, 2, 3], label=name)
        error.plot(np.linalg.norm(poses[:, :3, 3] - truth[:, :3, 3], axis=1), label=name)
    above.set(xlabel="x (m)", ylabel="z (m)", title=f"{title}: seen from above")
    error.set(xlabel="frame", ylabel="position error (m)", title="drift from the first pose")
    for axis in (above, error):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
