"""The learning-curve PNG of the model card: CSV columns joined over chunks, the figure, the command line."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import pytest

from r2d2_ros.training.curves import main, plot_learning_curve, read_rows


def test_empty_cells_read_as_nan_and_rows_sort_by_step(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("step,total,val\n20,1.5,\n3,2.5,0.25\n")
    columns = read_rows([path])
    assert columns["step"] == [3.0, 20.0] and columns["total"] == [2.5, 1.5]
    assert columns["val"][0] == 0.25 and math.isnan(columns["val"][1])
    assert read_rows([]) == {}


@pytest.mark.filterwarnings("error")  # an empty panel with a legend warns
def test_curve_of_metrics_alone_or_validation_alone(tmp_path: Path) -> None:
    """11 x 3.8 in at 110 dpi, into a folder made for it, from either log alone."""
    metrics_only, validation_only = tmp_path / "m", tmp_path / "v"
    metrics_only.mkdir(), validation_only.mkdir()
    (metrics_only / "metrics.csv").write_text("step,total,ap,cosim,peaky,mean_ap\n"
                                              "25,2.0,0.9,0.5,0.4,0.1\n50,1.8,0.8,0.4,0.3,0.2\n")
    (validation_only / "validation.csv").write_text("step,val_mma3\n0,0.1\n100,0.2\n")  # no keypoint column
    for run in (metrics_only, validation_only):
        output = tmp_path / "out" / run.name / "curve.png"
        plot_learning_curve([run], output)
        assert cv2.imread(str(output)).shape == (418, 1210, 3)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "validation.csv").write_text("step,val_mma3,val_keypoints\n0,0.1,40\n")
    assert main([str(run), "--output", str(tmp_path / "curve.png")]) == 0 and (tmp_path / "curve.png").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nothing"), "--output", str(tmp_path / "none.png")])
    assert exit_info.value.code == 2 and "no metrics.csv or validation.csv in" in capsys.readouterr().err
    assert not (tmp_path / "none.png").exists()


def test_the_figure_draws_every_loss_term_and_both_validation_figures(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keeps the figure for a look after it is saved
    (tmp_path / "metrics.csv").write_text("step,total,ap,cosim,peaky,mean_ap,lr\n25,5,4,3,2,1,0.1\n50,5,4,3,2,1,0.1\n")
    (tmp_path / "validation.csv").write_text("step,val_mma3,val_keypoints\n0,0.1,40\n50,0.3,60\n")
    plot_learning_curve([tmp_path], tmp_path / "curve.png")
    losses, checks, counts = figures[0].axes
    assert [line.get_label() for line in losses.lines] == ["total", "ap", "cosim", "peaky", "mean_ap"]  # not lr
    assert [line.get_ydata()[0] for line in losses.lines] == [5, 4, 3, 2, 1]
    assert [list(line.get_ydata()) for line in checks.lines] == [[0.1, 0.3]] and checks.get_ylim() == (0, 1)
    assert [list(line.get_ydata()) for line in counts.lines] == [[40, 60]]
    monkeypatch.undo()
    plt.close(figures[0])


def test_the_output_file_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run"])
    assert exit_info.value.code == 2 and "the following arguments are required: --output" in capsys.readouterr().err


def test_run_as_a_module(tmp_path: Path) -> None:
    """python -m r2d2_ros.training.curves, as the model card's figure is made."""
    import subprocess
    import sys

    (tmp_path / "validation.csv").write_text("step,val_mma3\n0,0.1\n")
    done = subprocess.run([sys.executable, "-m", "r2d2_ros.training.curves", str(tmp_path), "--output",
                           str(tmp_path / "curve.png")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "curve.png").is_file()
