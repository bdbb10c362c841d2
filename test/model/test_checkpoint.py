from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch

from r2d2_ros.model import CheckpointError, load_checkpoint, load_model, parse_arch, prepare_for_inference, save_checkpoint
from r2d2_ros.model.checkpoint import Checkpoint
from r2d2_ros.model.nets import Quad_L2Net_ConfCFS


class TestParseArch:
    @pytest.mark.parametrize(
        ("text", "name", "kwargs"),
        [
            ("Quad_L2Net_ConfCFS()", "Quad_L2Net_ConfCFS", {}),
            (" Quad_L2Net_ConfCFS(mchan=6) ", "Quad_L2Net_ConfCFS", {"mchan": 6}),
            ("Fast_Quad_L2Net_ConfCFS()", "Fast_Quad_L2Net_ConfCFS", {}),
        ],
    )
    def test_valid(self, text: str, name: str, kwargs: dict[str, int]) -> None:
        spec = parse_arch(text)
        assert (spec.name, spec.kwargs) == (name, kwargs)

    @pytest.mark.parametrize(
        "text",
        [
            "__import__('os').system('touch /tmp/pwned')",
            "Quad_L2Net_ConfCFS(mchan=__import__('os').getpid())",
            "Quad_L2Net_ConfCFS(4)",
            "Quad_L2Net_ConfCFS(evil=1)",
            "Quad_L2Net_ConfCFS(mchan=-1)",
            "SomethingElse()",
            "Quad_L2Net_ConfCFS",
            "Quad_L2Net_ConfCFS(",
        ],
    )
    def test_rejects_anything_else(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_arch(text)


class TestOwnFormat:
    def test_round_trip_keeps_weights_and_config(self, tmp_path: Path) -> None:
        net = Quad_L2Net_ConfCFS()
        path = tmp_path / "model.pt"
        save_checkpoint(path, net, config={"lr": 1e-4}, meta={"steps": 3})
        checkpoint = load_checkpoint(path)
        assert checkpoint.config == {"lr": 1e-4} and checkpoint.meta == {"steps": 3}
        loaded = load_model(path)
        for key, value in net.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value)
        assert list(tmp_path.iterdir()) == [path]  # the temporary file was renamed away

    def test_refuses_to_save_inference_copy(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="prepared for inference"):
            save_checkpoint(tmp_path / "x.pt", prepare_for_inference(Quad_L2Net_ConfCFS()))


class TestBadFiles:
    def test_missing(self, tmp_path: Path) -> None:
        with pytest.raises(CheckpointError, match="nope.pt: no such file"):
            load_model(tmp_path / "nope.pt")

    def test_truncated(self, tmp_path: Path) -> None:
        good = tmp_path / "good.pt"
        save_checkpoint(good, Quad_L2Net_ConfCFS())
        bad = tmp_path / "truncated.pt"
        bad.write_bytes(good.read_bytes()[:5000])
        with pytest.raises(CheckpointError, match="truncated.pt: not a readable checkpoint"):
            load_model(bad)

    def test_garbage(self, tmp_path: Path) -> None:
        bad = tmp_path / "garbage.pt"
        bad.write_bytes(b"\x00not a checkpoint" * 10)
        with pytest.raises(CheckpointError, match="garbage.pt"):
            load_model(bad)

    def test_hostile_pickle_is_not_executed(self, tmp_path: Path) -> None:
        marker = tmp_path / "executed"

        class Exploit:
            def __reduce__(self):  # noqa: ANN204
                return (Path.touch, (marker,))

        path = tmp_path / "hostile.pt"
        torch.save({"net": "Quad_L2Net_ConfCFS()", "state_dict": {}, "x": Exploit()}, path)
        with pytest.raises(CheckpointError, match="hostile.pt"):
            load_model(path)
        assert not marker.exists()

    def test_unknown_architecture(self, tmp_path: Path) -> None:
        path = tmp_path / "unknown.pt"
        torch.save({"net": "ResNet50()", "state_dict": {}}, path)
        with pytest.raises(CheckpointError, match="unknown.pt: unknown architecture 'ResNet50'"):
            load_model(path)

    def test_weights_of_another_architecture(self, tmp_path: Path) -> None:
        path = tmp_path / "mismatch.pt"
        torch.save({"net": "Quad_L2Net_ConfCFS(mchan=6)", "state_dict": Quad_L2Net_ConfCFS().state_dict()}, path)
        with pytest.raises(CheckpointError, match="mismatch.pt: weights do not match"):
            load_model(path)

    def test_unknown_format(self, tmp_path: Path) -> None:
        path = tmp_path / "other.pt"
        torch.save({"model": {}}, path)
        with pytest.raises(CheckpointError, match="unknown checkpoint format"):
            load_model(path)


