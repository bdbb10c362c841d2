"""Real training pairs with dense flow, and the synthetic stream's determinism: files read and refused, crops,
skipping, and items that depend only on (seed, index) (no ROS)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from r2d2_ros.image_io import read_rgb
from r2d2_ros.training.data import (DataConfig, FlowPairs, SyntheticPairs, make_synthetic_pair,
                                    read_flow)

from .test_augmentations import UNCHANGED

CONFIG = DataConfig(crop_size=32, min_source_side=32, max_source_side=64, photometric=UNCHANGED)


def _image(path: Path, height: int, width: int, seed: int) -> np.ndarray:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    cv2.imwrite(str(path), image)
    return read_rgb(path)


def _shift_flow(path: Path, height: int, width: int, dx: float, dy: float) -> None:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    np.save(path, np.stack([xs + dx, ys + dy], axis=2))


def _png_flow(path: Path, offsets: np.ndarray) -> None:
    """The original's format: (x, y) offsets times 16 as little-endian int16, stored as RGBA bytes."""
    raw = np.round(offsets * 16).astype("<i2")
    cv2.imwrite(str(path), cv2.cvtColor(raw.view(np.uint8).reshape(*offsets.shape[:2], 4), cv2.COLOR_RGBA2BGRA))


def test_png_flow_offsets_in_sixteenths_and_its_mask(tmp_path: Path) -> None:
    offsets = np.zeros((3, 4, 2), np.float32)
    offsets[..., 0], offsets[..., 1] = -2.5, 1.0625
    _png_flow(tmp_path / "flow.png", offsets)
    mask = np.full((3, 4), 255, np.uint8)
    mask[1, 2] = 0
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    flow = read_flow(tmp_path / "flow.png", tmp_path / "mask.png")
    ys, xs = np.mgrid[0:3, 0:4]
    expected = np.stack([xs - 2.5, ys + 1.0625], axis=2).astype(np.float32)
    expected[1, 2] = np.nan
    np.testing.assert_array_equal(flow, expected)
    assert flow.dtype == np.float32


def test_npy_flow_with_a_mask(tmp_path: Path) -> None:
    _shift_flow(tmp_path / "flow.npy", 3, 4, 1.5, 0.0)
    mask = np.full((3, 4), 1, np.uint8)  # any non-zero value is valid
    mask[0, 0] = 0
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    flow = read_flow(tmp_path / "flow.npy", tmp_path / "mask.png")
    assert np.isnan(flow[0, 0]).all() and flow[0, 1, 0] == 2.5 and np.isfinite(flow).sum() == 22
    assert np.isfinite(read_flow(tmp_path / "flow.npy")).all()  # a .npy needs no mask


@pytest.mark.parametrize("array", [np.zeros((3, 4, 3), np.float32), np.zeros((3, 4), np.float32)])
def test_npy_flow_of_another_shape_is_refused(tmp_path: Path, array: np.ndarray) -> None:
    np.save(tmp_path / "flow.npy", array)
    with pytest.raises(ValueError, match=r"expected an \(H, W, 2\) array, got"):
        read_flow(tmp_path / "flow.npy")


@pytest.mark.parametrize("content", [None, b"", b"\x93NUMPY truncated"])
def test_npy_flow_missing_empty_or_truncated_is_refused(tmp_path: Path, content: bytes | None) -> None:
    """A ValueError, which the pair streams skip and count: never another exception that would stop training."""
    if content is not None:
        (tmp_path / "flow.npy").write_bytes(content)
    with pytest.raises(ValueError, match="flow.npy: not a readable flow array"):
        read_flow(tmp_path / "flow.npy")


def test_npy_flow_of_python_objects_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "flow.npy", np.array([[[1.0, 2.0]]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):  # no unpickling of a file from elsewhere
        read_flow(tmp_path / "flow.npy")


def test_png_flows_that_cannot_be_read(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "mask.png"), np.full((3, 4), 255, np.uint8))
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((3, 4, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "deep.png"), np.zeros((3, 4, 4), np.uint16))
    for name in ("missing.png", "rgb.png", "deep.png"):
        with pytest.raises(ValueError, match=f"{name}: not an 8-bit RGBA flow PNG"):
            read_flow(tmp_path / name, tmp_path / "mask.png")
    _png_flow(tmp_path / "flow.png", np.zeros((3, 4, 2), np.float32))
    with pytest.raises(ValueError, match="a PNG flow needs a mask file"):
        read_flow(tmp_path / "flow.png")
    cv2.imwrite(str(tmp_path / "small_mask.png"), np.full((2, 4), 255, np.uint8))
    for mask in ("absent.png", "small_mask.png"):
        with pytest.raises(ValueError, match=f"{mask}: missing or not the size of the flow"):
            read_flow(tmp_path / "flow.png", tmp_path / mask)


