"""r2d2-eval: HPatches-protocol benchmark and visual-odometry check, for R2D2 checkpoints and baselines.

    r2d2-eval --hpatches ../shared/data/eval/oxford --vo ../shared/data/sequences/kitti_seq1_left
    r2d2-eval --vo ../shared/data/sequences/kitti_seq1_left --vo-bag kitti_features
    r2d2-eval --tracks ../shared/data/sequences/kitti_seq1_left ../shared/data/sequences/euroc_v1_01_cam0

--vo-bag scores a feature bag (r2d2-extract --bag) made from the --vo sequence's bag, as one more VO
row named after the bag; with --vo-bag, only the --methods given are evaluated beside it.

--backend onnxruntime runs the R2D2 methods as the node would with that backend (TensorRT, else CUDA,
on a GPU): what a deployment's precision costs in accuracy, measured; cached apart from PyTorch's.

--tracks tracks features frame to frame on each sequence with every R2D2 method, ORB and the classic
KLT front end, all at --track-features points per frame: track lengths, the share of tracks
consistent with the ground-truth motion and relative-pose errors (where the sequence has poses);
adds its table to results.md and writes tracks_<sequence>.png. --track-flow adds each R2D2 method
tracked by optical flow (FlowTracker, rows <method>_flow): detections verify the flowed points and
start new tracks.

--stereo names the right camera's KITTI folder of a --tracks sequence (same frame names, calib.txt
P1): then every front end's tracks, paired with the right camera as that front end would pair them
(R2D2 and ORB by descriptor on the same row, KLT by flow), go through one GTSAM sliding-window stereo
back end (smart factors), and evo scores each trajectory against the ground truth (APE, RPE): a
trajectory table in results.md and trajectory_<sequence>.png. --track-scale 0.5 runs the tracks
(and the back end) on half-size copies of the sequences, written under --cache.

    r2d2-eval --tracks ../shared/data/sequences/kitti_seq1_left --stereo ../shared/data/sequences/kitti_seq1_right

Methods: sift, rootsift, orb, akaze, "default" (the bundled model), or checkpoint paths
(optionally name=path). Without --methods: the baselines, the bundled model and the official
checkpoints found in ../shared/reference/models. Features are cached under --cache, so a rerun
only scores. Writes results.json, results.md and mma.png into --output.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..bags import BagError
from ..device import resolve_device
from ..evaluation.cache import FeatureCache
from ..evaluation.hpatches import DatasetError, load_hpatches
from ..evaluation.methods import BASELINES, Method, R2D2Method, make_method
from ..evaluation.protocol import evaluate_hpatches, summarise
from ..evaluation.report import markdown_table, plot_mma, plot_trajectories, tracks_table, trajectory_table, write_json
from ..evaluation.tracking import draw_last_frame, score_tracks, track_flow, track_klt, track_method
from ..evaluation.vo import bag_features_for_sequence, evaluate_vo, score_vo
from ..model import CheckpointError
from ..sequences import Sequence, load_sequence, load_stereo_pair, write_resized_sequence
from ..tracking import TrackerConfig
from ..tracking.verification import ESTIMATORS, Estimator
from ..weights import DEFAULT_MODEL
from .common import add_backend_arguments, add_extraction_arguments, backend_from_args, extraction_config

__all__ = ["main", "default_methods"]

log = logging.getLogger("r2d2-eval")
OFFICIAL = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "models"


def default_methods() -> list[str]:
    """Baselines, the bundled model, and the official R2D2 checkpoints when ../shared has them."""
    methods = [*BASELINES]
    if DEFAULT_MODEL.is_file():
        methods.append(f"r2d2_ros_default={DEFAULT_MODEL}")
    methods += [f"{name}={OFFICIAL / f'{name}.pt'}" for name in ("r2d2_WAF_N16", "r2d2_WASF_N16")
                if (OFFICIAL / f"{name}.pt").is_file()]
    return methods


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r2d2-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hpatches", type=Path, help="folder in HPatches layout")
    parser.add_argument("--vo", type=Path, help="KITTI-layout sequence (image/, calib.txt, poses.txt)")
    parser.add_argument("--vo-bag", type=Path, help="feature bag of the --vo sequence, scored as one more VO row")
    parser.add_argument("--tracks", type=Path, nargs="+", help="sequences (KITTI, EuRoC) to track features on")
    parser.add_argument("--track-features", type=int, default=1000, help="points per frame of every tracked method")
    parser.add_argument("--track-candidates", type=int, default=0,
                        help="detections per frame that R2D2 and ORB tracking choose their --track-features points "
                             "from, tracked points first (the node's track_max_points); 0: their best "
                             "--track-features detections")
    parser.add_argument("--track-flow", action="store_true",
                        help="also track each R2D2 method's points by optical flow (the node's flow tracking mode), "
                             "from the same --track-candidates and --track-features")
    parser.add_argument("--stereo", type=Path, nargs="+", default=[],
                        help="right-camera KITTI folders of --tracks sequences: trajectories through the stereo "
                             "back end")
    parser.add_argument("--track-scale", type=float, default=1.0,
                        help="resize the --tracks and --stereo sequences by this factor (in (0, 1]) first")
    parser.add_argument("--methods", nargs="+", help="default: " + ", ".join(BASELINES) + ", bundled and official R2D2")
    parser.add_argument("--output", type=Path, default=Path("outputs/eval"))
    parser.add_argument("--cache", type=Path, default=Path(".cache/features"))
    parser.add_argument("--max-sequences", type=int, help="evaluate only the first N sequences")
    parser.add_argument("--track-guided-radius", type=float, default=0.0,
                        help="R2D2 and ORB tracking: pixels around a lost point's predicted position searched again "
                             "after RANSAC (the node's track_guided_radius; 0: off)")
    parser.add_argument("--pose-estimator", choices=sorted(ESTIMATORS), default="lo-ransac",
                        help="essential-matrix estimator of the VO check's and the tracks' relative poses "
                             "(ransac: OpenCV's plain RANSAC, as VO results before LO-RANSAC were measured; the "
                             "tracker's own verification is LO-RANSAC either way)")
    parser.add_argument("--device", default="auto")
    add_backend_arguments(parser)
    add_extraction_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    parser = _parser()
    args = parser.parse_args(argv)
    if args.hpatches is None and args.vo is None and not args.tracks:
        parser.error("give --hpatches, --vo and/or --tracks")
    if args.vo_bag and args.vo is None:
        parser.error("--vo-bag needs --vo: the sequence with the ground truth")
    if args.stereo:
        try:  # the back end's engines are optional: only --stereo needs them
            import evo  # noqa: F401
            import gtsam  # noqa: F401
        except ImportError as error:
            parser.error(f"--stereo needs GTSAM and evo ({error.name} is missing): pip install .[vo]")
    try:
        config = extraction_config(args)
        device = resolve_device(args.device)
        sequences = load_hpatches(args.hpatches, args.max_sequences) if args.hpatches else []
        vo_sequence = load_sequence(args.vo) if args.vo else None
        bag_features = bag_features_for_sequence(vo_sequence, args.vo_bag) if args.vo_bag else None
        track_sequences, right_sequences = _track_sequences(args.tracks or [], args.stereo, args.track_scale,
                                                            args.cache)
        chosen = args.methods or ([] if args.vo_bag else default_methods())
        specs = [f"r2d2_ros_default={DEFAULT_MODEL}" if m == "default" else m for m in chosen]
        backend = backend_from_args(args)
        methods: list[Method] = [make_method(spec, config, device, backend) for spec in specs]
        if args.track_candidates and args.track_candidates < args.track_features:
            raise ValueError(f"--track-candidates ({args.track_candidates}) must be at least --track-features "
                             f"({args.track_features})")
        track_config = config.replace(top_k=args.track_candidates or args.track_features)
        tracker_config = TrackerConfig(max_points=args.track_features if args.track_candidates else 0,
                                       guided_radius_px=args.track_guided_radius)
        tracked_methods: list[Method] = []
        if args.tracks:  # the R2D2 methods' networks serve the tracks too: loaded (and built) once
            tracked_methods = [method.with_top_k(track_config.top_k) for method in methods
                               if isinstance(method, R2D2Method)] + [make_method("orb", track_config, device)]
    except BagError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    except (DatasetError, ValueError, CheckpointError) as error:  # BackendError is a ValueError
        parser.error(str(error))
    cache = FeatureCache(args.cache)
    images = len(sequences) * 6 + (len(vo_sequence.poses) if vo_sequence is not None else 0)
    progress = tqdm(total=images * len(methods), desc="r2d2-eval", unit="image", disable=None)
    hpatches, vo, pairs = {}, {}, {}
    start = time.monotonic()
    for method in methods:
        progress.set_postfix(method=method.name)
        if sequences:
            results = evaluate_hpatches(sequences, method, cache, lambda: progress.update(1))
            hpatches[method.name], pairs[method.name] = summarise(results), [asdict(r) for r in results]
        if vo_sequence is not None:
            vo[method.name] = evaluate_vo(vo_sequence, method, cache, lambda: progress.update(1), args.pose_estimator)
    progress.close()
    if bag_features is not None:
        vo[args.vo_bag.name] = score_vo(vo_sequence, bag_features, args.pose_estimator)
    tracks, trajectories = _evaluate_tracks(track_sequences, right_sequences, tracked_methods, args.track_features,
                                            tracker_config, cache, args.output, args.pose_estimator, args.track_flow)
    settings = {"extraction": asdict(config), "methods": {m.name: m.key for m in methods},
                "backend": {"name": args.backend, "execution_provider": args.execution_provider,
                            "engine_cache": str(args.engine_cache)},
                "hpatches": str(args.hpatches) if args.hpatches else None, "vo": str(args.vo) if args.vo else None,
                "vo_bag": str(args.vo_bag) if args.vo_bag else None,
                "tracks": [str(path) for path in args.tracks or []], "track_features": args.track_features,
                "track_candidates": args.track_candidates, "track_flow": args.track_flow,
                "track_guided_radius": args.track_guided_radius, "pose_estimator": args.pose_estimator,
                "stereo": [str(path) for path in args.stereo], "track_scale": args.track_scale}
    if args.stereo:
        from ..evaluation.stereo_vo import StereoVOConfig
        settings["stereo_back_end"] = asdict(StereoVOConfig())
    write_json(args.output / "results.json",
               {"settings": settings, "hpatches": hpatches, "vo": vo, "tracks": tracks,
                                              "trajectories": trajectories, "pairs": pairs})
    table = markdown_table(hpatches, vo) + (tracks_table(tracks) if tracks else "") + \
        (trajectory_table(trajectories) if trajectories else "")
    (args.output / "results.md").write_text(table)
    if hpatches:
        plot_mma(args.output / "mma.png", hpatches)
    print(table)
    log.info("%.0f s; features cached: %d reused, %d extracted; results in %s", time.monotonic() - start,
             cache.hits, cache.misses, args.output)
    return 0


def _track_sequences(tracks: list[Path], stereo: list[Path], scale: float, cache: Path
                     ) -> tuple[list[Sequence], dict[str, Sequence]]:
    """The --tracks sequences (resized copies when ``scale`` < 1) and the right camera of each that has one.

    Raises:
        ValueError: a --stereo folder pairs with no --tracks sequence, or the scale is out of range.
    """
    if not 0 < scale <= 1:
        raise ValueError(f"--track-scale must be in (0, 1], got {scale}")

    def sized(path: Path) -> Path:
        if scale == 1:
            return path
        return write_resized_sequence(path, cache / "sequences" / f"{path.resolve().name}_x{scale:g}", scale)

    sized_tracks = [sized(path) for path in tracks]  # each copy written once, the stereo pairs reuse it
    sequences = [load_sequence(path) for path in sized_tracks]
    rights: dict[str, Sequence] = {}
    for right in stereo:
        names = [frame.name for frame in load_sequence(right).frames]
        partners = [path for path, sequence in zip(sized_tracks, sequences)
                    if [frame.name for frame in sequence.frames] == names]
        if not partners:
            raise ValueError(f"--stereo {right}: no --tracks sequence has the same frames")
        left, right_sequence = load_stereo_pair(partners[0], sized(right))
        rights[left.name] = right_sequence
    return sequences, rights


def _evaluate_tracks(sequences: list[Sequence], rights: dict[str, Sequence], methods: list[Method], count: int,
                     tracker_config: TrackerConfig, cache: FeatureCache, output: Path, estimator: Estimator,
                     flow: bool = False) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, dict[str, dict]]]:
    """Scores of every tracked method and KLT on each sequence (with ``flow``, each R2D2 method tracked by
    optical flow too); draws each method's tracks on the last frame. Where a sequence has a right camera
    and poses: each front end's trajectory through the stereo back end, scored and drawn."""
    tracks: dict[str, dict[str, dict[str, float]]] = {}
    trajectories: dict[str, dict[str, dict]] = {}
    flow_config = replace(tracker_config, mode="flow")
    for sequence in sequences:
        # name -> (tracking run, the method whose right-camera features pair its points; None: pair by flow)
        runs = {method.name: (lambda m=method: track_method(sequence, m, cache, config=tracker_config), method)
                for method in methods}
        if flow:
            runs |= {f"{method.name}_flow": (lambda m=method: track_flow(sequence, m, cache, config=flow_config),
                                             method) for method in methods if isinstance(method, R2D2Method)}
        runs["klt"] = (lambda: track_klt(sequence, count), None)
        right = rights.get(sequence.name) if sequence.poses is not None else None
        pictures, tracks[sequence.name], estimates, stereo_shares = [], {}, {}, {}
        for name, (run, pairing) in tqdm(runs.items(), desc=f"tracks {sequence.name}", unit="method", disable=None):
            frames = run()
            tracks[sequence.name][name] = score_tracks(frames, sequence, estimator)
            pictures.append(cv2.putText(draw_last_frame(sequence, frames), name, (10, 30), cv2.FONT_HERSHEY_SIMPLEX,
                                        1.0, (255, 255, 0), 2, cv2.LINE_AA))
            if right is not None:
                from ..evaluation.stereo_tracks import stereo_trajectory  # GTSAM: imported with --stereo only
                estimates[name], stereo_shares[name] = stereo_trajectory(sequence, right, frames, pairing, cache)
        output.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(output / f"tracks_{sequence.name}.png"), cv2.cvtColor(np.vstack(pictures), cv2.COLOR_RGB2BGR))
        if estimates:
            from ..evaluation.trajectory import aligned_to_truth, score_trajectory  # evo: with --stereo only
            assert sequence.poses is not None
            times_s = np.array(sequence.times_ns()[: len(sequence.poses)]) / 1e9
            truth = sequence.poses[: len(times_s)]
            trajectories[sequence.name] = {name: {**score_trajectory(poses[: len(times_s)], truth, times_s),
                                                  "stereo_share": stereo_shares[name]}
                                           for name, poses in estimates.items()}
            plot_trajectories(output / f"trajectory_{sequence.name}.png", truth,
                              {name: aligned_to_truth(poses[: len(times_s)], truth, times_s)
                               for name, poses in estimates.items()}, sequence.name)
    return tracks, trajectories


if __name__ == "__main__":
    sys.exit(main())
