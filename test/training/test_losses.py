"""Each loss against values computed by hand (or by a direct, loop-based reading of its definition)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from r2d2_ros.model.nets import Quad_L2Net_ConfCFS, R2D2Output
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


def _unit(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=1)


class TestGroundTruthAtImage2Borders:
    """SPEC: ground truth = truncate(aflow + 0.5), valid if inside image 2; ring negatives outside are left out."""

    SIZE = 56  # queries at 16, 24, 32 on both axes: 9 per image

    def _sample(self, targets: list[tuple[float, float]], descriptors2: torch.Tensor | None = None,
                reliability2: torch.Tensor | None = None):
        size = self.SIZE
        descriptors1 = _unit(1, 8, size, size)
        flow = torch.full((1, 2, size, size), float("nan"))
        for (x, y), (qy, qx) in zip(targets, [(y, x) for y in (16, 24, 32) for x in (16, 24, 32)]):
            flow[0, :, qy, qx] = torch.tensor([x, y])
        return descriptors1, PairSampler(LossConfig(distractors_per_image=10))(
            descriptors1, descriptors1 if descriptors2 is None else descriptors2,
            torch.full((1, 1, size, size), 0.2), torch.full((1, 1, size, size), 0.4) if reliability2 is None else reliability2,
            flow, torch.Generator().manual_seed(0))

    def test_validity_follows_the_original_rounding(self) -> None:
        edge = self.SIZE - 0.5  # rounds to SIZE: outside
        targets = [(-0.6, 10.0), (-1.6, 10.0), (edge - 0.01, 10.0), (edge, 10.0),
                   (10.0, -0.6), (10.0, -1.6), (10.0, edge - 0.01), (10.0, edge), (float("nan"), 10.0)]
        *_, valid = self._sample(targets)[1]
        # trunc(-0.6 + 0.5) = trunc(-0.1) = 0: inside (the original truncates towards zero)
        assert valid.tolist() == [True, False, True, False, True, False, True, False, False]

    @pytest.mark.parametrize("corner", ["top left", "bottom right"])
    def test_a_match_in_a_corner_of_image_2(self, corner: str) -> None:
        last = self.SIZE - 1
        x, y = (0, 0) if corner == "top left" else (last, last)
        descriptors1 = _unit(1, 8, self.SIZE, self.SIZE)
        descriptors2 = _unit(1, 8, self.SIZE, self.SIZE, seed=1)
        descriptors2[0, :, y, x] = descriptors1[0, :, 16, 16]  # the true match of the first query
        reliability2 = torch.full((1, 1, self.SIZE, self.SIZE), 0.4)
        reliability2[0, 0, y, x] = 1.0
        flow_targets = [(float(x), float(y))] + [(float("nan"), 0.0)] * 8
        _, (scores, _, counted, reliability, valid) = self._sample(flow_targets, descriptors2, reliability2)
        assert valid.tolist() == [True] + [False] * 8
        assert scores[0, 0].item() == pytest.approx(1.0, abs=1e-6), "the corner pixel itself is a positive"
        assert reliability[0].item() == pytest.approx((0.2 + 1.0) / 2), "the best positive is the corner"
        offsets = PairSampler(LossConfig()).negative_offsets
        inside = (offsets >= 0).all(dim=1) if corner == "top left" else (offsets <= 0).all(dim=1)
        assert counted[0, 1:81].tolist() == inside.tolist()


def test_distractors_near_the_true_match_score_zero_in_its_own_image_only() -> None:
    """Image 2 of pair 0 holds the queries' descriptor everywhere (score 1), pair 1's its opposite (-1)."""
    size, count = 48, 40_000
    query = _unit(1, 8, 1, 1)[0, :, 0, 0]
    descriptors1 = query.view(1, 8, 1, 1).expand(2, 8, size, size).clone()
    descriptors2 = torch.stack([query, -query]).view(2, 8, 1, 1).expand(2, 8, size, size).clone()
    flow = _identity_flow(size, size).expand(2, -1, -1, -1).clone()
    scores, *_ = PairSampler(LossConfig(distractors_per_image=count))(
        descriptors1, descriptors2, torch.ones(2, 1, size, size), torch.ones(2, 1, size, size), flow,
        torch.Generator().manual_seed(0))
    first_pair = scores[:4, 81:]  # the 2 x 2 queries of pair 0, against both images' distractors
    own, other = first_pair[:, :count], first_pair[:, count:]
    assert torch.isclose(other, torch.tensor(-1.0), atol=1e-5).all(), "distractors in the other image keep their score"
    zeroed = (own == 0).sum(dim=1).float()
    # 69 of the 48 x 48 pixels lie within d^2 < 25 of a match: 40,000 * 69 / 2304 = 1198 expected.
    assert ((zeroed > 1080) & (zeroed < 1320)).all(), zeroed
    assert ((own == 0) | torch.isclose(own, torch.tensor(1.0), atol=1e-5)).all()


class TestTotalLoss:
    SIZE = 48

    def _outputs(self, seed: int) -> R2D2Output:
        generator = torch.Generator().manual_seed(seed)
        size = self.SIZE
        return R2D2Output(_unit(2, 8, size, size, seed=seed), torch.rand(2, 1, size, size, generator=generator),
                          torch.rand(2, 1, size, size, generator=generator))

    def test_terms_and_their_weighted_sum(self) -> None:
        out1, out2 = self._outputs(0), self._outputs(1)
        out2.descriptors = out1.descriptors  # identical images under the identity flow
        flow = _identity_flow(self.SIZE, self.SIZE).expand(2, -1, -1, -1).clone()
        config = LossConfig(ap_weight=2.0, cosim_weight=3.0, peaky_weight=5.0, distractors_per_image=100)
        terms = R2D2Loss(config)(out1, out2, flow, torch.Generator().manual_seed(0))
        assert 0.99 < terms["mean_ap"].item() <= 1.0, "the positive ranks first for every query"
        peaky = (peaky_loss(out1.repeatability) + peaky_loss(out2.repeatability)) / 2
        torch.testing.assert_close(terms["peaky"], peaky)
        torch.testing.assert_close(terms["cosim"], cosim_loss(out1.repeatability, out2.repeatability, flow))
        torch.testing.assert_close(terms["total"], 2 * terms["ap"] + 3 * terms["cosim"] + 5 * terms["peaky"])
        # Full reliability weighting by default: 1 - AP r - kappa (1 - r), averaged over the queries.
        scores, labels, counted, reliability, valid = PairSampler(config)(
            out1.descriptors, out2.descriptors, out1.reliability, out2.reliability, flow, torch.Generator().manual_seed(0))
        ap = quantized_average_precision(scores, labels, 20, counted)
        torch.testing.assert_close(terms["ap"], (1 - ap * reliability - 0.5 * (1 - reliability)).mean())

    def test_no_valid_query_gives_a_zero_ap_term_that_still_backpropagates(self) -> None:
        out1, out2 = self._outputs(0), self._outputs(1)
        out1.descriptors.requires_grad_(True)
        flow = torch.full((2, 2, self.SIZE, self.SIZE), float("nan"))
        terms = R2D2Loss(LossConfig(distractors_per_image=10))(out1, out2, flow, torch.Generator().manual_seed(0))
        assert terms["ap"].item() == 0.0 and terms["mean_ap"].item() == 0.0
        terms["total"].backward()
        assert torch.isfinite(out1.descriptors.grad).all()


class TestCosimDefinition:
    def test_matches_a_loop_over_windows_of_stride_eight(self) -> None:
        generator = torch.Generator().manual_seed(0)
        rep1, rep2 = torch.rand(1, 1, 40, 48, generator=generator), torch.rand(1, 1, 40, 48, generator=generator)
        cosines = [torch.nn.functional.cosine_similarity(rep1[0, 0, y : y + 16, x : x + 16].reshape(-1),
                                                         rep2[0, 0, y : y + 16, x : x + 16].reshape(-1), dim=0)
                   for y in range(0, 40 - 15, 8) for x in range(0, 48 - 15, 8)]
        expected = 1 - torch.stack(cosines).mean()
        torch.testing.assert_close(cosim_loss(rep1, rep2, _identity_flow(40, 48)), expected)

    def test_a_single_patch(self) -> None:
        rep = torch.rand(1, 1, 16, 16)
        assert cosim_loss(rep, rep, _identity_flow(16, 16)).item() == pytest.approx(0, abs=1e-6)

    def test_each_pair_of_a_batch_is_masked_by_its_own_flow(self) -> None:
        rep1 = torch.rand(2, 1, 32, 32)
        rep2 = rep1.clone()
        rep2[1, :, :, 16:] = torch.rand(1, 1, 32, 16)  # pair 1 differs where its flow leaves image 2
        flow = _identity_flow(32, 32).expand(2, -1, -1, -1).clone()
        flow[1, 0, :, 16:] = 40.0  # finite, but outside image 2: not seen
        assert cosim_loss(rep1, rep2, flow).item() == pytest.approx(0, abs=1e-6)
        flow[1, 0, :, 16:] = float("nan")
        assert cosim_loss(rep1, rep2, flow).item() == pytest.approx(0, abs=1e-6)

    def test_a_batch_averages_the_covered_patches_of_all_its_pairs(self) -> None:
        generator = torch.Generator().manual_seed(3)
        rep1, rep2 = torch.rand(2, 1, 32, 32, generator=generator), torch.rand(2, 1, 32, 32, generator=generator)
        flow = _identity_flow(32, 32).expand(2, -1, -1, -1).clone()
        flow[1, :, :, 16:] = float("nan")  # pair 1: the right half has no correspondence
        alone = [cosim_loss(rep1[i : i + 1], rep2[i : i + 1], flow[i : i + 1]) for i in range(2)]
        covered = [9, 6]  # 16x16 windows at stride 8: 3 x 3, of which 3 x 2 touch pair 1's left half
        similarity = sum((1 - loss) * n for loss, n in zip(alone, covered))
        torch.testing.assert_close(cosim_loss(rep1, rep2, flow), 1 - similarity / sum(covered))
