"""Training configuration: defaults, the ranges each value accepts, YAML files and dotted overrides (no ROS)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from r2d2_ros.training.config import (ModelConfig, OptimConfig, RunConfig, TrainConfig, config_from_dict,
                                      config_to_dict, load_config)
from r2d2_ros.training.data import DataConfig

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_the_original_schedule_on_the_fast_net() -> None:
    """SPEC.md's training: Adam at 1e-4, constant, L2 penalty 5e-4, 8 pairs a step; the Fast net (model card)."""
    optim, run, model = OptimConfig(), RunConfig(), ModelConfig()
    assert (optim.lr, optim.weight_decay, optim.warmup_steps, optim.decay) == (1e-4, 5e-4, 0, "none")
    assert run.batch_size == 8 and run.amp == "auto" and run.batch_norm == "auto" and run.time_limit_minutes == 0
    assert model == ModelConfig("Fast_Quad_L2Net_ConfCFS()", "", False)
    assert TrainConfig().images == ("../shared/data/train",) and TrainConfig().flow_pairs == ()
    assert TrainConfig().optim == optim and TrainConfig().run == run and TrainConfig().model == model


def test_defaults_the_training_docs_describe() -> None:
    """docs/training.md: channels_last, the device found, validation on every 20th photo as 320 px pairs at 0.7;
    a fixed seed (batches are a function of the seed and their index: a rerun draws the same ones)."""
    run = RunConfig()
    assert run.channels_last is True and run.device == "auto" and run.seed == 0
    assert (run.val_image_every, run.val_size, run.val_threshold) == (20, 320, 0.7)


@pytest.mark.parametrize("values", [
    {"lr": 1e-12}, {"weight_decay": 0.0}, {"warmup_steps": 0}, {"min_lr_fraction": 0.0}, {"min_lr_fraction": 1.0},
    {"decay": "cosine"}, {"decay": "none"}])
def test_optimiser_values_at_the_edges_of_their_ranges(values: dict) -> None:
    assert dataclasses.asdict(OptimConfig(**values)).items() >= values.items()


@pytest.mark.parametrize("values, message", [
    ({"lr": 0.0}, "lr > 0"), ({"lr": -1e-4}, "lr > 0"), ({"weight_decay": -1e-9}, "weight_decay >= 0"),
    ({"warmup_steps": -1}, "warmup_steps >= 0"), ({"min_lr_fraction": -0.01}, "min_lr_fraction <= 1"),
    ({"min_lr_fraction": 1.01}, "min_lr_fraction <= 1"), ({"decay": "linear"}, "decay must be none or cosine")])
def test_optimiser_values_out_of_range_are_refused(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OptimConfig(**values)


COUNTS = ("steps", "batch_size", "log_every", "val_every", "val_pairs", "val_size", "val_image_every",
          "checkpoint_every")


@pytest.mark.parametrize("name", COUNTS)
def test_run_counts_are_at_least_one(name: str) -> None:
    assert getattr(RunConfig(**{name: 1}), name) == 1
    with pytest.raises(ValueError, match=f"{name} must be at least 1, got 0"):
        RunConfig(**{name: 0})


def test_run_choices_and_limits() -> None:
    for amp in ("auto", "none", "bf16", "fp16"):
        assert RunConfig(amp=amp).amp == amp
    for batch_norm in ("auto", "sync", "local", "frozen"):
        assert RunConfig(batch_norm=batch_norm).batch_norm == batch_norm
    assert RunConfig(workers=0).workers == 0 and RunConfig(time_limit_minutes=0.0).time_limit_minutes == 0
    for values, message in [({"amp": "fp8"}, "amp must be"), ({"batch_norm": "group"}, "batch_norm must be"),
                            ({"workers": -1}, "workers must be >= 0, got -1"),
                            ({"time_limit_minutes": -0.5}, "time_limit_minutes must be >= 0, got -0.5")]:
        with pytest.raises(ValueError, match=message):
            RunConfig(**values)


def test_config_from_nested_mappings() -> None:
    config = config_from_dict(TrainConfig, {"images": "photos", "flow_pairs": ["a", "b"], "optim": {"lr": 1},
                                            "run": {"channels_last": False, "steps": 3}})
    assert config.images == ("photos",) and config.flow_pairs == ("a", "b")  # one folder or a list: a tuple
    assert config.optim.lr == 1.0 and isinstance(config.optim.lr, float)  # YAML's 1 for a float setting
    assert config.run.channels_last is False and config.run.steps == 3 and isinstance(config.run.steps, int)
    assert config.model == ModelConfig() and config.data == DataConfig()  # sections not given keep their defaults
    assert config_from_dict(TrainConfig, {"images": ("x", "y")}).images == ("x", "y")


def test_config_from_dict_names_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"unknown setting\(s\) run.stepz, run.zz; known: \["):
        config_from_dict(TrainConfig, {"run": {"stepz": 3, "zz": 1}})
    with pytest.raises(ValueError, match=r"unknown setting\(s\) speed;"):
        config_from_dict(TrainConfig, {"speed": 3})
    with pytest.raises(ValueError, match="optim.: expected a mapping, got 3"):
        config_from_dict(TrainConfig, {"optim": 3})
    with pytest.raises(ValueError, match="^config: expected a mapping, got"):
        config_from_dict(TrainConfig, ["run"])  # type: ignore[arg-type]


def test_config_to_dict_round_trips() -> None:
    config = load_config(None, ["images=[a, b]", "flow_pairs=[c]", "run.steps=7", "optim.decay=cosine"])
    plain = config_to_dict(config)
    assert plain["images"] == ["a", "b"] and plain["flow_pairs"] == ["c"] and plain["run"]["steps"] == 7
    assert isinstance(plain["model"], dict) and plain["optim"]["decay"] == "cosine"
    assert config_from_dict(TrainConfig, plain) == config


def test_load_config_reads_a_file_then_applies_overrides(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("run:\n  steps: 10\n  output: here\noptim:\n  lr: 0.001\n")
    config = load_config(path, ["run.steps=20", "model.arch=Quad_L2Net_ConfCFS()", "run.output=a=b",
                                "loss.ap_weight = 2"])
    assert config.run.steps == 20 and config.run.output == "a=b" and config.optim.lr == 0.001
    assert config.model.arch == "Quad_L2Net_ConfCFS()" and config.loss.ap_weight == 2.0
    (tmp_path / "empty.yaml").write_text("")
    assert load_config(tmp_path / "empty.yaml") == TrainConfig()
    assert load_config(REPO / "config" / "train_default.yaml").optim.decay == "cosine"


def test_load_config_refuses_malformed_files_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- steps\n")
    with pytest.raises(ValueError, match="expected a mapping at the top level"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(ValueError, match="must look like section.key=value"):
        load_config(None, ["run.steps"])
    with pytest.raises(ValueError, match="run.steps.x: steps is not a section"):
        load_config(None, ["run.steps=3", "run.steps.x=1"])
    with pytest.raises(ValueError, match="unknown setting"):
        load_config(None, ["run.stepz=3"])
