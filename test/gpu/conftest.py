"""Fixtures of the GPU tests: fp32 convolutions and the official N16 checkpoint."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def no_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    """fp32 parity needs fp32 convolutions: PyTorch's cuDNN default is TF32 (maps move by 1e-3)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


@pytest.fixture(scope="module")
def checkpoint(reference: Path) -> Path:
    return reference / "models" / "r2d2_WASF_N16.pt"
