"""What tracking adds to a frame: matching + verification time against the extraction time.

    python benchmarks/tracking.py [--sequence ../shared/data/sequences/kitti_seq1_left] [--top-k 2000]
        [--model M] [--device cpu] [--repeats 5] [--max-points N] [--guided-radius R] [--flow]
        [--params config/r2d2_cpu.yaml]

Extracts two consecutive frames with the node's extraction, then times the tracker's frame-to-frame
step (mutual nearest neighbours on the device + fundamental-matrix LO-RANSAC) on them. With
--max-points (the node's track_max_points), it also times a tracker that keeps N of the --top-k
detections: its two updates (the first one keeps the best N, the second matches and chooses). With
--guided-radius (the node's track_guided_radius), it also times matching with the guided search.
With --flow (the node's track_mode flow) and --max-points, it also times the flow tracker's two
updates on the grey frames: the first starts the best N, the second flows them, verifies them
(forward-backward, descriptor, epipolar), looks for lost ones and starts new ones.
With --params, the extraction runs with a node parameters file's settings (a preset) instead of the
default pyramid; --top-k, when given, still replaces its top_k.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import torch

from r2d2_ros import ExtractionConfig, extract_multiscale, load_model, prepare_for_inference
from r2d2_ros.device import resolve_device
from r2d2_ros.image_io import read_rgb
from r2d2_ros.sequences import load_sequence
from r2d2_ros.tracking import FeatureTracker, FlowTracker, TrackerConfig
from r2d2_ros.weights import default_model_path

from node_params import describe, extraction_config_of


def _median_ms(run, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared/data/sequences/kitti_seq1_left")
    parser.add_argument("--top-k", type=int, help="keypoints per frame (default: 2000, or top_k of --params)")
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-points", type=int, default=0, help="also time keeping N tracked points (0: no)")
    parser.add_argument("--guided-radius", type=float, default=0.0,
                        help="also time matching with guided search within R px (0: no)")
    parser.add_argument("--flow", action="store_true", help="with --max-points: also time the flow tracker")
    parser.add_argument("--params", type=Path, help="node parameters file whose extraction settings to use")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    model = prepare_for_inference(load_model(args.model, device))
    config = extraction_config_of(args.params) if args.params else ExtractionConfig(top_k=2000)
    if args.top_k is not None:
        config = config.replace(top_k=args.top_k)
    frames = [read_rgb(path) for path in load_sequence(args.sequence).frames[:2]]
    extract_multiscale(model, frames[0], config)  # warm-up
    features = [extract_multiscale(model, frame, config) for frame in frames]
    extraction_ms = _median_ms(lambda: extract_multiscale(model, frames[1], config), args.repeats, device)
    tracker = FeatureTracker()
    matches = tracker.match(*features)
    tracking_ms = _median_ms(lambda: tracker.match(*features), args.repeats * 4, device)
    height, width = frames[0].shape[:2]
    keypoints_per_s = len(features[1]) / (extraction_ms / 1000)
    print(f"{args.model.name}, {width}x{height}, {describe(config)}; {len(features[0])} and {len(features[1])} "
          f"keypoints ({keypoints_per_s:.0f} keypoints/s), {device}, {torch.get_num_threads()} threads; "
          f"{len(matches)} verified matches\n")
    print("| step | median ms | share of the frame |\n|---|---|---|")
    print(f"| extraction | {extraction_ms:.1f} | 100% |")
    print(f"| matching + verification | {tracking_ms:.1f} | {100 * tracking_ms / extraction_ms:.1f}% |")
    if args.guided_radius:
        guided = FeatureTracker(TrackerConfig(guided_radius_px=args.guided_radius))
        found = len(guided.match(*features))
        guided_ms = _median_ms(lambda: guided.match(*features), args.repeats * 4, device)
        print(f"| matching + verification + guided search ({args.guided_radius:g} px; {found} matches) | "
              f"{guided_ms:.1f} | {100 * guided_ms / extraction_ms:.1f}% |")
    if args.max_points:  # the node's defaults: N points kept, with the guided search when given
        config = TrackerConfig(max_points=args.max_points, guided_radius_px=args.guided_radius)

        def two_updates() -> None:
            tracker = FeatureTracker(config)
            for frame_features in features:
                tracker.update(frame_features)

        keeping_ms = _median_ms(two_updates, args.repeats * 4, device)
        guided = f", guided search {args.guided_radius:g} px" if args.guided_radius else ""
        print(f"| two updates keeping {args.max_points} points{guided} | {keeping_ms:.1f} | "
              f"{100 * keeping_ms / extraction_ms:.1f}% |")
    if args.flow and args.max_points:
        greys = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
        flow_config = TrackerConfig(mode="flow", max_points=args.max_points)
        carried = []

        def two_flow_updates() -> None:
            tracker = FlowTracker(flow_config)
            for frame_features, grey in zip(features, greys):
                _, tracks = tracker.update(frame_features, grey)
            carried.append(int((tracks.lengths >= 2).sum()))

        flow_ms = _median_ms(two_flow_updates, args.repeats * 4, device)
        print(f"| two flow-tracker updates keeping {args.max_points} points ({carried[-1]} carried by flow) | "
              f"{flow_ms:.1f} | {100 * flow_ms / extraction_ms:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
