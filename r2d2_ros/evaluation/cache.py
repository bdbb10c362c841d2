"""Features cached per method and image, so that reruns of an evaluation only score."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..features import Features, load_r2d2, save_r2d2
from ..image_io import read_rgb
from .methods import Method

__all__ = ["FeatureCache"]


class FeatureCache:
    """Stores ``<root>/<method key>/<image digest>.r2d2``; the digest covers the image bytes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def features(self, method: Method, image_path: Path) -> Features:
        """The method's features of an image, extracted once."""
        digest = hashlib.sha256(image_path.read_bytes()).hexdigest()[:20]
        path = self.root / method.key / f"{digest}.r2d2"
        if path.is_file():
            self.hits += 1
            return load_r2d2(path)
        self.misses += 1
        features = method.extract(read_rgb(image_path))
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        save_r2d2(temporary, features)
        os.replace(temporary, path)
        return load_r2d2(path)  # the same precision and order as a later cache hit
