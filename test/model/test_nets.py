from __future__ import annotations

import pytest
import torch

from r2d2_ros.model import ARCHITECTURES, parse_arch, prepare_for_inference
from r2d2_ros.model.nets import Fast_Quad_L2Net_ConfCFS, Quad_L2Net_ConfCFS


def _parameters(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


class TestArchitectures:
    def test_n16_parameter_count(self) -> None:
        assert _parameters(Quad_L2Net_ConfCFS()) == 484_387

    def test_big_net_channels(self) -> None:
        net = Quad_L2Net_ConfCFS(mchan=6)
        convs = [op for op in net.ops if isinstance(op, torch.nn.Conv2d)]
        assert [c.out_channels for c in convs] == [48, 48, 96, 96, 192, 192, 192, 192, 128]
        assert net.arch == "Quad_L2Net_ConfCFS(mchan=6)"

    @pytest.mark.parametrize("name", sorted(ARCHITECTURES))
    def test_output_maps(self, name: str) -> None:
        net = ARCHITECTURES[name]().eval()
        with torch.no_grad():
            out = net(torch.randn(2, 3, 37, 50))
        size = (36, 50) if name.startswith("Fast") else (37, 50)
        assert out.descriptors.shape == (2, 128, *size)
        assert out.reliability.shape == out.repeatability.shape == (2, 1, *size)
        assert torch.allclose(out.descriptors.norm(dim=1), torch.ones(2, *size), atol=1e-5)
        for heatmap in (out.reliability, out.repeatability):
            assert heatmap.min() >= 0 and heatmap.max() <= 1

    def test_rejects_wrong_input(self) -> None:
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
            Quad_L2Net_ConfCFS()(torch.zeros(1, 1, 8, 8))

    def test_arch_string_round_trip(self) -> None:
        for net in (Quad_L2Net_ConfCFS(), Quad_L2Net_ConfCFS(mchan=6), Fast_Quad_L2Net_ConfCFS()):
            assert parse_arch(net.arch).build().arch == net.arch

    def test_gradients_reach_every_parameter(self) -> None:
        net = Quad_L2Net_ConfCFS().train()
        out = net(torch.randn(1, 3, 24, 24))
        (out.descriptors.sum() + out.reliability.sum() + out.repeatability.sum()).backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


class TestPrepareForInference:
    @pytest.mark.parametrize("name", sorted(ARCHITECTURES))
    def test_same_maps_as_eval_net(self, name: str) -> None:
        torch.manual_seed(0)
        net = ARCHITECTURES[name]()
        net.train()
        with torch.no_grad():  # give batch norm non-trivial running statistics
            for _ in range(3):
                net(torch.randn(2, 3, 32, 32) * 2 + 0.5)
        net.eval()
        image = torch.randn(1, 3, 40, 44)
        with torch.no_grad():
            expected, fast = net(image), prepare_for_inference(net)(image)
        assert not any(isinstance(op, torch.nn.BatchNorm2d) for op in prepare_for_inference(net).ops)
        for a, b in zip(
            (expected.descriptors, expected.reliability, expected.repeatability),
            (fast.descriptors, fast.reliability, fast.repeatability),
        ):
            assert torch.allclose(a, b, atol=1e-5)
