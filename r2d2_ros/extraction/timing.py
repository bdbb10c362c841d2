"""Optional per-stage timing of the extraction, for benchmarks (a no-op unless asked for)."""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["StageTimer"]


class StageTimer:
    """Accumulates wall time per named stage, synchronising the GPU around each stage.

    The synchronisation makes stage times honest but slows the pipeline slightly, so
    extraction only uses a timer when one is passed in.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Times the enclosed block and adds it to ``seconds[name]``."""
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] += time.perf_counter() - start
