"""The trainer learns, resumes exactly, writes checkpoints atomically and survives bad data."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros.cli.train import main as train_main
from r2d2_ros.model import load_checkpoint, load_model
from r2d2_ros.training import Trainer, load_config
from r2d2_ros.training.data import DataConfig, FlowPairs, SyntheticPairs, collate_pairs, list_images, read_flow
from r2d2_ros.training.validation import compare_checkpoints
from r2d2_ros.weights import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[2]
TINY = ["run.batch_size=4", "data.crop_size=64", "data.min_source_side=96", "data.max_source_side=128",
        "run.workers=0", "run.val_pairs=16", "run.val_image_every=5", "run.device=cpu", "optim.lr=0.001",
        "loss.border=8", "loss.distractors_per_image=100", "run.log_every=5",
        # Validation at the training crops' size, keeping every local maximum (a 40-step network
        # rarely passes the 0.7 thresholds).
        "run.val_size=96", "run.val_threshold=0.0",
        "run.amp=none"]  # the same arithmetic on every CPU (auto picks bf16 where it is native)


@pytest.fixture(scope="module")
def photos(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 real photos, downscaled (a few dozen images, as the issue asks)."""
    folder = tmp_path_factory.mktemp("photos")
    for path in sorted((data / "train" / "bsds500").iterdir())[:40]:
        image = cv2.imread(str(path))
        cv2.imwrite(str(folder / f"{path.stem}.png"), cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2)))
    return folder


def _config(photos: Path, output: Path, *extra: str):
    return load_config(None, [f"images=[{photos}]", f"run.output={output}", *TINY, *extra])


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as stream:
        return list(csv.DictReader(stream))


@pytest.mark.slow
def test_short_cpu_run_lowers_the_loss_and_beats_random_init(photos: Path, tmp_path: Path) -> None:
    trainer = Trainer(_config(photos, tmp_path, "run.steps=60", "run.val_every=60"))
    trainer.fit()
    losses = [float(row["total"]) for row in _rows(tmp_path / "metrics.csv")]
    validation = [float(row["val_mma3"]) for row in _rows(tmp_path / "validation.csv")]
    assert losses[-1] < losses[0] - 0.05, losses
    assert validation[-1] > validation[0] + 0.03, validation  # step 0 is the random initialisation
    # One model code: the trainer's checkpoint loads in the node's and CLIs' loader as it is.
    model = load_model(tmp_path / "best.pt")
    assert model.arch == "Fast_Quad_L2Net_ConfCFS()"
    assert load_checkpoint(tmp_path / "best.pt").config["run"]["steps"] == 60


def test_resume_continues_at_the_same_step_with_the_same_batches(photos: Path, tmp_path: Path) -> None:
    straight = Trainer(_config(photos, tmp_path / "straight", "run.steps=4", "run.val_every=100"))
    straight.fit()
    first = Trainer(_config(photos, tmp_path / "split", "run.steps=2", "run.val_every=100"))
    first.fit()
    resumed = Trainer(_config(photos, tmp_path / "split", "run.steps=4", "run.val_every=100"), resume=True)
    assert resumed.step == 2
    expected_batch = next(iter(straight._loader(2)))
    batch = next(iter(resumed._loader(2)))
    assert torch.equal(batch["index"], expected_batch["index"]) and torch.equal(batch["image2"], expected_batch["image2"])
    resumed.fit()
    for key, value in straight.model.state_dict().items():
        assert torch.allclose(resumed.model.state_dict()[key].float(), value.float(), atol=1e-6), key


def test_resume_with_a_new_learning_rate_uses_it(photos: Path, tmp_path: Path) -> None:
    """The schedule, not the checkpoint's optimizer state, sets the learning rate of a resumed chunk."""
    Trainer(_config(photos, tmp_path, "run.steps=2", "run.val_every=100", "optim.lr=0.001")).fit()
    resumed = Trainer(_config(photos, tmp_path, "run.steps=3", "run.val_every=100", "optim.lr=0.0002"), resume=True)
    resumed.fit()
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(2e-4)
    rates = [float(row["lr"]) for row in _rows(tmp_path / "metrics.csv")]
    assert rates[-1] == pytest.approx(2e-4)


