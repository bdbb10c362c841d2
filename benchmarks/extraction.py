"""Extraction benchmark: per-stage medians for VGA single-scale and 1024 px multi-scale,
and the speed-up over the original implementation's timings on the reference images.

    python benchmarks/extraction.py [--device cuda] [--precision fp32 fp16] [--repeats 5] [--stereo]
        [--params config/r2d2_cpu.yaml]

--stereo times a synchronised pair instead (two VGA frames, the default pyramid): one extraction
per camera against one batch of both (extract_multiscale_batch, as the node's cameras mode runs).

--params times both images with a node parameters file's extraction settings (a preset) instead,
in its precision unless --precision is given, and prints the keypoints per second.

Uses the original r2d2_WASF_N16 weights from ../shared/reference when present (so the
comparison with the reference timings is like for like), else the bundled model.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from r2d2_ros import ExtractionConfig, extract_multiscale, load_model, prepare_for_inference
from r2d2_ros.device import resolve_device
from r2d2_ros.extraction import NetworkRunner, extract_multiscale_batch
from r2d2_ros.extraction.timing import StageTimer
from r2d2_ros.image_io import read_rgb
from r2d2_ros.weights import default_model_path

from node_params import describe, extraction_config_of

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
SINGLE_SCALE = ExtractionConfig(min_scale=1.0, max_scale=1.0, min_size=0, max_size=100_000)


def benchmark_image(width: int, height: int) -> np.ndarray:
    """brooklyn.png resized to width x height, or noise when ../shared is absent."""
    source = REFERENCE / "images" / "brooklyn.png"
    if source.exists():
        return cv2.resize(read_rgb(source), (width, height), interpolation=cv2.INTER_AREA)
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def time_extraction(model: torch.nn.Module | NetworkRunner, image: np.ndarray, config: ExtractionConfig, repeats: int,
                    device: torch.device) -> tuple[dict[str, float], float]:
    """Median seconds per stage (with device syncs) and median total (without), after one warm-up."""
    extract_multiscale(model, image, config).numpy()
    stages: dict[str, list[float]] = {}
    totals = []
    for _ in range(repeats):
        timer = StageTimer(device)
        features = extract_multiscale(model, image, config, timer=timer)
        with timer.stage("download"):
            features.numpy()
        for name, seconds in timer.seconds.items():
            stages.setdefault(name, []).append(seconds)
        start = time.perf_counter()
        extract_multiscale(model, image, config).numpy()
        totals.append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in stages.items()}, statistics.median(totals)


def time_pair(model: torch.nn.Module | NetworkRunner, images: list[np.ndarray], config: ExtractionConfig,
              repeats: int) -> tuple[float, float]:
    """Median seconds for a pair of frames: one extraction each, and one batch of both (after a warm-up)."""
    def one_by_one() -> None:
        for image in images:
            extract_multiscale(model, image, config).numpy()

    def batched() -> None:
        for features in extract_multiscale_batch(model, images, config):
            features.numpy()

    medians = []
    for run in (one_by_one, batched):
        run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        medians.append(statistics.median(times))
    return medians[0], medians[1]


def _print_stages(title: str, stages: dict[str, float], total: float) -> None:
    print(f"\n### {title}\n\n| stage | median ms |\n|---|---|")
    for name, seconds in stages.items():
        print(f"| {name} | {seconds * 1e3:.1f} |")
    print(f"| **total (no stage syncs)** | **{total * 1e3:.1f}** |")


def compare_with_reference(model: torch.nn.Module, repeats: int, device: torch.device) -> None:
    meta = json.loads((REFERENCE / "outputs" / "extraction_meta.json").read_text())
    print("\n### Against the original implementation (default settings, top-k 5000)\n")
    print("| image | original warm median s | ours median s | speed-up |\n|---|---|---|---|")
    for name, info in meta["images"].items():
        reference_s = statistics.median(info["timing"]["extract_multiscale_warm_s"])
        _, ours = time_extraction(model, read_rgb(REFERENCE / "images" / name), ExtractionConfig(), repeats, device)
        print(f"| {name} | {reference_s:.2f} | {ours:.2f} | {reference_s / ours:.2f}x |")


def time_parameters_file(model: torch.nn.Module, params_file: Path, images: tuple[np.ndarray, ...],
                         precisions: list[str] | None, repeats: int, device: torch.device) -> int:
    """Stages, total and keypoints per second of each image with a parameters file's extraction settings."""
    config = extraction_config_of(params_file)
    for precision in precisions or [config.precision]:
        setting = config.replace(precision=precision)
        print(f"\n{params_file.name}: {describe(setting)}")
        for image in images:
            stages, total = time_extraction(model, image, setting, repeats, device)
            keypoints = len(extract_multiscale(model, image, setting))
            height, width = image.shape[:2]
            _print_stages(f"{width}x{height}, {params_file.name}, {precision}: {keypoints} keypoints, "
                          f"{keypoints / total:.0f} keypoints/s", stages, total)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", help="checkpoint (default: original r2d2_WASF_N16 if present, else bundled)")
    parser.add_argument("--precision", nargs="+", choices=["fp32", "fp16", "bf16"],
                        help="default: fp32, or the precision of --params")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the reference used 2)")
    parser.add_argument("--skip-reference", action="store_true", help="skip the comparison with the original")
    parser.add_argument("--stereo", action="store_true", help="only time a camera pair: one by one against one batch")
    parser.add_argument("--params", type=Path, help="node parameters file whose extraction settings to time")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    official = REFERENCE / "models" / "r2d2_WASF_N16.pt"
    model_path = Path(args.model) if args.model else official if official.exists() else default_model_path()
    model = prepare_for_inference(load_model(model_path, device))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"model {model_path.name}, device {name}, torch {torch.__version__}, {args.repeats} repeats")
    vga, large = benchmark_image(640, 480), benchmark_image(1024, 768)
    if args.params:
        return time_parameters_file(model, args.params, (vga, large), args.precision, args.repeats, device)
    precisions = args.precision or ["fp32"]
    if args.stereo:
        print("\n### A synchronised pair, two VGA frames, default pyramid\n")
        print("| precision | one by one median ms | one batch median ms | ratio |\n|---|---|---|---|")
        pair = [vga, np.ascontiguousarray(vga[:, ::-1])]
        for precision in precisions:
            separate, batch = time_pair(model, pair, ExtractionConfig(precision=precision), args.repeats)
            print(f"| {precision} | {separate * 1e3:.0f} | {batch * 1e3:.0f} | {separate / batch:.2f}x |")
        return 0
    for precision in precisions:
        for title, image, config in (
            ("VGA 640x480, single scale", vga, SINGLE_SCALE),
            ("1024x768, multi-scale (default pyramid)", large, ExtractionConfig()),
        ):
            stages, total = time_extraction(model, image, config.replace(precision=precision), args.repeats, device)
            _print_stages(f"{title}, {precision}", stages, total)
    if not args.skip_reference and REFERENCE.exists() and model_path == official:
        compare_with_reference(model, args.repeats, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
