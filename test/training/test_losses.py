"""Each loss against values computed by hand (or by a direct, loop-based reading of its definition)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from r2d2_ros.model.nets import Quad_L2Net_ConfCFS
from r2d2_ros.training.losses import (LossConfig, PairSampler, R2D2Loss, ap_loss, cosim_loss, peaky_loss,
                                      quantized_average_precision)


def test_defaults_are_the_original_recipe() -> None:
    """SPEC section 4: weights 1, 1, 1; N = 16; 20 AP bins; kappa 0.5; the sampler's radii, border and
    step; 400 distractors per image. The reliability schedule is this project's addition, off by default."""
    config = LossConfig()
    assert (config.ap_weight, config.cosim_weight, config.peaky_weight) == (1.0, 1.0, 1.0)
    assert (config.patch_size, config.ap_bins, config.reliability_base) == (16, 20, 0.5)
    assert (config.reliability_warmup_steps, config.reliability_ramp_steps) == (0, 0)
    assert (config.border, config.query_step, config.positive_radius) == (16, 8, 3)
    assert (config.negative_min_radius, config.negative_max_radius, config.distractors_per_image) == (5, 7, 400)
    reliability = torch.tensor([0.25])
    assert ap_loss(torch.tensor([0.8]), reliability).item() == pytest.approx(1 - 0.8 * 0.25 - 0.5 * 0.75)


class TestQuantizedAveragePrecision:
    def test_perfect_ranking(self) -> None:
        ap = quantized_average_precision(torch.tensor([[1.0, 0.0, -0.5]]), torch.tensor([[1, 0, 0]]))
        assert ap.item() == pytest.approx(1.0)

    def test_positive_between_two_bins_below_a_negative(self) -> None:
        # The positive (0.5) splits evenly over bins 9 and 10; the negative (1.0) sits in bin 0.
        # precision at bin 9 = 0.5 / 1.5, at bin 10 = 1 / 2; recall 0.5 each: AP = 1/6 + 1/4.
        ap = quantized_average_precision(torch.tensor([[0.5, 1.0]]), torch.tensor([[1, 0]]))
        assert ap.item() == pytest.approx(5 / 12, abs=1e-6)

    def test_scores_must_be_queries_by_candidates(self) -> None:
        with pytest.raises(ValueError, match="expected a tensor of shape"):
            quantized_average_precision(torch.rand(5), torch.ones(5, dtype=torch.bool))

    def test_is_differentiable(self) -> None:
        scores = torch.tensor([[0.6, 0.7, 0.2]], requires_grad=True)  # a negative ranks first
        quantized_average_precision(scores, torch.tensor([[1, 0, 0]])).sum().backward()
        assert scores.grad is not None and scores.grad.abs().sum() > 0


def _binned_ap_by_loop(scores: torch.Tensor, labels: torch.Tensor, counted: torch.Tensor, bins: int) -> torch.Tensor:
    """AP read off its definition, bin by bin: triangular weights, ends absorbing what lies beyond."""
    results = []
    for q in range(scores.shape[0]):
        positive_mass, total_mass = [], []
        for k in range(bins):
            centre = 1 - k / (bins - 1)
            weights = (1 - (scores[q] - centre).abs() * (bins - 1)).clamp(min=0)
            if k == 0:
                weights = torch.where(scores[q] >= 1, torch.ones_like(weights), weights)
            if k == bins - 1:
                weights = torch.where(scores[q] <= 0, torch.ones_like(weights), weights)
            weights = weights * counted[q]
            positive_mass.append((weights * labels[q]).sum())
            total_mass.append(weights.sum())
        positives, totals = torch.stack(positive_mass), torch.stack(total_mass)
        precision = positives.cumsum(0) / (1e-16 + totals.cumsum(0))
        results.append((precision * positives / positives.sum()).sum())
    return torch.stack(results)


def test_binned_ap_and_its_gradient_match_the_definition() -> None:
    generator = torch.Generator().manual_seed(0)
    scores = (torch.rand(6, 40, generator=generator) * 1.4 - 0.2).requires_grad_()  # some beyond [0, 1]
    labels = torch.zeros(6, 40)
    labels[:, :3] = 1
    counted = torch.rand(6, 40, generator=generator) > 0.2
    counted[:, 0] = True
    fast = quantized_average_precision(scores, labels, 20, counted)
    (fast_grad,) = torch.autograd.grad(fast.sum(), scores)
    slow = _binned_ap_by_loop(scores, labels, counted.float(), 20)
    (slow_grad,) = torch.autograd.grad(slow.sum(), scores)
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=0)
    torch.testing.assert_close(fast_grad, slow_grad, atol=1e-5, rtol=0)


def test_entries_left_out_do_not_rank() -> None:
    """A negative above the positive costs precision, unless it is left out."""
    scores, labels = torch.tensor([[0.5, 0.9]]), torch.tensor([[1, 0]])
    assert quantized_average_precision(scores, labels).item() < 0.6
    left_out = quantized_average_precision(scores, labels, counted=torch.tensor([[True, False]]))
    assert left_out.item() == pytest.approx(1.0)


