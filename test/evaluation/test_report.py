"""Evaluation reports: JSON, the Markdown tables' rows as printed, and the plots' files (no ROS)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from r2d2_ros.evaluation.report import (markdown_table, plot_mma, plot_trajectories, trajectory_table, tracks_table,
                                        write_json)


def _summary(scale: float) -> dict:
    def group(offset: float) -> dict:
        return {"pairs": 3, "mma": [round(scale * (t + offset) / 20, 4) for t in range(1, 11)],
                "thresholds": list(range(1, 11)), "features": 1234.56, "matches": 456.4, "repeatability": 0.61234,
                "homography_accuracy": {"1": 0.1, "3": 0.456, "5": 0.9}}
    return {"overall": group(0), "v": group(2), "i": group(1)}


def test_json_written_into_a_new_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "results.json"
    write_json(path, {"b": 1, "a": [1.5, "x"]})
    assert path.read_text() == '{\n  "b": 1,\n  "a": [\n    1.5,\n    "x"\n  ]\n}\n'
    assert json.loads(path.read_text()) == {"b": 1, "a": [1.5, "x"]}


def test_markdown_table_of_hpatches_and_vo() -> None:
    vo = {"r2d2": {"rotation_error_median_deg": 0.12345, "translation_error_median_deg": 2.345,
                   "translation_error_median_ci95_deg": [1.234, 3.456], "inliers_median": 101.5,
                   "features_mean": 999.5}}
    table = markdown_table({"r2d2": _summary(1.0), "fast": _summary(0.5)}, vo).splitlines()
    assert table[0] == ("| method | MMA@1 | MMA@3 | MMA@5 | MMA@10 | MMA@3 i | MMA@3 v | features | matches | "
                        "repeatability@3 | H acc @1/3/5 px |")
    assert table[1] == "|" + "---|" * 11
    assert table[2] == "| r2d2 | 0.050 | 0.150 | 0.250 | 0.500 | 0.200 | 0.250 | 1235 | 456 | 0.612 | 0.10/0.46/0.90 |"
    assert table[3].startswith("| fast | 0.025 | 0.075 | 0.125 | 0.250 | 0.100 | 0.125 |")
    assert table[4] == ""
    assert table[5] == ("| method | rotation error median (deg) | translation direction error median (deg) | "
                        "its 95% interval (bootstrap over pairs) | inliers median | features |")
    assert table[6] == "|---|---|---|---|---|---|" and table[7] == "| r2d2 | 0.123 | 2.35 | 1.23-3.46 | 102 | 1000 |"
    assert len(table) == 8
    assert markdown_table({}, vo).splitlines()[0] == "" and markdown_table({}, {}) == "\n"
    assert "| method | MMA@1 |" in markdown_table({"r2d2": _summary(1.0)}, {}) and "inliers" not in markdown_table(
        {"r2d2": _summary(1.0)}, {})


def test_tracks_table_rows_with_and_without_ground_truth() -> None:
    scores = {"features_mean": 512.4, "tracked_share": 0.81234, "track_length_mean": 4.567, "track_length_median": 4.0,
              "survival_share": 0.4567, "consistent_share": 0.98765, "rotation_error_median_deg": 0.1,
              "translation_error_median_deg": 1.23456}
    truth_only = ("survival_share", "consistent_share", "rotation_error_median_deg", "translation_error_median_deg")
    no_poses = {k: v for k, v in scores.items() if k not in truth_only}
    lines = tracks_table({"seq": {"r2d2": scores, "klt": no_poses}}).splitlines()
    assert lines[0] == "" and lines[2] == "|" + "---|" * 10
    assert lines[1] == ("| sequence | method | features | tracked share | track length mean | median | still tracked 5 "
                        "frames later | consistent share (Sampson < 1 px) | rotation error median (deg) | "
                        "translation direction error median (deg) |")
    assert lines[3] == "| seq | r2d2 | 512 | 0.812 | 4.57 | 4 | 0.457 | 0.988 | 0.100 | 1.235 |"
    assert lines[4] == "| seq | klt | 512 | 0.812 | 4.57 | 4 | n/a | n/a (no poses) | n/a (no poses) | n/a (no poses) |"


def test_trajectory_table_rows() -> None:
    row = {"stereo_share": 0.61234, "ape_rmse_m": 1.23456, "rpe_translation_rmse_m": 0.012345,
           "rpe_rotation_rmse_deg": 0.054321, "length_m": 123.456}
    lines = trajectory_table({"kitti 00": {"r2d2 flow": row}}).splitlines()
    assert lines[0] == "" and lines[2] == "|" + "---|" * 7
    assert lines[1] == ("| sequence | front end | points with a stereo partner | APE RMSE (m) | "
                        "RPE translation RMSE (m/frame) | RPE rotation RMSE (deg/frame) | path length (m) |")
    assert lines[3] == "| kitti 00 | r2d2 flow | 0.612 | 1.235 | 0.0123 | 0.0543 | 123.5 |"


def test_plots_are_written_into_new_folders_at_their_sizes(tmp_path: Path) -> None:
    """One MMA panel per category beside the overall one (4 x 3.6 in at 120 dpi each); trajectories 11 x 5 in at 90."""
    plot_mma(tmp_path / "a" / "mma.png", {"r2d2": _summary(1.0), "fast": {"overall": _summary(0.5)["overall"]}})
    assert cv2.imread(str(tmp_path / "a" / "mma.png")).shape == (432, 3 * 480, 3)
    truth = np.stack([np.hstack([np.eye(3), [[i], [0], [2.0 * i]]]) for i in range(5)])
    estimate = np.stack([np.vstack([pose, [0, 0, 0, 1]]) for pose in truth + 0.1])
    plot_trajectories(tmp_path / "b" / "trajectory.png", truth, {"stereo": estimate}, "kitti")
    assert cv2.imread(str(tmp_path / "b" / "trajectory.png")).shape == (450, 990, 3)


def _figures_of(monkeypatch, draw) -> list:  # noqa: ANN001
    """The figures ``draw()`` saves, kept open for a look (plt.close stands aside)."""
    import matplotlib.pyplot as plt

    figures: list = []
    monkeypatch.setattr(plt, "close", figures.append)
    draw()
    monkeypatch.undo()
    return figures


def test_mma_panels_draw_each_method_per_category(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    summary = {"r2d2": _summary(1.0), "fast": {"overall": _summary(0.5)["overall"]}}
    (figure,) = _figures_of(monkeypatch, lambda: plot_mma(tmp_path / "x" / "y" / "mma.png", summary))
    overall, illumination, viewpoint = figure.axes
    assert [axis.get_title() for axis in figure.axes] == ["overall", "i", "v"]
    assert [line.get_label() for line in overall.lines] == ["r2d2", "fast"]
    assert [line.get_label() for line in illumination.lines] == ["r2d2"]  # "fast" has no categories
    np.testing.assert_array_equal(overall.lines[1].get_ydata(), summary["fast"]["overall"]["mma"])
    assert all(axis.get_ylim() == (0, 1) for axis in figure.axes) and overall.get_ylabel() == "MMA"
    assert viewpoint.get_legend() is not None and overall.get_legend() is None
    plot_mma(tmp_path / "x" / "y" / "again.png", summary)  # into the same folder again


def test_trajectories_seen_from_above_and_their_drift(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    truth = np.stack([np.hstack([np.eye(3), [[i], [5.0], [2.0 * i]]]) for i in range(4)])
    estimate = np.stack([np.vstack([np.hstack([np.eye(3), [[i + 0.5], [5.0], [2.0 * i]]]), [0, 0, 0, 1]])
                         for i in range(4)])
    (figure,) = _figures_of(monkeypatch, lambda: plot_trajectories(tmp_path / "a" / "b" / "t.png", truth,
                                                                   {"stereo": estimate}))
    above, error = figure.axes
    (ground, drawn) = above.lines
    np.testing.assert_array_equal(ground.get_xdata(), [0, 1, 2, 3]) and np.testing.assert_array_equal(
        ground.get_ydata(), [0, 2, 4, 6])  # x and z: the ground plane
    np.testing.assert_array_equal(drawn.get_xdata(), [0.5, 1.5, 2.5, 3.5])
    np.testing.assert_array_equal(drawn.get_ydata(), [0, 2, 4, 6])
    np.testing.assert_array_equal(error.lines[0].get_ydata(), [0.5] * 4)
    assert above.get_title() == ": seen from above" and ground.get_label() == "ground truth"
    square = np.stack([np.vstack([pose, [0, 0, 0, 1]]) for pose in truth])  # ground truth as (N, 4, 4) poses
    (figure,) = _figures_of(monkeypatch, lambda: plot_trajectories(tmp_path / "a" / "b" / "t2.png", square,
                                                                   {"stereo": estimate}, "kitti"))
    np.testing.assert_array_equal(figure.axes[1].lines[0].get_ydata(), [0.5] * 4)
    assert figure.axes[0].get_title() == "kitti: seen from above"
    write_json(tmp_path / "a" / "b" / "r.json", {})  # into an existing folder
