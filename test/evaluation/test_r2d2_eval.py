"""r2d2-eval end to end on a small synthetic HPatches folder; malformed folders give clear errors."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros.backends import make_runner
from r2d2_ros.cli import evaluate
from r2d2_ros.cli.evaluate import main
from r2d2_ros.evaluation import methods
from r2d2_ros.evaluation.tracking import score_tracks
from r2d2_ros.evaluation.hpatches import DatasetError, load_hpatches
from r2d2_ros.evaluation.methods import OpenCVMethod, R2D2Method
from r2d2_ros.extraction import ExtractionConfig
from r2d2_ros.model import save_checkpoint
from r2d2_ros.model.nets import Quad_L2Net_ConfCFS
from r2d2_ros.weights import default_model_path


def _textured(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), (160, 120), interpolation=cv2.INTER_CUBIC)
    for _ in range(30):
        cv2.circle(image, tuple(int(v) for v in rng.integers(0, [160, 120])), int(rng.integers(3, 12)),
                   tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
    return image


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "hpatches"
    for name, seed in (("v_synthetic", 0), ("i_synthetic", 1), ("b_blurred", 2)):
        folder = root / name
        folder.mkdir(parents=True)
        image = _textured(seed)
        cv2.imwrite(str(folder / "1.png"), image)
        for k in range(2, 7):
            homography = np.array([[1 + 0.02 * k, 0.01 * k, 2.0 * k], [-0.01 * k, 1, k], [0, 0, 1]]) \
                if name.startswith("v") else np.eye(3)
            warped = cv2.warpPerspective(image, homography, (160, 120))
            if name.startswith("i"):
                warped = np.clip(warped * (1 - 0.08 * k), 0, 255).astype(np.uint8)
            np.savetxt(folder / f"H_1_{k}", homography)
            cv2.imwrite(str(folder / f"{k}.png"), warped)
    return root


def test_end_to_end_with_cache(dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    checkpoint = tmp_path / "random.pt"
    save_checkpoint(checkpoint, Quad_L2Net_ConfCFS())
    args = ["--hpatches", str(dataset), "--methods", "sift", "orb", f"random={checkpoint}", "--output",
            str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "--device", "cpu", "--min-size", "0",
            "--top-k", "300"]
    assert main(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["hpatches"]) == {"sift", "orb", "random"}
    assert set(results["hpatches"]["sift"]) == {"overall", "viewpoint", "illumination", "b"}
    assert results["hpatches"]["sift"]["overall"]["pairs"] == 15
    assert results["hpatches"]["sift"]["illumination"]["mma"][2] > 0.9  # identity homography, only darker
    sift = results["hpatches"]["sift"]
    assert [sift[name]["pairs"] for name in ("viewpoint", "illumination", "b")] == [5, 5, 5]
    assert sift["viewpoint"]["mma"][2] > 0.5  # the sequences' own homographies; their inverses give about 0
    assert sift["overall"]["mma"] == sorted(sift["overall"]["mma"])  # more pixels allowed, never fewer correct
    assert sift["viewpoint"]["homography_accuracy"]["5"] > 0.5
    assert results["hpatches"]["random"]["overall"]["features"] <= 300  # --top-k
    assert (tmp_path / "out" / "mma.png").stat().st_size > 0
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| sift |" in table and "MMA@3 viewpoint" in table


    def no_extraction(*_args: object) -> None:
        raise AssertionError("a rerun must take every feature from the cache")

    monkeypatch.setattr(OpenCVMethod, "extract", no_extraction)
    monkeypatch.setattr(R2D2Method, "extract", no_extraction)
    assert main(args) == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["hpatches"] == results["hpatches"]


def test_onnxruntime_backend_is_scored_and_cached_apart(dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="--backend onnxruntime needs it: pip install onnxruntime")
    # The bundled network: a random one matches nothing here, and zeros would compare equal whatever ran.
    common = ["--hpatches", str(dataset), "--methods", f"bundled={default_model_path()}", "--cache",
              str(tmp_path / "cache"), "--device", "cpu", "--min-size", "0", "--top-k", "300", "--precision", "fp32"]
    assert main([*common, "--output", str(tmp_path / "torch")]) == 0
    assert main([*common, "--output", str(tmp_path / "ort"), "--backend", "onnxruntime"]) == 0
    torch_run, ort_run = (json.loads((tmp_path / run / "results.json").read_text()) for run in ("torch", "ort"))
    torch_key, ort_key = (run["settings"]["methods"]["bundled"] for run in (torch_run, ort_run))
    assert ort_key == f"{torch_key}-onnxruntime-cpu-fp32"  # its own cache entry, PyTorch's key unchanged
    assert ort_run["settings"]["backend"]["name"] == "onnxruntime"
    assert torch_run["hpatches"]["bundled"]["illumination"]["mma"][2] > 0.5  # identity homographies, darker
    # The same network in fp32 on another runtime: the same scores up to ties at NMS plateaus and thresholds.
    for category in ("overall", "viewpoint", "illumination", "b"):
        torch_mma, ort_mma = (run["hpatches"]["bundled"][category]["mma"] for run in (torch_run, ort_run))
        assert np.allclose(torch_mma, ort_mma, atol=0.03), category


def test_a_method_with_another_top_k_shares_its_network(random_checkpoint: Path) -> None:
    # --tracks extracts more keypoints than the Oxford and VO runs; building the network (a TensorRT engine,
    # say) twice for that would double the start-up.
    config = ExtractionConfig(top_k=300)
    method = R2D2Method(random_checkpoint, config, torch.device("cpu"), "random")
    tracked = method.with_top_k(5000)
    assert tracked.network is method.network and tracked.config == config.replace(top_k=5000)
    assert method.config.top_k == 300, "the original keeps its own"
    assert tracked.key == R2D2Method(random_checkpoint, config.replace(top_k=5000), torch.device("cpu"), "random").key
    assert tracked.key != method.key, "cached apart"


def test_missing_image_and_bad_homography(dataset: Path) -> None:
    (dataset / "v_synthetic" / "4.png").unlink()
    with pytest.raises(DatasetError, match=r"v_synthetic: image 4 is missing"):
        load_hpatches(dataset)
    (dataset / "v_synthetic" / "4.png").write_bytes(b"")
    (dataset / "i_synthetic" / "H_1_3").write_text("1 2\n3 x\n")
    with pytest.raises(DatasetError, match=r"i_synthetic/H_1_3: not a 3x3 matrix"):
        load_hpatches(dataset)


def test_cli_reports_malformed_folders_as_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--hpatches", str(tmp_path), "--methods", "sift"])
    assert exit_info.value.code == 2 and "no sequence folders" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--hpatches", str(tmp_path), "--methods", "surf"])


def _panning_sequence(root: Path, frames: int = 4, step: int = 3) -> Path:
    """A KITTI-layout folder (no poses) of 120x160 views of a wider scene, moving ``step`` px per frame."""
    scene = cv2.resize(_textured(7), (160 + step * frames, 120))
    (root / "image").mkdir(parents=True)
    for index in range(frames):
        cv2.imwrite(str(root / "image" / f"{index:06d}.png"), scene[:, step * index : step * index + 160])
    (root / "calib.txt").write_text("P0: 150 0 80 0 0 150 60 0 0 0 1 0\n")
    return root


def test_tracks_keep_the_points_asked_for(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    checkpoint = tmp_path / "random.pt"
    save_checkpoint(checkpoint, Quad_L2Net_ConfCFS())
    sequence = _panning_sequence(tmp_path / "pan")
    common = ["--tracks", str(sequence), "--methods", f"random={checkpoint}", "--cache", str(tmp_path / "cache"),
              "--device", "cpu", "--min-size", "0", "--min-scale", "1", "--reliability-threshold", "0", "--repeatability-threshold", "0",
              "--track-features", "40"]
    runners, estimators = [], []
    monkeypatch.setattr(methods, "make_runner", lambda *args: runners.append(args) or make_runner(*args))
    monkeypatch.setattr(evaluate, "score_tracks", lambda *args: estimators.append(args[2]) or score_tracks(*args))
    assert main([*common, "--track-candidates", "200", "--output", str(tmp_path / "kept"),
                 "--pose-estimator", "ransac"]) == 0
    assert len(runners) == 1, "one network for the tracks and the rest"
    assert estimators == ["ransac"] * 3, "random, ORB and KLT tracks scored with the estimator asked for"
    kept = json.loads((tmp_path / "kept" / "results.json").read_text())
    assert kept["settings"]["track_candidates"] == 200
    assert any(path.name.endswith("-orb-200") for path in (tmp_path / "cache").iterdir()), "200 candidates extracted"
    tracked_config = ExtractionConfig(**kept["settings"]["extraction"]).replace(top_k=200)
    assert (tmp_path / "cache" / R2D2Method(checkpoint, tracked_config, torch.device("cpu"), "random").key).is_dir()
    # Tracked points first, then new ones up to 40: every frame carries exactly 40 (the random net fires everywhere).
    assert {name: scores["features_mean"] for name, scores in kept["tracks"]["pan"].items() if name != "klt"} == \
        {"random": 40.0, "orb": 40.0}
    assert kept["tracks"]["pan"]["orb"]["tracked_share"] > 0.5  # a random net's descriptors do not match
    with pytest.raises(SystemExit) as usage:
        main([*common, "--track-candidates", "20", "--output", str(tmp_path / "refused")])
    assert usage.value.code == 2 and "--track-candidates (20) must be at least --track-features (40)" in \
        capsys.readouterr().err


def _stereo_pan(root: Path, frames: int = 6, step: int = 3, disparity: int = 16) -> tuple[Path, Path]:
    """Left and right KITTI folders of a textured wall 5 m ahead, the rig moving 0.1 m right per frame:
    fx 150 px puts a frame's step at 3 px and, with a 0.5333 m baseline, the disparity at 16 px."""
    scene = cv2.resize(_textured(11), (160 + step * frames + disparity, 120))
    poses = np.array([np.hstack([np.eye(3), [[0.1 * index], [0], [0]]]).ravel() for index in range(frames)])
    folders = root / "left", root / "right"
    for folder, shift in zip(folders, (0, disparity)):
        (folder / "image").mkdir(parents=True)
        for index in range(frames):
            start = step * index + shift
            cv2.imwrite(str(folder / "image" / f"{index:06d}.png"), scene[:, start : start + 160])
        (folder / "calib.txt").write_text("P0: 150 0 80 0 0 150 60 0 0 0 1 0\nP1: 150 0 80 -80 0 150 60 0 0 0 1 0\n")
        np.savetxt(folder / "poses.txt", poses)
    return folders