def test_ap_loss_with_and_without_reliability() -> None:
    ap, reliability = torch.tensor([0.8, 0.3]), torch.tensor([0.5, 0.0], requires_grad=True)
    paper = ap_loss(ap, reliability, base=0.5)
    torch.testing.assert_close(paper, torch.tensor([1 - 0.8 * 0.5 - 0.5 * 0.5, 0.5]))
    # The warm-up (weight 0) is the plain AP loss: reliability gets no gradient at all.
    plain = ap_loss(ap, reliability, base=0.5, weight=0.0)
    torch.testing.assert_close(plain, 1 - ap)
    (gradient,) = torch.autograd.grad(plain.sum(), reliability)
    assert not gradient.any()
    half = ap_loss(ap, reliability, base=0.5, weight=0.5)
    torch.testing.assert_close(half, (plain + paper) / 2)


def _identity_flow(height: int, width: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    return torch.stack([xs, ys])[None]


class TestCosimLoss:
    def test_identical_maps_give_zero(self) -> None:
        rep = torch.rand(1, 1, 32, 32)
        assert cosim_loss(rep, rep, _identity_flow(32, 32)).item() == pytest.approx(0, abs=1e-6)

    def test_half_covered_patches(self) -> None:
        # 8-pixel stripes: every 16x16 window at stride 8 holds 8 columns of ones and 8 of zeros,
        # so its cosine with a uniform window is 128 / (16 * sqrt(128)) = 1 / sqrt(2).
        stripes = ((torch.arange(32) // 8) % 2 == 0).float().expand(32, 32)[None, None]
        loss = cosim_loss(torch.ones(1, 1, 32, 32), stripes, _identity_flow(32, 32))
        assert loss.item() == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-5)

    def test_pixels_without_correspondence_are_ignored(self) -> None:
        rep2 = torch.rand(1, 1, 32, 32)
        flow = _identity_flow(32, 32)
        flow[:, :, :, :16] = float("nan")  # the left half of image 1 is not seen in image 2
        rep1 = rep2.clone()
        other = rep1.clone()
        other[..., :16] = torch.rand(1, 1, 32, 16)  # whatever image 1 shows there
        assert cosim_loss(rep1, rep2, flow).item() == pytest.approx(0, abs=1e-6)
        assert cosim_loss(other, rep2, flow).item() == pytest.approx(0, abs=1e-6)

    @pytest.mark.parametrize(("dx", "dy"), [(3, 0), (0, 3), (2, -4)])
    def test_follows_the_flow_along_both_axes(self, dx: int, dy: int) -> None:
        # A non-square map: the flow's x and y are scaled by different sides.
        height, width = 32, 48
        rep1 = torch.rand(1, 1, height, width)
        rep2 = torch.roll(rep1, (dy, dx), dims=(2, 3))  # image 2 is image 1 moved by (dx, dy)
        flow = _identity_flow(height, width)
        flow[:, 0] += dx
        flow[:, 1] += dy
        wrapped = torch.zeros(height, width, dtype=torch.bool)  # what roll brought round the border
        wrapped[slice(-dy, None) if dy > 0 else slice(0, -dy), :] = dy != 0
        wrapped[:, slice(-dx, None) if dx > 0 else slice(0, -dx)] |= dx != 0
        flow[:, :, wrapped] = float("nan")
        assert cosim_loss(rep1, rep2, flow).item() == pytest.approx(0, abs=1e-5)
        assert cosim_loss(rep1, rep2, _identity_flow(height, width)).item() > 0.05

    @pytest.mark.parametrize(("rep_shape", "flow_shape"), [((1, 2, 32, 32), (1, 2, 32, 32)),
                                                           ((1, 1, 32, 32), (1, 3, 32, 32))])
    def test_wrong_shapes_are_refused(self, rep_shape: tuple, flow_shape: tuple) -> None:
        with pytest.raises(ValueError, match="expected a tensor of shape"):
            cosim_loss(torch.rand(rep_shape), torch.rand(rep_shape), torch.rand(flow_shape))


class TestPeakyLoss:
    def test_flat_zero_map_gives_one(self) -> None:
        assert peaky_loss(torch.zeros(1, 1, 24, 24)).item() == pytest.approx(1.0)

    def test_matches_a_loop_over_windows(self) -> None:
        rng = np.random.default_rng(0)
        rep = rng.random((1, 1, 12, 14)).astype(np.float32)
        padded = np.pad(rep[0, 0], 1)
        smooth = np.array([[padded[y : y + 3, x : x + 3].sum() / 9 for x in range(14)] for y in range(12)])
        big = np.pad(smooth, 8)
        window_max = np.pad(smooth, 8, constant_values=-np.inf)
        diffs = [window_max[y : y + 17, x : x + 17].max() - big[y : y + 17, x : x + 17].sum() / 289
                 for y in range(12) for x in range(14)]
        assert peaky_loss(torch.from_numpy(rep)).item() == pytest.approx(1 - np.mean(diffs), abs=1e-6)


class TestPairSampler:
    def test_offsets_and_shapes(self) -> None:
        sampler = PairSampler(LossConfig())
        assert len(sampler.positive_offsets) == 29 and len(sampler.negative_offsets) == 80
        descriptors = torch.nn.functional.normalize(torch.randn(2, 8, 64, 64), dim=1)
        reliability = torch.rand(2, 1, 64, 64)
        scores, labels, counted, rel, valid = sampler(descriptors, descriptors, reliability, reliability,
                                                      _identity_flow(64, 64).expand(2, -1, -1, -1),
                                                      torch.Generator().manual_seed(0))
        queries = 2 * 4 * 4  # a 4x4 grid of step 8 inside a 16-px border, per image
        assert scores.shape == labels.shape == (queries, 1 + 80 + 2 * 400)
        assert valid.all() and torch.allclose(scores[:, 0], torch.ones(queries))  # identical images: best = 1
        assert counted.all()  # every ring negative of a query 16 px inside lies inside image 2
        assert torch.allclose(rel, reliability[:, 0, 16:48:8, 16:48:8].reshape(-1))

    def test_ring_negatives_outside_image_2_are_left_out(self) -> None:
        """A query whose true match is on image 2's left edge: negatives left of it do not exist."""
        descriptors = torch.nn.functional.normalize(torch.randn(1, 8, 64, 64), dim=1)
        flow = _identity_flow(64, 64)
        flow[:, 0] = 0.0  # every pixel of image 1 lands in column 0 of image 2
        sampler = PairSampler(LossConfig())
        _, _, counted, _, valid = sampler(descriptors, descriptors, torch.ones(1, 1, 64, 64),
                                          torch.ones(1, 1, 64, 64), flow)
        assert valid.all()
        outside = sampler.negative_offsets[:, 0] < 0
        assert not counted[:, 1:81][:, outside].any() and counted[:, 1:81][:, ~outside].all()
        assert counted[:, 0].all() and counted[:, 81:].all()

    def test_queries_landing_outside_image_2_are_invalid(self) -> None:
        descriptors = torch.nn.functional.normalize(torch.randn(1, 8, 64, 64), dim=1)
        flow = _identity_flow(64, 64) + 100
        *_, valid = PairSampler(LossConfig())(descriptors, descriptors, torch.ones(1, 1, 64, 64),
                                              torch.ones(1, 1, 64, 64), flow)
        assert not valid.any()


def test_gradients_reach_every_head() -> None:
    torch.manual_seed(0)
    net = Quad_L2Net_ConfCFS().train()
    images = torch.randn(2, 3, 64, 64)
    flow = _identity_flow(64, 64).expand(2, -1, -1, -1).clone()
    terms = R2D2Loss(LossConfig(distractors_per_image=50))(net(images), net(images.flip(0)), flow)
    assert set(terms) >= {"ap", "cosim", "peaky", "total"}
    terms["total"].backward()
    for name in ("clf.weight", "sal.weight", "ops.0.weight", "ops.22.weight"):
        assert net.get_parameter(name).grad.abs().sum() > 0, name


def test_sampler_finds_the_true_match_near_the_flow_and_averages_both_reliabilities() -> None:
    """Image 2 is image 1 moved 3 px right, the flow says 2 px: the best positive is the one 1 px further.

    Different descriptors, reliability maps and a wrong-by-one flow make every index visible.
    """
    generator = torch.Generator().manual_seed(0)
    descriptors1 = torch.nn.functional.normalize(torch.randn(1, 8, 64, 64, generator=generator), dim=1)
    descriptors2 = torch.roll(descriptors1, shifts=3, dims=3)
    reliability1 = torch.rand(1, 1, 64, 64, generator=generator)
    reliability2 = torch.rand(1, 1, 64, 64, generator=generator)
    flow = _identity_flow(64, 64)
    flow[:, 0] += 2
    scores, _, _, reliability, valid = PairSampler(LossConfig(distractors_per_image=20))(
        descriptors1, descriptors2, reliability1, reliability2, flow, torch.Generator().manual_seed(1))
    assert valid.all()
    torch.testing.assert_close(scores[:, 0], torch.ones(16))  # the exact match is the positive
    assert (scores[:, 1:81] < 0.99).all()  # the ring holds no copy of it
    ys, xs = torch.meshgrid(torch.arange(16, 48, 8), torch.arange(16, 48, 8), indexing="ij")
    expected = (reliability1[0, 0, ys, xs] + reliability2[0, 0, ys, xs + 3]) / 2
    torch.testing.assert_close(reliability, expected.reshape(-1))
