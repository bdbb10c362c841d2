"""Learning-rate and reliability schedules, and the choice of training precision."""
from __future__ import annotations

import pytest
import torch

from r2d2_ros.device import cpu_has_native_bf16, fast_autocast_dtype
from r2d2_ros.training.config import OptimConfig
from r2d2_ros.training.losses import LossConfig
from r2d2_ros.training.schedule import learning_rate, reliability_weight
from r2d2_ros.training.trainer import resolve_amp

AVX512_BF16_CPU = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
AVX2_CPU = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\nbugs\t\t: avx512_bf16_is_not_a_flag_here\n"
AMX_CPU = "flags\t\t: avx2 avx512f amx_bf16 amx_tile\n"


def test_learning_rate_warms_up_then_decays_to_its_floor() -> None:
    optim = OptimConfig(lr=1e-3, warmup_steps=10, decay="cosine", min_lr_fraction=0.1)
    assert learning_rate(0, optim, 110) == pytest.approx(1e-4)
    assert learning_rate(4, optim, 110) == pytest.approx(5e-4)
    assert learning_rate(10, optim, 110) == pytest.approx(1e-3)
    assert learning_rate(60, optim, 110) == pytest.approx((1e-3 + 1e-4) / 2)  # half-way down the cosine
    assert learning_rate(110, optim, 110) == pytest.approx(1e-4)
    assert learning_rate(500, optim, 110) == pytest.approx(1e-4)  # past the end: stays at the floor
    # A decay one step long (run.steps just past the warm-up) is at its floor after that step; none at all
    # (run.steps within the warm-up) leaves the peak.
    assert learning_rate(11, optim, 11) == pytest.approx(1e-4) and learning_rate(10, optim, 11) == pytest.approx(1e-3)
    assert learning_rate(10, optim, 5) == pytest.approx(1e-3)
    rates = [learning_rate(step, optim, 110) for step in range(10, 111)]
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:]))


def test_constant_learning_rate_after_warm_up_by_default() -> None:
    optim = OptimConfig(lr=2e-4)
    assert {learning_rate(step, optim, 100) for step in (0, 50, 99, 1000)} == {2e-4}


def test_reliability_weight_warm_up_and_ramp() -> None:
    loss = LossConfig(reliability_warmup_steps=100, reliability_ramp_steps=50)
    assert [reliability_weight(step, loss) for step in (0, 99, 100, 125, 150, 10_000)] == [0, 0, 0, 0.5, 1, 1]
    assert reliability_weight(0, LossConfig()) == 1.0  # no schedule: the paper's loss from the start


@pytest.mark.parametrize(("cpuinfo", "native"), [(AVX512_BF16_CPU, True), (AMX_CPU, True), (AVX2_CPU, False), ("", False)])
def test_native_bf16_is_read_from_the_cpu_flags(cpuinfo: str, native: bool) -> None:
    assert cpu_has_native_bf16(cpuinfo) is native
    assert fast_autocast_dtype(torch.device("cpu"), cpuinfo) == (torch.bfloat16 if native else None)


def test_training_precision_choice() -> None:
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu, AVX512_BF16_CPU) == torch.bfloat16
    assert resolve_amp("auto", cpu, AVX2_CPU) is None  # emulated bf16 is slower than fp32
    assert resolve_amp("auto", torch.device("cuda"), AVX2_CPU) == torch.bfloat16
    assert resolve_amp("none", cpu, AVX512_BF16_CPU) is None
    assert resolve_amp("bf16", cpu, AVX2_CPU) == torch.bfloat16  # asked for explicitly
    assert resolve_amp("fp16", torch.device("cuda")) == torch.float16  # the device's type only: no GPU needed
    with pytest.raises(ValueError, match="needs a GPU"):
        resolve_amp("fp16", cpu)


def test_learning_curve_joins_chunks_by_global_step(tmp_path) -> None:
    from r2d2_ros.training.curves import plot_learning_curve, read_rows

    first, second = tmp_path / "chunk1", tmp_path / "chunk2"
    for folder, rows in ((first, ["0,0.1,0", "250,0.2,40"]), (second, ["250,0.25,45", "500,0.3,60"])):
        folder.mkdir()
        (folder / "validation.csv").write_text("step,val_mma3,val_keypoints\n" + "\n".join(rows) + "\n")
    (first / "metrics.csv").write_text("step,total,ap,mean_ap\n25,2.0,0.9,0.1\n50,1.8,0.8,0.2\n")
    columns = read_rows([first / "validation.csv", second / "validation.csv"])
    assert columns["step"] == [0, 250, 500]
    assert columns["val_mma3"] == [0.1, 0.25, 0.3]  # step 250 twice: the later chunk's row is kept
    plot_learning_curve([first, second], tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no metrics.csv"):
        plot_learning_curve([tmp_path / "empty"], tmp_path / "none.png")
