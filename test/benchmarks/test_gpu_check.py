"""The CPU half of `make gpu-check` runs and prints its table (tiny images, one repeat: seconds)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from ..conftest import REPO

pytest.importorskip("onnxruntime", reason="the CPU half benchmarks backend onnxruntime: pip install onnxruntime")


def test_cpu_half_prints_one_table_with_every_backend() -> None:
    result = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--cpu-half", "--skip-tests", "--repeats", "1",
                             "--size", "96x64", "--large", "160x120"], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "running the CPU half" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| N16 ") or line.startswith("| Fast ")]
    for model in ("N16", "Fast"):
        for backend in ("torch fp32", "onnxruntime (cpu) fp32"):
            for setting in ("96x64 single scale", "160x120 default pyramid"):
                assert any(row.startswith(f"| {model} | {setting} | {backend} | ") and "skipped" not in row
                           for row in rows), (model, backend, setting, result.stdout)
    assert "gpu-check: tests passed" in result.stdout