class TestPartialAndInterrupted:
    def test_a_checkpoint_missing_weights_is_refused_not_loaded_as_a_random_net(self, tmp_path: Path) -> None:
        state = Quad_L2Net_ConfCFS().state_dict()
        partial = {key: value for key, value in state.items() if not key.startswith("sal.")}  # no repeatability head
        path = tmp_path / "partial.pt"
        torch.save({"net": "Quad_L2Net_ConfCFS()", "state_dict": partial}, path)
        with pytest.raises(CheckpointError, match=r"(?s)partial.pt: weights do not match.*sal\.weight"):
            load_model(path)

    def test_a_checkpoint_with_unknown_weights_is_refused(self, tmp_path: Path) -> None:
        state = {**Quad_L2Net_ConfCFS().state_dict(), "extra_head.weight": torch.zeros(3)}
        path = tmp_path / "extra.pt"
        torch.save({"net": "Quad_L2Net_ConfCFS()", "state_dict": state}, path)
        with pytest.raises(CheckpointError, match="extra_head.weight"):
            load_model(path)

    def test_a_write_that_fails_midway_keeps_the_previous_checkpoint(self, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
        torch.manual_seed(0)
        old, new = Quad_L2Net_ConfCFS(), Quad_L2Net_ConfCFS()
        path = tmp_path / "last.pt"
        save_checkpoint(path, old, meta={"step": 1})

        def write_half_then_fail(content: object, stream) -> None:  # noqa: ANN001 (a file object)
            stream.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("r2d2_ros.model.checkpoint.torch.save", write_half_then_fail)
        with pytest.raises(OSError, match="No space left"):
            save_checkpoint(path, new, meta={"step": 2})
        monkeypatch.undo()
        assert load_checkpoint(path).meta == {"step": 1}
        assert torch.equal(load_model(path).ops[0].weight, old.ops[0].weight)
        assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


class TestFormatDetails:
    """What the file holds, checked on files written by hand where the format is the point."""

    def test_the_version_1_layout_that_committed_weights_use(self, tmp_path: Path) -> None:
        net = Quad_L2Net_ConfCFS(mchan=6)
        path = tmp_path / "by_hand.pt"
        torch.save({"format": "r2d2_ros", "version": 1, "arch": {"name": "Quad_L2Net_ConfCFS", "kwargs": {"mchan": 6}},
                    "state_dict": net.state_dict(), "config": {"lr": 0.1}, "meta": {"step": 5}, "optimizer": {"x": 1}},
                   path)
        checkpoint = load_checkpoint(path)
        assert checkpoint.arch.to_string() == "Quad_L2Net_ConfCFS(mchan=6)"
        assert (checkpoint.config, checkpoint.meta, checkpoint.extra) == ({"lr": 0.1}, {"step": 5}, {"optimizer": {"x": 1}})
        torch.save({**torch.load(path, weights_only=True), "version": 2}, path)
        with pytest.raises(CheckpointError, match="version 2"):
            load_checkpoint(path)

    def test_what_save_writes(self, tmp_path: Path) -> None:
        path = tmp_path / "new" / "folder" / "model.pt"  # folders are created
        save_checkpoint(path, Quad_L2Net_ConfCFS(mchan=6), extra={"optimizer": {"step": 3}})
        content = torch.load(path, weights_only=True)
        assert (content["format"], content["version"]) == ("r2d2_ros", 1)
        assert content["arch"] == {"name": "Quad_L2Net_ConfCFS", "kwargs": {"mchan": 6}}
        assert (content["config"], content["meta"], content["optimizer"]) == ({}, {}, {"step": 3})
        assert path.stat().st_mode & 0o777 == 0o644, "readable by the other users of a robot"
        checkpoint = load_checkpoint(path)
        assert checkpoint.extra == {"optimizer": {"step": 3}} and checkpoint.arch.kwargs == {"mchan": 6}

    def test_an_optimizer_state_with_defaultdicts_loads_safely(self, tmp_path: Path) -> None:
        path = tmp_path / "with_state.pt"
        save_checkpoint(path, Quad_L2Net_ConfCFS(), extra={"state": collections.defaultdict(list, {"a": [1]})})
        assert load_checkpoint(path).extra["state"] == {"a": [1]}

    def test_an_original_checkpoint_from_data_parallel(self, tmp_path: Path) -> None:
        net = Quad_L2Net_ConfCFS()
        path = tmp_path / "original.pt"
        torch.save({"net": "Quad_L2Net_ConfCFS()", "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}},
                   path)
        model = load_model(path)
        assert model.checkpoint_meta == {"source": "original R2D2 checkpoint"}
        assert all(torch.equal(model.state_dict()[k], v) for k, v in net.state_dict().items())

    @pytest.mark.parametrize(("content", "message"), [
        ({"state_dict": {}}, "unknown checkpoint format"),  # weights alone say nothing of the network
        ({"net": "Quad_L2Net_ConfCFS()", "state_dict": {"w": 1}}, "not a mapping of tensors"),
        ({"format": "r2d2_ros", "version": 1, "arch": "Quad_L2Net_ConfCFS()", "state_dict": {}}, "malformed 'arch'"),
        ({"format": "r2d2_ros", "version": 1, "arch": {"kwargs": {}}, "state_dict": {}}, "malformed 'arch'"),
    ])
    def test_malformed_contents(self, tmp_path: Path, content: dict, message: str) -> None:
        path = tmp_path / "bad.pt"
        torch.save(content, path)
        with pytest.raises(CheckpointError, match=message) as error:
            load_checkpoint(path)
        assert error.value.path == str(path) and message in error.value.problem

    def test_a_checkpoint_built_in_code_has_empty_config_and_meta(self) -> None:
        checkpoint = Checkpoint(parse_arch("Quad_L2Net_ConfCFS()"), {})
        assert (checkpoint.config, checkpoint.meta, checkpoint.extra) == ({}, {}, {})


@pytest.mark.parametrize(("text", "accepted"), [("Quad_L2Net_ConfCFS(dim=64)", True), ("Quad_L2Net_ConfCFS(mchan=1)", True),
                                                ("Quad_L2Net_ConfCFS(mchan=0)", False),
                                                ("Quad_L2Net_ConfCFS(mchan=True)", False),
                                                ("Quad_L2Net_ConfCFS(mchan='4')", False)])
def test_architecture_arguments(text: str, accepted: bool) -> None:
    if accepted:
        assert parse_arch(text).to_string() == text
    else:
        with pytest.raises(ValueError, match="must be a positive integer"):
            parse_arch(text)