def test_next_chunk_continues_from_exported_weights(photos: Path, tmp_path: Path) -> None:
    """A chunk can start from the committed (exported) model: its weights and global step, a fresh optimizer."""
    from r2d2_ros.cli.train import export_model

    Trainer(_config(photos, tmp_path / "chunk1", "run.steps=2", "run.val_every=100")).fit()
    export_model(tmp_path / "chunk1" / "last.pt", tmp_path / "shipped.pt")
    assert "optimizer" not in load_checkpoint(tmp_path / "shipped.pt").extra
    chunk2 = Trainer(_config(photos, tmp_path / "chunk2", "run.steps=3", "run.val_every=100"),
                     resume_from=tmp_path / "shipped.pt")
    assert chunk2.step == 2
    shipped = load_model(tmp_path / "shipped.pt").state_dict()
    for key, value in chunk2.model.state_dict().items():
        assert torch.equal(value, shipped[key]), key
    chunk2.fit()
    assert load_checkpoint(tmp_path / "chunk2" / "last.pt").extra["step"] == 3
    with pytest.raises(ValueError, match="this run trains"):
        Trainer(_config(photos, tmp_path / "chunk3", "model.arch=Quad_L2Net_ConfCFS()"),
                resume_from=tmp_path / "shipped.pt")


