"""r2d2-extract --bag: every frame into a feature bag, resumable; bad bags are one error line."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Writer

import r2d2_ros.cli.extract as extract_cli
from r2d2_ros import ExtractionConfig, extract_multiscale, load_model, prepare_for_inference
from r2d2_ros.bags import IMAGE_TYPES, FeatureBag, TopicReader, decode_frame, stamp_ns, typestore
from r2d2_ros.bags.store import IMAGE

from .conftest import FAST_EXTRACTION, FRAMES, TOPIC


def _extract(bag: Path, output: Path, random_checkpoint: Path, *extra: str) -> int:
    return extract_cli.main(["--bag", str(bag), "--output-bag", str(output), "--model", str(random_checkpoint),
                             *FAST_EXTRACTION, *extra])


def _read(path: Path) -> list[tuple[int, str, dict[str, np.ndarray]]]:
    with FeatureBag(path) as bag:
        return [(stamp_ns(header), header.frame_id, features.numpy()) for header, features in bag]


@pytest.mark.parametrize(("storage", "compressed"), [("mcap", False), ("sqlite3", True)])
def test_every_frame_becomes_keypoints_with_its_header(make_bag: Callable[..., Path], random_checkpoint: Path,
                                                       tmp_path: Path, storage: str, compressed: bool) -> None:
    bag, output = make_bag(storage, compressed), tmp_path / "features"
    assert _extract(bag, output, random_checkpoint, "--storage", storage) == 0
    with TopicReader(bag, None, IMAGE_TYPES) as reader:
        frames = [(stamp_ns(item.message.header), decode_frame(item.message, reader.msgtype))
                  for item in reader.messages()]
    model = prepare_for_inference(load_model(random_checkpoint, "cpu"))
    config = ExtractionConfig(min_scale=1, min_size=0, top_k=60, reliability_threshold=0, repeatability_threshold=0)
    read = _read(output)
    assert [(stamp, frame_id) for stamp, frame_id, _ in read] == [(s, "camera_optical_frame") for s, _ in frames]
    for (_, _, features), (_, image) in zip(read, frames):
        direct = extract_multiscale(model, image, config).numpy()
        assert features["keypoints"].shape == (60, 3)
        for name in ("keypoints", "scores", "descriptors"):
            np.testing.assert_allclose(features[name], direct[name], atol=1e-6)
    with FeatureBag(output) as feature_bag:
        settings = feature_bag.settings
    assert settings["extraction"]["top_k"] == 60 and settings["model"]["name"] == "random_n16"
    assert settings["input"]["topic"] == (f"{TOPIC}/compressed" if compressed else TOPIC)
    assert settings["topic"] == "/cam0/keypoints" and settings["storage"] == storage
    metadata = (output / "metadata.yaml").read_text()
    assert f"storage_identifier: {storage}" in metadata and "r2d2_ros/msg/Keypoints" in metadata


def test_interrupted_run_leaves_a_valid_bag_and_continues(make_bag: Callable[..., Path], random_checkpoint: Path,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    bag, output = make_bag("mcap"), tmp_path / "features"
    assert _extract(bag, tmp_path / "uninterrupted", random_checkpoint) == 0
    calls = []

    def interrupted_on_third_frame(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return extract_multiscale(*args, **kwargs)

    monkeypatch.setattr(extract_cli, "extract_multiscale", interrupted_on_third_frame)
    with pytest.raises(SystemExit) as exit_info:
        _extract(bag, output, random_checkpoint, "--chunk-frames", "1")
    assert exit_info.value.code == 130 and "rerun the same command" in capsys.readouterr().err
    assert len(_read(output)) == 2  # what was done is a valid bag
    monkeypatch.undo()
    assert _extract(bag, output, random_checkpoint, "--chunk-frames", "1") == 0
    resumed, uninterrupted = _read(output), _read(tmp_path / "uninterrupted")
    assert [r[:2] for r in resumed] == [u[:2] for u in uninterrupted] and len(resumed) == FRAMES
    for (_, _, got), (_, _, expected) in zip(resumed, uninterrupted):
        np.testing.assert_array_equal(got["descriptors"], expected["descriptors"])
    with pytest.raises(SystemExit) as exit_info:  # other settings must not be mixed into it
        _extract(bag, output, random_checkpoint, "--top-k", "10")
    assert exit_info.value.code == 2 and "written with other settings" in capsys.readouterr().err


def test_corrupt_frame_is_skipped_and_counted(make_bag: Callable[..., Path], random_checkpoint: Path, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with TopicReader(make_bag("mcap"), TOPIC, IMAGE_TYPES) as reader:
        good = list(reader.messages())
    bag = tmp_path / "damaged"
    with Writer(bag, version=9) as writer:
        connection = writer.add_connection(TOPIC, IMAGE, typestore=typestore())
        message = good[0].message
        message.step = 7  # deserialises, but the node's decoder refuses it
        writer.write(connection, 1, typestore().serialize_cdr(message, IMAGE))
        writer.write(connection, 2, good[1].raw[:64])  # does not deserialise
        writer.write(connection, 3, good[2].raw)
    assert _extract(bag, tmp_path / "features", random_checkpoint) == 1
    assert [stamp for stamp, _, _ in _read(tmp_path / "features")] == [stamp_ns(good[2].message.header)]
    assert "2 corrupt or undecodable messages skipped" in caplog.text


@pytest.mark.parametrize(
    ("prepare", "arguments", "message"),
    [
        (lambda bag: (bag / "euroc_mcap_raw.mcap").write_bytes(b"\x89MCAP0\r\n") and bag, [],
         "not a readable rosbag2"),
        (lambda bag: bag, ["--topic", "/cam0/camera_info"], "holds sensor_msgs/msg/CameraInfo"),
        (lambda bag: (bag / "metadata.yaml").write_text((bag / "metadata.yaml").read_text().replace(
            "storage_identifier: mcap", "storage_identifier: tape")) and bag, [], "Storage plugin 'tape'"),
    ],
    ids=["truncated", "not-an-image", "unknown-storage"],
)
def test_bad_bags_give_one_error_line(make_bag: Callable[..., Path], random_checkpoint: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str], prepare: Callable[[Path], Path],
                                      arguments: list[str], message: str) -> None:
    bag = prepare(make_bag("mcap"))
    with pytest.raises(SystemExit) as exit_info:
        _extract(bag, tmp_path / "features", random_checkpoint, *arguments)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert error.count("\n") == 1 and error.startswith("r2d2-extract: error: ") and message in error
    assert not (tmp_path / "features").exists()


def test_images_or_a_bag_but_not_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        extract_cli.main(["--bag", str(tmp_path)])  # no --output-bag
    assert "give images, or --bag with --output-bag" in capsys.readouterr().err
