"""Camera sequences on disk: plain image folders, EuRoC (cam0) and KITTI odometry layouts.

Shared by the replay player (publishing them as a camera), the bag recorder (r2d2_ros.bags) and
the visual-odometry check.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from .image_io import IMAGE_SUFFIXES

__all__ = ["CameraCalibration", "Sequence", "load_sequence", "load_stereo_pair", "write_resized_sequence"]


@dataclass(frozen=True)
class CameraCalibration:
    """Pinhole intrinsics of the sequence's camera, as sensor_msgs/CameraInfo wants them."""

    width: int
    height: int
    K: np.ndarray  # (3, 3)
    D: tuple[float, ...] = ()
    distortion_model: str = "plumb_bob"
    P: np.ndarray | None = None  # (3, 4); K with a zero column when None

    def resized(self, width: int, height: int) -> CameraCalibration:
        """The calibration of the same camera with its images resized to ``width`` x ``height``."""
        scale = np.diag([width / self.width, height / self.height, 1.0])
        return replace(self, width=width, height=height, K=scale @ self.K,
                       P=None if self.P is None else scale @ self.P)

    def camera_info_fields(self) -> dict[str, Any]:
        """The sensor_msgs/CameraInfo fields this calibration gives (k, d, r, p as lists of floats)."""
        projection = self.P if self.P is not None else np.hstack([self.K, np.zeros((3, 1))])
        return {"k": [float(v) for v in self.K.reshape(-1)], "d": [float(v) for v in self.D],
                "distortion_model": self.distortion_model, "r": [float(v) for v in np.eye(3).reshape(-1)],
                "p": [float(v) for v in projection.reshape(-1)]}


@dataclass
class Sequence:
    """Frames in order, with their timestamps (ns) and, where the layout has them, calibration and poses."""

    name: str
    frames: list[Path]
    timestamps_ns: list[int] | None = None
    calibration: CameraCalibration | None = None
    poses: np.ndarray | None = None  # (N, 3, 4) camera-to-world, KITTI convention
    rate_hz: float | None = field(default=None)

    def times_ns(self) -> list[int]:
        """Each frame's time: the recorded timestamp, else its index over the rate (10 Hz when unknown)."""
        if self.timestamps_ns is not None:
            return list(self.timestamps_ns)
        period_ns = round(1e9 / (self.rate_hz or 10.0))
        return [index * period_ns for index in range(len(self.frames))]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _load_euroc(folder: Path) -> Sequence:
    frames, stamps = [], []
    for line in (folder / "data.csv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            stamp, name = (part.strip() for part in line.split(",")[:2])
            frames.append(folder / "data" / name)
            stamps.append(int(stamp))
    calibration = None
    sensor = folder / "sensor.yaml"
    if sensor.exists():
        # EuRoC files start with an OpenCV '%YAML:1.0' directive that PyYAML does not accept.
        text = "\n".join(line for line in sensor.read_text().splitlines() if not line.startswith("%YAML"))
        info = yaml.safe_load(text)
        fu, fv, cu, cv = info["intrinsics"]
        width, height = info["resolution"]
        calibration = CameraCalibration(
            width, height, np.array([[fu, 0, cu], [0, fv, cv], [0, 0, 1]], float),
            tuple(float(c) for c in info.get("distortion_coefficients", [])) + (0.0,), "plumb_bob",
        )
        return Sequence(folder.name, frames, stamps, calibration, rate_hz=float(info.get("rate_hz", 20)))
    return Sequence(folder.name, frames, stamps)


def _kitti_projections(folder: Path) -> list[np.ndarray]:
    """The 3x4 projections of calib.txt, one per line (P0 left, P1 right, ...), with or without 'P0:' labels."""
    projections = []
    for line in (folder / "calib.txt").read_text().splitlines():
        values = [float(v) for v in line.split() if not v.endswith(":")]
        if len(values) >= 12:
            projections.append(np.array(values[:12]).reshape(3, 4))
    if not projections:
        raise ValueError(f"{folder / 'calib.txt'}: no 3x4 projection matrix")
    return projections


def _load_kitti(folder: Path, camera: int = 0) -> Sequence:
    frames = _images_in(folder / "image")
    projections = _kitti_projections(folder)
    if camera >= len(projections):
        raise ValueError(f"{folder / 'calib.txt'}: no projection P{camera} ({len(projections)} given)")
    projection = projections[camera]
    first = cv2.imread(os.fspath(frames[0]), cv2.IMREAD_UNCHANGED)
    height, width = first.shape[:2]
    calibration = CameraCalibration(width, height, projection[:, :3].copy(), (0.0,) * 5, "plumb_bob", projection)
    poses = None
    if (folder / "poses.txt").exists():
        poses = np.loadtxt(folder / "poses.txt").reshape(-1, 3, 4)
    return Sequence(folder.name, frames, None, calibration, poses, rate_hz=10.0)


def load_sequence(path: str | os.PathLike[str]) -> Sequence:
    """Reads a sequence folder: EuRoC (data.csv), KITTI (image/ + calib.txt), or a folder of images.

    Raises:
        ValueError: the folder is missing or holds no images.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    if (folder / "data.csv").exists():
        sequence = _load_euroc(folder)
    elif (folder / "image").is_dir() and (folder / "calib.txt").exists():
        sequence = _load_kitti(folder)
    else:
        sequence = Sequence(folder.name, _images_in(folder))
    if not sequence.frames:
        raise ValueError(f"{folder}: no images found")
    return sequence


def load_stereo_pair(left: str | os.PathLike[str], right: str | os.PathLike[str]) -> tuple[Sequence, Sequence]:
    """A KITTI stereo pair: the left folder's sequence, and the right folder's with its calib.txt's second
    projection (P1, carrying the baseline) as its calibration.

    Raises:
        ValueError: either is not a KITTI folder, or the two do not hold the same frames.
    """
    folders = Path(left), Path(right)
    if not all((folder / "image").is_dir() and (folder / "calib.txt").exists() for folder in folders):
        raise ValueError(f"{left}, {right}: a stereo pair needs two KITTI folders (image/, calib.txt)")
    left_sequence, right_sequence = _load_kitti(folders[0]), _load_kitti(folders[1], camera=1)
    if [f.name for f in left_sequence.frames] != [f.name for f in right_sequence.frames]:
        raise ValueError(f"{left}, {right}: not the same frames ({len(left_sequence.frames)} and "
                         f"{len(right_sequence.frames)} images, names must match)")
    return left_sequence, right_sequence


def _resized_images(sources: list[Path], folder: Path, scale: float) -> np.ndarray:
    """Writes each image resized by ``scale`` into ``folder``; returns the 3x3 map of pixel coordinates
    from the original images to the resized ones (the images must share one size)."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = set()
    for source in sources:
        image = cv2.imread(os.fspath(source), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"{source}: not an image")
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        cv2.imwrite(os.fspath(folder / source.name), cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        sizes.add((image.shape[1], image.shape[0], *size))
    if len(sizes) != 1:
        raise ValueError(f"{folder}: the sequence's images differ in size")
    width, height, new_width, new_height = sizes.pop()
    # Pixel centres at integers: x' = (x + 0.5) * sx - 0.5, per axis, with the rounded size's own ratio.
    sx, sy = new_width / width, new_height / height
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])


