"""r2d2-eval --vo-bag: the VO check on a feature bag scores as the features extracted from the images in order."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch

from r2d2_ros import ExtractionConfig
from r2d2_ros.bags import write_sequence_bag
from r2d2_ros.cli import evaluate, extract
from r2d2_ros.evaluation.methods import R2D2Method
from r2d2_ros.evaluation.vo import evaluate_vo, score_vo
from r2d2_ros.image_io import read_rgb
from r2d2_ros.sequences import load_sequence

from .conftest import FAST_EXTRACTION

FRAMES, SIZE = 4, (310, 94)  # KITTI's 1241x376 quartered


@pytest.fixture
def small_kitti(data: Path, tmp_path: Path) -> Path:
    """The first KITTI frames, quartered, with their calibration scaled and their poses."""
    source, folder = data / "sequences" / "kitti_seq1_left", tmp_path / "kitti"
    (folder / "image").mkdir(parents=True)
    for path in sorted((source / "image").iterdir())[:FRAMES]:
        quartered = cv2.resize(cv2.imread(str(path)), SIZE, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / "image" / path.name), quartered)
    calibration = load_sequence(source).calibration
    projection = calibration.resized(*SIZE).P
    (folder / "calib.txt").write_text("P0: " + " ".join(f"{v:.9e}" for v in projection.reshape(-1)) + "\n")
    (folder / "poses.txt").write_text("".join((source / "poses.txt").read_text().splitlines(keepends=True)[:FRAMES]))
    return folder


def test_vo_on_a_feature_bag(small_kitti: Path, random_checkpoint: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    write_sequence_bag(load_sequence(small_kitti), tmp_path / "camera", storage="sqlite3")
    assert extract.main(["--bag", str(tmp_path / "camera"), "--output-bag", str(tmp_path / "features"),
                         "--model", str(random_checkpoint), *FAST_EXTRACTION]) == 0
    settings = ["--vo", str(small_kitti), "--output", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"),
                *FAST_EXTRACTION]
    assert evaluate.main([*settings, "--vo-bag", str(tmp_path / "features")]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    # Tied scores make the cached .r2d2 order differ, and RANSAC depends on the order: so compare with
    # the features as extraction returns them, which is what the bag stores.
    sequence = load_sequence(small_kitti)
    method = R2D2Method(random_checkpoint, ExtractionConfig(min_scale=1, min_size=0, top_k=60, reliability_threshold=0,
                                                     repeatability_threshold=0), torch.device("cpu"))
    features = [method.extract(read_rgb(frame)) for frame in sequence.frames]
    expected = score_vo(sequence, features)
    assert results["vo"] == {"features": expected} and expected["pairs"] == FRAMES - 1
    assert results["settings"]["pose_estimator"] == "lo-ransac"
    assert "| features |" in (tmp_path / "out" / "results.md").read_text()
    # The estimator of earlier results, on request, for the bag and for a method (a random net's poses fail
    # either way: so look at the calls).
    estimators: list[str] = []
    monkeypatch.setattr(evaluate, "score_vo", lambda *args: estimators.append(args[2]) or score_vo(*args))
    monkeypatch.setattr(evaluate, "evaluate_vo", lambda *args: estimators.append(args[4]) or evaluate_vo(*args))
    assert evaluate.main([*settings, "--vo-bag", str(tmp_path / "features"), "--methods", "orb",
                          "--pose-estimator", "ransac"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert estimators == ["ransac", "ransac"] and results["vo"]["features"] == score_vo(sequence, features, "ransac")
    assert results["settings"]["pose_estimator"] == "ransac"

    with pytest.raises(SystemExit) as exit_info:  # a feature bag of another sequence
        evaluate.main([*settings, "--vo-bag", str(tmp_path / "camera")])
    assert exit_info.value.code == 2 and "no r2d2_ros/msg/Keypoints topic" in capsys.readouterr().err