def test_the_pair_list_names_its_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "pairs.txt").write_text("# comment\n\na.png b.png f.npy\na.png b.png\na b c d e\n")
    with pytest.raises(ValueError, match=r"pairs.txt: lines \[2, 3\] must read 'image1 image2 flow \[mask\]'"):
        FlowPairs(tmp_path, CONFIG)
    (tmp_path / "pairs.txt").write_text("# nothing but a comment\n\n")
    with pytest.raises(ValueError, match="pairs.txt: empty"):
        FlowPairs(tmp_path, CONFIG)
    with pytest.raises(ValueError, match="no pairs.txt"):
        FlowPairs(tmp_path / "absent", CONFIG)


def _folder(tmp_path: Path, lines: list[str]) -> Path:
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_crops_follow_the_flow_and_unusable_pairs_are_skipped(tmp_path: Path) -> None:
    """Pair 0 is unreadable, 1 too small, 2 has flow on too little of the crop, 3 is good: every item is pair 3,
    found after as many skips; image 2's crop is where the flow takes image 1's, clipped to image 2."""
    image1 = _image(tmp_path / "a.png", 32, 40, 0)
    canvas = np.random.default_rng(1).integers(0, 256, (48, 56, 3), dtype=np.uint8)
    canvas[11:43, 9:49] = image1  # image 2 sees image 1 moved by (9, 11)
    cv2.imwrite(str(tmp_path / "b.png"), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    _image(tmp_path / "small.png", 31, 40, 2)
    _shift_flow(tmp_path / "shift.npy", 32, 40, 9.0, 11.0)
    _shift_flow(tmp_path / "small.npy", 31, 40, 9.0, 11.0)  # fits image 1, which is smaller than a crop
    sparse = np.full((32, 40, 2), np.nan, np.float32)
    sparse[:4] = 0  # an eighth of the rows: below the quarter min_valid_fraction asks
    np.save(tmp_path / "sparse.npy", sparse)
    folder = _folder(tmp_path, ["a.png b.png missing.npy", "small.png b.png small.npy", "a.png b.png sparse.npy",
                                "a.png b.png shift.npy"])
    dataset = FlowPairs(folder, CONFIG)
    assert len(dataset) == 2**62
    for g in range(4):
        item = dataset[g]
        assert item["skipped"] == (3 - g) % 4 and item["index"] == g
        assert item["image1"].shape == item["image2"].shape == (32, 32, 3) and np.isnan(item["homography"]).all()
        assert item["homography"].shape == (3, 3)  # batched with synthetic pairs' homographies
        x0 = int(np.flatnonzero((image1[0, :, :] == item["image1"][0, 0]).all(axis=1))[0])  # where the crop starts
        np.testing.assert_array_equal(item["image1"], image1[:, x0:x0 + 32])
        flow = item["aflow"]
        finite = np.isfinite(flow).all(axis=2)
        assert finite.mean() > 0.9  # centred on the flow: nearly all of it lands in image 2's crop
        ys, xs = np.nonzero(finite)
        np.testing.assert_array_equal(item["image2"][flow[ys, xs, 1].astype(int), flow[ys, xs, 0].astype(int)],
                                      item["image1"][ys, xs])
    assert dataset[5]["skipped"] == 2  # pair 1 first, then 2 and 3


def test_a_crop_at_image_2s_corner_when_the_flow_leaves_it(tmp_path: Path) -> None:
    _image(tmp_path / "a.png", 32, 32, 0)
    image2 = _image(tmp_path / "b.png", 40, 40, 1)
    for name, shift, corner in (("left.npy", -30.0, (0, 0)), ("right.npy", 30.0, (8, 8))):
        _shift_flow(tmp_path / name, 32, 32, shift, shift)
        folder = _folder(tmp_path, [f"a.png b.png {name}"])
        item = FlowPairs(folder, DataConfig(**{**CONFIG.__dict__, "min_valid_fraction": 0.0}))[0]
        np.testing.assert_array_equal(item["image2"], image2[corner[1]:corner[1] + 32, corner[0]:corner[0] + 32])


def test_items_depend_only_on_the_seed_and_their_index(tmp_path: Path) -> None:
    for index in range(3):
        _image(tmp_path / f"{index}.png", 64, 80, index)
    images = sorted(tmp_path.glob("*.png"))
    stream, same, other = SyntheticPairs(images, CONFIG), SyntheticPairs(images, CONFIG, seed=0), \
        SyntheticPairs(images, CONFIG, seed=1)
    assert len(stream) == 2**62
    for g in (0, 4):
        np.testing.assert_array_equal(stream[g]["image2"], same[g]["image2"])
        source = read_rgb(images[stream._image_index(g)])
        expected = make_synthetic_pair(source, np.random.default_rng([0, 1, g]), CONFIG)
        np.testing.assert_array_equal(stream[g]["image2"], expected["image2"])
    assert any(not np.array_equal(stream[g]["image2"], other[g]["image2"]) for g in range(3))
    _shift_flow(tmp_path / "flow.npy", 64, 80, 2.0, 0.0)
    folder = _folder(tmp_path, ["0.png 1.png flow.npy"])
    flows, flows_seed0, flows_seed1 = FlowPairs(folder, CONFIG), FlowPairs(folder, CONFIG, seed=0), \
        FlowPairs(folder, CONFIG, seed=1)
    np.testing.assert_array_equal(flows[3]["image1"], flows_seed0[3]["image1"])
    assert any(not np.array_equal(flows[g]["image1"], flows_seed1[g]["image1"]) for g in range(4))
    rng = np.random.default_rng([0, 2, 3])  # the stream of real pairs: its first draws are the crop's corner
    x0, y0 = int(rng.integers(0, 80 - 32 + 1)), int(rng.integers(0, 64 - 32 + 1))
    np.testing.assert_array_equal(flows[3]["image1"], read_rgb(tmp_path / "0.png")[y0:y0 + 32, x0:x0 + 32])


def test_unreadable_photos_are_skipped_in_order(tmp_path: Path) -> None:
    (tmp_path / "0.png").write_bytes(b"not an image")
    for index in (1, 2, 3):
        _image(tmp_path / f"{index}.png", 64, 80, index)
    images = sorted(tmp_path.glob("*.png"))
    stream = SyntheticPairs(images, CONFIG)
    for g in range(8):
        item = stream[g]
        assert item["skipped"] == int(stream._image_index(g) == 0)
        used = images[stream._image_index(g + item["skipped"])]  # the next photo of the stream
        expected = make_synthetic_pair(read_rgb(used), np.random.default_rng([0, 1, g]), CONFIG)
        np.testing.assert_array_equal(item["image1"], expected["image1"])
    assert any(stream[g]["skipped"] for g in range(8))
    with pytest.raises(ValueError, match="no training images"):
        SyntheticPairs([], CONFIG)
    with pytest.raises(ValueError, match="none of the training images can be read"):
        SyntheticPairs(images[:1], CONFIG)[0]


def test_a_png_flow_pair_with_its_mask(tmp_path: Path) -> None:
    image = _image(tmp_path / "a.png", 32, 32, 0)
    cv2.imwrite(str(tmp_path / "b.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    _png_flow(tmp_path / "flow.png", np.zeros((32, 32, 2), np.float32))
    mask = np.full((32, 32), 255, np.uint8)
    mask[:, :8] = 0
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    item = FlowPairs(_folder(tmp_path, ["a.png b.png flow.png mask.png"]), CONFIG)[0]
    assert item["skipped"] == 0 and np.isnan(item["aflow"][:, :8]).all() and np.isfinite(item["aflow"][:, 8:]).all()
    assert item["aflow"].dtype == np.float32


def test_pairs_are_batched_channels_first_for_the_flow() -> None:
    from r2d2_ros.training.data import collate_pairs

    items = [{"image1": np.full((4, 4, 3), i, np.uint8), "image2": np.full((4, 4, 3), 10 + i, np.uint8),
              "aflow": np.full((4, 4, 2), i, np.float32), "homography": np.eye(3) * (i + 1), "skipped": i,
              "index": 7 + i} for i in range(2)]
    batch = collate_pairs(items)
    assert set(batch) == {"image1", "image2", "aflow", "homography", "skipped", "index"}
    assert batch["image1"].shape == batch["image2"].shape == (2, 4, 4, 3) and batch["image2"][1, 0, 0, 0] == 11
    assert batch["aflow"].shape == (2, 2, 4, 4) and batch["aflow"].is_contiguous() and batch["aflow"][1].eq(1).all()
    assert batch["homography"].shape == (2, 3, 3) and batch["homography"][1, 0, 0] == 2
    assert batch["skipped"].tolist() == [0, 1] and batch["index"].tolist() == [7, 8]
