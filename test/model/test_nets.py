from __future__ import annotations

import numpy as np
import pytest
import torch

from r2d2_ros.model import ARCHITECTURES, parse_arch, prepare_for_inference
from r2d2_ros.model.nets import Fast_Quad_L2Net_ConfCFS, Quad_L2Net_ConfCFS, R2D2Net


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


class TestArchitectureStrings:
    def test_default_arguments_are_left_out(self) -> None:
        """Checkpoints store what rebuilds the net: default arguments omitted, the others in order."""
        assert Quad_L2Net_ConfCFS().arch == "Quad_L2Net_ConfCFS()" and Quad_L2Net_ConfCFS().dim == 128
        assert Fast_Quad_L2Net_ConfCFS().arch == "Fast_Quad_L2Net_ConfCFS()"
        assert Quad_L2Net_ConfCFS(dim=64).arch == "Quad_L2Net_ConfCFS(dim=64)" and Quad_L2Net_ConfCFS(dim=64).dim == 64
        assert Fast_Quad_L2Net_ConfCFS(mchan=6, dim=64).arch == "Fast_Quad_L2Net_ConfCFS(mchan=6, dim=64)"

    def test_an_arch_spec_without_arguments(self) -> None:
        from r2d2_ros.model.nets import ArchSpec

        spec = ArchSpec("Fast_Quad_L2Net_ConfCFS")
        assert spec.to_string() == "Fast_Quad_L2Net_ConfCFS()" and spec.build().arch == spec.to_string()

    def test_fast_net_layers(self) -> None:
        """Fast-R2D2 (N16 widths): a 2x max-pool after three convolutions, a bilinear 2x upsample at the end."""
        net = Fast_Quad_L2Net_ConfCFS()
        convs = [op for op in net.ops if isinstance(op, torch.nn.Conv2d)]
        assert [(c.out_channels, c.kernel_size[0], c.dilation[0]) for c in convs] == [
            (32, 3, 1), (32, 3, 1), (64, 3, 1), (64, 3, 1), (128, 3, 1), (128, 3, 2), (128, 2, 2), (128, 2, 4),
            (128, 2, 8)]
        assert isinstance(net.ops[9], torch.nn.MaxPool2d) and net.ops[-1].mode == "bilinear"
        assert not net.ops[-1].align_corners
        kinds = [type(op).__name__ for op in net.ops]
        assert kinds.count("ReLU") == 6 and kinds.count("BatchNorm2d") == 8  # no ReLU after the 2x2 convolutions


class TestFolding:
    def _conv_and_norm(self, variance: float) -> R2D2Net:
        torch.manual_seed(0)
        conv, norm = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4, affine=False)
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.fill_(variance)  # as small as eps: var + eps is not var - eps
        return R2D2Net([conv, norm], 4, "test").eval()

    @pytest.mark.parametrize("variance", [1e-5, 0.5, 4.0])
    def test_folded_batch_norm_gives_the_same_features(self, variance: float) -> None:
        net = self._conv_and_norm(variance)
        image = torch.randn(1, 3, 6, 7)
        with torch.no_grad():
            np.testing.assert_allclose(prepare_for_inference(net).trunk(image), net.trunk(image), rtol=1e-4, atol=1e-4)

    def test_preparing_leaves_the_model_itself_alone(self) -> None:
        net = self._conv_and_norm(0.5)
        weights = net.ops[0].weight.clone()
        prepared = prepare_for_inference(net)
        assert torch.equal(net.ops[0].weight, weights) and isinstance(net.ops[1], torch.nn.BatchNorm2d)
        assert not net.inference_only and prepared.inference_only
        assert all(p.requires_grad for p in net.parameters())
        assert not any(p.requires_grad for p in prepared.parameters())

    def test_a_batch_norm_that_cannot_be_folded(self) -> None:
        for ops in ([torch.nn.ReLU(), torch.nn.BatchNorm2d(3, affine=False)],
                    [torch.nn.Conv2d(3, 3, 1), torch.nn.BatchNorm2d(3, affine=True)]):
            with pytest.raises(ValueError, match="cannot fold batch norm at ops.1"):
                prepare_for_inference(R2D2Net(ops, 3, "test"))
