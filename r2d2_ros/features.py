"""Local features as a dataclass, and the original R2D2 ``.r2d2`` npz file format."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["Features", "DenseMaps", "save_r2d2", "load_r2d2"]


@dataclass
class DenseMaps:
    """Heatmaps of the largest pyramid level actually used.

    Attributes:
        reliability: (h, w), in [0, 1].
        repeatability: (h, w), in [0, 1].
    """

    reliability: torch.Tensor
    repeatability: torch.Tensor


@dataclass
class Features:
    """Keypoints of one image, best score first.

    Attributes:
        keypoints: (N, 3) float32: x, y in input pixels, and scale (patch diameter in pixels).
        descriptors: (N, D) float32 (or the extraction precision), unit L2 norm.
        scores: (N,) reliability x repeatability, descending.
        image_size: (width, height) of the input image.
        maps: dense heatmaps, when requested.
    """

    keypoints: torch.Tensor
    descriptors: torch.Tensor
    scores: torch.Tensor
    image_size: tuple[int, int]
    maps: DenseMaps | None = None

    def __post_init__(self) -> None:
        n = self.keypoints.shape[0]
        if self.keypoints.ndim != 2 or self.keypoints.shape[1] != 3:
            raise ValueError(f"keypoints must be (N, 3), got {tuple(self.keypoints.shape)}")
        if self.descriptors.ndim != 2 or self.descriptors.shape[0] != n or self.scores.shape != (n,):
            raise ValueError(
                f"inconsistent shapes: keypoints {tuple(self.keypoints.shape)}, "
                f"descriptors {tuple(self.descriptors.shape)}, scores {tuple(self.scores.shape)}"
            )

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def select(self, indices: np.ndarray | torch.Tensor) -> Features:
        """The keypoints at ``indices`` (in the order given), with the same image size and maps."""
        index = torch.as_tensor(indices, dtype=torch.long, device=self.keypoints.device)
        return Features(self.keypoints[index], self.descriptors[index], self.scores[index], self.image_size, self.maps)

    def to(self, device: str | torch.device) -> Features:
        """A copy with every tensor on ``device``."""
        maps = None
        if self.maps is not None:
            maps = DenseMaps(self.maps.reliability.to(device), self.maps.repeatability.to(device))
        return Features(
            self.keypoints.to(device), self.descriptors.to(device), self.scores.to(device), self.image_size, maps
        )

    def numpy(self) -> dict[str, np.ndarray]:
        """keypoints, descriptors (float32) and scores as numpy arrays, best first."""
        return {
            "keypoints": self.keypoints.float().cpu().numpy(),
            "descriptors": self.descriptors.float().cpu().numpy(),
            "scores": self.scores.float().cpu().numpy(),
        }


def save_r2d2(path: str | os.PathLike[str], features: Features) -> None:
    """Writes the original ``extract.py`` npz format (read by hloc-style tools).

    Keys: ``imsize`` (W, H) int64, ``keypoints`` (N, 3), ``descriptors`` (N, D), ``scores`` (N,),
    all float32 and sorted by ascending score (best last), as the original writes them.
    """
    arrays = features.numpy()
    ascending = slice(None, None, -1)
    # Written beside and then renamed: an interrupted write leaves no half file that a rerun
    # (r2d2-extract --ray skips existing outputs) would take for a finished one.
    partial = f"{os.fspath(path)}.partial"
    with open(partial, "wb") as stream:  # np.savez would append '.npz' to a '.r2d2' name
        np.savez(
            stream,
            imsize=np.asarray(features.image_size, dtype=np.int64),
            keypoints=arrays["keypoints"][ascending],
            descriptors=arrays["descriptors"][ascending],
            scores=arrays["scores"][ascending],
        )
    os.replace(partial, path)


def load_r2d2(path: str | os.PathLike[str]) -> Features:
    """Reads a ``.r2d2`` (or any npz with the same keys) back into :class:`Features`, best first.

    Raises:
        ValueError: the file is not such an npz.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            keypoints, descriptors, scores = data["keypoints"], data["descriptors"], data["scores"]
            width, height = (int(v) for v in data["imsize"])
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"{path}: not an R2D2 feature file ({error})") from error
    order = np.argsort(-scores, kind="stable")
    return Features(
        torch.from_numpy(np.ascontiguousarray(keypoints[order], dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(descriptors[order], dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(scores[order], dtype=np.float32)),
        (width, height),
    )