def test_trainer_logs_its_precision_choice(photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr("r2d2_ros.device.cpu_has_native_bf16", lambda cpuinfo=None: True)
    with caplog.at_level("INFO", logger="r2d2-train"):
        trainer = Trainer(_config(photos, tmp_path, "run.steps=1", "run.amp=auto"))
    assert trainer.amp_dtype == torch.bfloat16
    assert "native bf16" in caplog.text
    assert trainer.train_step(next(iter(trainer._loader(0)))).terms["total"] > 0


def test_a_pair_that_fails_its_checks_is_redrawn_never_used(textured_image: np.ndarray,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from r2d2_ros.training import data

    shifted_away = np.array([[1, 0, 64], [0, 1, 0], [0, 0, 1]], float)  # image 1 lands beside image 2
    draws = iter([shifted_away, shifted_away, np.eye(3)])
    monkeypatch.setattr(data, "sample_homography", lambda *args: next(draws))
    image = cv2.resize(textured_image, (320, 240))
    config = DataConfig(crop_size=64, min_source_side=96, max_source_side=128)
    pair = data.make_synthetic_pair(image, np.random.default_rng(0), config)
    np.testing.assert_array_equal(pair["homography"], np.eye(3))  # the third draw, the first valid one
    monkeypatch.setattr(data, "sample_homography", lambda *args: shifted_away)
    with pytest.raises(ValueError, match="no homography"):
        data.make_synthetic_pair(image, np.random.default_rng(0), config)


def test_kill_leaves_a_loadable_checkpoint_and_resume_goes_on(photos: Path, tmp_path: Path) -> None:
    args = [sys.executable, "-m", "r2d2_ros.cli.train", f"images=[{photos}]", f"run.output={tmp_path}", *TINY,
            "run.steps=1000", "run.val_every=1000", "run.checkpoint_every=1"]
    process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    # metrics.csv appears at step 5 (log_every): checkpoints are then being written at every step.
    while not (tmp_path / "metrics.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    step = load_checkpoint(tmp_path / "last.pt").extra["step"]  # never a torn file
    assert step >= 1
    for name in leftovers:  # a temporary file of the killed write may remain; it is never the checkpoint
        (tmp_path / name).unlink()
    resumed = Trainer(_config(photos, tmp_path, f"run.steps={step + 1}", "run.val_every=100"), resume=True)
    assert resumed.step == step
    resumed.fit()
    assert load_checkpoint(tmp_path / "last.pt").extra["step"] == step + 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stop_signal_saves_a_checkpoint_before_exiting(photos: Path, tmp_path: Path, signum: int) -> None:
    """SIGTERM to the trainer, or Ctrl-C (SIGINT to the whole process group, data worker included)."""
    args = [sys.executable, "-m", "r2d2_ros.cli.train", f"images=[{photos}]", f"run.output={tmp_path}", *TINY,
            "run.steps=1000", "run.val_every=1000", "run.checkpoint_every=1000", "run.workers=1"]
    process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "metrics.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signum)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors
    step = load_checkpoint(tmp_path / "last.pt").extra["step"]
    assert 5 <= step < 1000


def test_non_finite_loss_skips_the_step(photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(_config(photos, tmp_path, "run.steps=1", "run.val_every=100"))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    original = trainer.criterion.forward

    def poisoned(*args, **kwargs):
        terms = original(*args, **kwargs)
        terms["total"] = terms["total"] * float("nan")
        return terms

    monkeypatch.setattr(trainer.criterion, "forward", poisoned)
    result = trainer.train_step(next(iter(trainer._loader(0))))
    assert result.skipped and trainer.counters["nonfinite_steps"] == 1
    for key, value in trainer.model.state_dict().items():
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(value, before[key]), key


def test_unreadable_images_are_skipped_and_counted(tmp_path: Path, textured_image: np.ndarray) -> None:
    for index in range(3):
        cv2.imwrite(str(tmp_path / f"good{index}.png"), cv2.resize(textured_image, (320, 240)))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    dataset = SyntheticPairs(list_images([tmp_path]), DataConfig(crop_size=64, min_source_side=96, max_source_side=128))
    items = [dataset[g] for g in range(8)]
    assert sum(item["skipped"] for item in items) >= 1
    batch = collate_pairs(items)
    assert batch["image1"].shape == (8, 64, 64, 3) and batch["aflow"].shape == (8, 2, 64, 64)


def test_synthetic_flow_agrees_with_the_images(tmp_path: Path, textured_image: np.ndarray) -> None:
    """Pixels of image 1 and where the flow sends them in image 2 look alike (before photometric changes)."""
    from r2d2_ros.training.data import PHOTOMETRIC, PhotometricConfig, make_synthetic_pair

    config = DataConfig(crop_size=64, min_source_side=96, max_source_side=128,
                        photometric=PhotometricConfig(**{name: 0 for name in PHOTOMETRIC}))
    image = cv2.GaussianBlur(cv2.resize(textured_image, (320, 240)), (5, 5), 0)
    pair = make_synthetic_pair(image, np.random.default_rng(0), config)
    flow = pair["aflow"]
    ys, xs = np.nonzero(np.isfinite(flow).all(axis=2))
    x2, y2 = np.rint(flow[ys, xs, 0]).astype(int), np.rint(flow[ys, xs, 1]).astype(int)
    difference = np.abs(pair["image1"][ys, xs].astype(int) - pair["image2"][y2, x2].astype(int)).mean()
    assert difference < 12


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_greyscale_share_of_pairs(textured_image: np.ndarray, share: float) -> None:
    """Both images of a pair are grey, or neither; about ``share`` of the pairs are; 0 draws nothing."""
    from r2d2_ros.training.data import make_synthetic_pair

    image = cv2.resize(textured_image, (320, 240))
    image[..., 0] = 255 - image[..., 0]  # strongly coloured, so that a grey image cannot happen by chance
    config = DataConfig(crop_size=64, min_source_side=96, max_source_side=128, greyscale=share)
    grey = []
    for seed in range(40):
        pair = make_synthetic_pair(image, np.random.default_rng(seed), config)
        is_grey = [bool((pair[name] == pair[name][..., :1]).all()) for name in ("image1", "image2")]
        assert is_grey[0] == is_grey[1], "both images of a pair are grey, or neither"
        grey.append(is_grey[0])
    assert sum(grey) == pytest.approx(40 * share, abs=8)
    if share == 0.0:  # no extra random draw: the pairs of recipes without greyscale are unchanged
        unchanged = DataConfig(crop_size=64, min_source_side=96, max_source_side=128)
        np.testing.assert_array_equal(make_synthetic_pair(image, np.random.default_rng(3), unchanged)["image2"],
                                      make_synthetic_pair(image, np.random.default_rng(3), config)["image2"])
    with pytest.raises(ValueError, match="greyscale"):
        DataConfig(greyscale=1.5)


def test_flow_pairs_in_both_file_formats(tmp_path: Path, textured_image: np.ndarray) -> None:
    image = cv2.resize(textured_image, (160, 120))
    cv2.imwrite(str(tmp_path / "a.png"), image)
    cv2.imwrite(str(tmp_path / "b.png"), np.roll(image, 5, axis=1))  # image 2 = image 1 moved 5 px right
    ys, xs = np.mgrid[0:120, 0:160].astype(np.float32)
    np.save(tmp_path / "flow.npy", np.stack([xs + 5, ys], axis=2))
    offsets = np.zeros((120, 160, 2), "<i2")
    offsets[..., 0] = 5 * 16
    cv2.imwrite(str(tmp_path / "flow.png"), cv2.cvtColor(offsets.view(np.uint8).reshape(120, 160, 4), cv2.COLOR_RGBA2BGRA))
    cv2.imwrite(str(tmp_path / "mask.png"), np.full((120, 160), 255, np.uint8))
    np.testing.assert_allclose(read_flow(tmp_path / "flow.png", tmp_path / "mask.png"), np.load(tmp_path / "flow.npy"))
    (tmp_path / "pairs.txt").write_text("# image1 image2 flow [mask]\na.png b.png flow.npy\na.png b.png flow.png mask.png\n")
    dataset = FlowPairs(tmp_path, DataConfig(crop_size=64, min_source_side=96, max_source_side=128))
    for g in range(2):
        item = dataset[g]
        assert item["image1"].shape == (64, 64, 3) and np.isfinite(item["aflow"]).any()
    (tmp_path / "pairs.txt").write_text("a.png b.png\n")
    with pytest.raises(ValueError, match="image1 image2 flow"):
        FlowPairs(tmp_path, DataConfig(crop_size=64, min_source_side=96, max_source_side=128))


def test_unknown_config_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown setting"):
        load_config(None, ["run.stepz=3"])
    with pytest.raises(ValueError, match="amp"):
        load_config(None, ["run.amp=fp8"])
    assert load_config(REPO / "config" / "train_default.yaml").optim.lr == 1e-4


def test_init_from_a_checkpoint_with_a_fresh_reliability_head(photos: Path, tmp_path: Path) -> None:
    first = Trainer(_config(photos, tmp_path / "first", "run.steps=1", "run.val_every=100"))
    first.fit()
    second = Trainer(_config(photos, tmp_path / "second", "run.steps=1", f"model.init={tmp_path / 'first' / 'last.pt'}",
                             "model.reset_reliability=true"))
    assert torch.equal(second.model.ops[0].weight, first.model.ops[0].weight)
    assert not second.model.clf.weight.any() and not second.model.clf.bias.any()
    assert second.step == 0


def test_validate_compares_checkpoints_on_the_same_pairs(photos: Path, tmp_path: Path, random_checkpoint: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """r2d2-train --validate: the bundled network beats a random one by an interval clear of zero."""
    config = _config(photos, tmp_path / "run")
    trainer = Trainer(config)
    untrained = tmp_path / "untrained.pt"
    trainer.save(untrained)
    scores = compare_checkpoints(trainer, [untrained, DEFAULT_MODEL, untrained])
    assert scores[0].difference == 0 and scores[0].difference_interval == (0.0, 0.0)
    assert scores[2].mma3 == scores[0].mma3, "same weights on the same pairs, the same score"
    trained = scores[1]
    assert trained.step == load_checkpoint(DEFAULT_MODEL).meta["step"]
    assert trained.mma3_interval[0] <= trained.mma3 <= trained.mma3_interval[1]
    assert trained.difference > 0.1 and trained.difference_interval[0] > 0, scores

    overrides = [f"images=[{photos}]", f"run.output={tmp_path / 'run'}", *TINY]
    assert train_main([*overrides, "--validate", str(untrained), str(DEFAULT_MODEL)]) == 0
    table = capsys.readouterr().out
    assert f"| {untrained} | 0 |" in table and f"| {DEFAULT_MODEL} | {trained.step} |" in table
    with pytest.raises(SystemExit) as refused:  # an N16 checkpoint for a Fast config: refused before scoring
        train_main([*overrides, "--validate", str(untrained), str(random_checkpoint)])
    assert refused.value.code == 2 and "Quad_L2Net_ConfCFS()" in capsys.readouterr().err


def test_resume_keeps_the_best_score_only_for_the_same_validation_pairs(photos: Path, tmp_path: Path) -> None:
    first = Trainer(_config(photos, tmp_path, "run.steps=1", "run.val_every=1"))
    first.fit()
    assert first.best_mma >= 0
    same_pairs = Trainer(_config(photos, tmp_path, "run.steps=2", "run.val_every=1"), resume=True)
    assert same_pairs.best_mma == first.best_mma
    # More validation pairs (or another recipe) score differently: best.pt is chosen anew.
    for change in ("run.val_pairs=4", "data.greyscale=0.5"):
        other = Trainer(_config(photos, tmp_path, "run.steps=2", "run.val_every=1", change), resume=True)
        assert other.best_mma == -1.0, change