def write_resized_sequence(source: str | os.PathLike[str], target: str | os.PathLike[str], scale: float) -> Path:
    """A copy of a KITTI or EuRoC sequence folder with every image resized by ``scale`` and the intrinsics
    to match (ground truth and timestamps unchanged), in the same layout; returns ``target``.

    Raises:
        ValueError: ``scale`` is not in (0, 1], or the folder is neither layout.
    """
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    source, target = Path(source), Path(target)
    if (source / "image").is_dir() and (source / "calib.txt").exists():
        resize = _resized_images(_images_in(source / "image"), target / "image", scale)
        lines = [" ".join(f"{v:.12e}" for v in (resize @ projection).reshape(-1))
                 for projection in _kitti_projections(source)]
        (target / "calib.txt").write_text("\n".join(lines) + "\n")
        if (source / "poses.txt").exists():
            (target / "poses.txt").write_bytes((source / "poses.txt").read_bytes())
        return target
    if (source / "data.csv").exists() and (source / "sensor.yaml").exists():
        sequence = _load_euroc(source)
        resize = _resized_images(sequence.frames, target / "data", scale)
        (target / "data.csv").write_bytes((source / "data.csv").read_bytes())
        text = "\n".join(line for line in (source / "sensor.yaml").read_text().splitlines()
                         if not line.startswith("%YAML"))
        info = yaml.safe_load(text)
        camera_matrix = resize @ sequence.calibration.K
        info["intrinsics"] = [float(v) for v in camera_matrix[[0, 1, 0, 1], [0, 1, 2, 2]]]
        info["resolution"] = [round(info["resolution"][0] * resize[0, 0]), round(info["resolution"][1] * resize[1, 1])]
        (target / "sensor.yaml").write_text("%YAML:1.0\n" + yaml.safe_dump(info))
        return target
    raise ValueError(f"{source}: neither a KITTI (image/, calib.txt) nor a EuRoC (data.csv, sensor.yaml) folder")
