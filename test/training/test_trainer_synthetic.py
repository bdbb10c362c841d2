"""Trainer safeguards on synthetic photos made here, so that they are checked where ../shared is absent."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from r2d2_ros.model import load_checkpoint
from r2d2_ros.training import Trainer, load_config

from .test_trainer import TINY


@pytest.fixture(scope="module")
def synthetic_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten 160x128 pictures of blurred noise and coloured discs."""
    folder = tmp_path_factory.mktemp("synthetic_photos")
    rng = np.random.default_rng(0)
    for index in range(10):
        image = cv2.resize(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8), (160, 128), interpolation=cv2.INTER_CUBIC)
        for _ in range(20):
            centre = tuple(int(v) for v in rng.integers(0, [160, 128]))
            cv2.circle(image, centre, int(rng.integers(3, 15)), tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
        cv2.imwrite(str(folder / f"photo{index}.png"), image)
    return folder


def _trainer(photos: Path, output: Path, *extra: str, **kwargs: object) -> Trainer:
    """A two-step run on the tiny settings; ``kwargs`` go to :class:`Trainer` (resume, resume_from)."""
    return Trainer(load_config(None, [f"images=[{photos}]", f"run.output={output}", *TINY, "run.val_pairs=2",
                                      "run.steps=2", "run.val_every=100", *extra]), **kwargs)


def _learnable(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in trainer.model.state_dict().items()
            if "running" not in key and "num_batches" not in key}


def test_a_non_finite_gradient_with_a_finite_loss_skips_the_step(synthetic_photos: Path, tmp_path: Path) -> None:
    trainer = _trainer(synthetic_photos, tmp_path)
    before = _learnable(trainer)
    # One layer's gradient turns NaN on the way back; the loss itself stays finite.
    handle = trainer.model.ops[0].weight.register_hook(lambda gradient: gradient * float("nan"))
    try:
        result = trainer.train_step(next(iter(trainer._loader(0))))
    finally:
        handle.remove()
    assert all(np.isfinite(value) for value in result.terms.values()), result.terms
    assert result.skipped and trainer.counters["nonfinite_steps"] == 1
    for key, value in _learnable(trainer).items():
        assert torch.equal(value, before[key]), key
    # The next, healthy step trains again.
    healthy = trainer.train_step(next(iter(trainer._loader(0))))
    assert not healthy.skipped and trainer.counters["nonfinite_steps"] == 1
    assert not torch.equal(trainer.model.ops[0].weight, before["ops.0.weight"])


def test_a_finite_step_changes_the_weights(synthetic_photos: Path, tmp_path: Path) -> None:
    trainer = _trainer(synthetic_photos, tmp_path)
    before = _learnable(trainer)
    result = trainer.train_step(next(iter(trainer._loader(0))))
    assert not result.skipped and trainer.counters["nonfinite_steps"] == 0
    assert any(not torch.equal(value, before[key]) for key, value in _learnable(trainer).items())


def test_a_checkpoint_write_that_fails_midway_keeps_the_last_good_one(synthetic_photos: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = _trainer(synthetic_photos, tmp_path)
    last = tmp_path / "last.pt"
    trainer.save(last)
    trainer.train_step(next(iter(trainer._loader(0))))
    trainer.step = 1

    def write_half_then_fail(content: object, stream) -> None:  # noqa: ANN001 (a file object)
        stream.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("r2d2_ros.model.checkpoint.torch.save", write_half_then_fail)
    with pytest.raises(OSError):
        trainer.save(last)
    monkeypatch.undo()
    assert load_checkpoint(last).extra["step"] == 0  # the previous checkpoint, whole
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".pt", ".tmp")) == ["last.pt"]
    resumed = _trainer(synthetic_photos, tmp_path, "run.steps=3")
    resumed.load(last)
    assert resumed.step == 0