def test_stereo_trajectories_of_every_front_end(tmp_path: Path, random_checkpoint: Path) -> None:
    left, right = _stereo_pan(tmp_path / "pan")
    assert main(["--tracks", str(left), "--stereo", str(right), "--methods", f"random={random_checkpoint}", "--cache",
                 str(tmp_path / "cache"), "--device", "cpu", "--min-size", "0", "--min-scale", "1",
                 "--reliability-threshold", "0", "--repeatability-threshold", "0", "--track-features", "100",
                 "--track-candidates", "300", "--track-flow", "--output",
                 str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    trajectories = results["trajectories"]["left"]
    assert set(trajectories) == {"random", "random_flow", "orb", "klt"}, "every front end through the back end"
    assert trajectories["klt"]["length_m"] == pytest.approx(0.5)
    assert trajectories["klt"]["ape_rmse_m"] < 0.02, "flowed corners on a textured wall give the 0.5 m within 2 cm"
    # Most corners are paired by flow; those in the left image's first 16 columns are not in the right image.
    assert 0.5 < trajectories["klt"]["stereo_share"] < 0.95
    # A random network's descriptors pair little and wrongly: its rows only need to exist and be numbers.
    assert all(np.isfinite(list(scores.values())).all() for scores in trajectories.values()), trajectories
    assert results["settings"]["stereo_back_end"]["window"] == 10
    assert "| left | klt |" in (tmp_path / "out" / "results.md").read_text()
    assert cv2.imread(str(tmp_path / "out" / "trajectory_left.png")) is not None


def test_tracks_on_half_size_copies_and_stereo_partners(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    left, right = _stereo_pan(tmp_path / "pan", frames=3)
    sequences, rights = evaluate._track_sequences([left], [right], 0.5, tmp_path / "cache")
    assert sequences[0].calibration.width == 80 and sequences[0].frames[0].parent.parent == \
        tmp_path / "cache" / "sequences" / "left_x0.5"
    assert rights["left_x0.5"].calibration.P[0, 3] == pytest.approx(-40), "the right camera's P1, halved"
    with pytest.raises(ValueError, match="no --tracks sequence has the same frames"):
        evaluate._track_sequences([left], [_stereo_pan(tmp_path / "longer", frames=4)[1]], 1.0, tmp_path / "cache")
    with pytest.raises(SystemExit):
        main(["--tracks", str(left), "--track-scale", "0", "--methods", "orb"])
    assert "--track-scale must be in (0, 1]" in capsys.readouterr().err


def test_stereo_without_gtsam_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    left, right = _stereo_pan(tmp_path / "pan", frames=2)
    monkeypatch.setitem(sys.modules, "gtsam", None)  # what an install without the [vo] extra has
    with pytest.raises(SystemExit) as usage:
        main(["--tracks", str(left), "--stereo", str(right), "--methods", "orb", "--output", str(tmp_path / "out")])
    assert usage.value.code == 2 and "--stereo needs GTSAM and evo (gtsam is missing): pip install .[vo]" in \
        capsys.readouterr().err
