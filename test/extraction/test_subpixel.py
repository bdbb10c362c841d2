"""Sub-pixel keypoint positions: the parabola fit, the level-to-input mapping, and extraction with both."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from r2d2_ros.extraction import ExtractionConfig, extract_multiscale
from r2d2_ros.extraction.subpixel import level_to_input, subpixel_offsets

HEIGHT, WIDTH = 96, 128
PEAK = (40.3, 57.7)  # (x, y) input pixels: fractions of a pixel at every level


def _peak_map(height: int, width: int, x: float, y: float, sigma: float = 1.5) -> torch.Tensor:
    """(1, 1, h, w) Gaussian bump of height 1 centred at (x, y)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    return torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))[None, None]


class TestSubpixelOffsets:
    @pytest.mark.parametrize("x, y", [(10.3, 7.8), (20.0, 5.5), (6.45, 12.0)])
    def test_the_offset_recovers_a_peak_between_pixels(self, x: float, y: float) -> None:
        repeatability = _peak_map(16, 32, x, y)
        index = torch.tensor([[round(y) * 32 + round(x)]])
        dx, dy = subpixel_offsets(repeatability, index)
        # A parabola through three samples of a Gaussian of sigma 1.5 px is off by under 0.05 px.
        assert dx.item() == pytest.approx(x - round(x), abs=0.05)
        assert dy.item() == pytest.approx(y - round(y), abs=0.05)

    def test_edges_and_plateaus_keep_the_pixel(self) -> None:
        repeatability = _peak_map(16, 32, -0.4, 15.3)  # a bump beyond the left edge, near the bottom one
        dx, dy = subpixel_offsets(repeatability, torch.tensor([[15 * 32 + 0]]))
        assert dx.item() == 0.0 and dy.item() == 0.0, "no neighbour beyond the map's edge to fit with"
        flat = torch.ones(1, 1, 8, 8)
        dx, dy = subpixel_offsets(flat, torch.tensor([[3 * 8 + 4]]))
        assert dx.item() == 0.0 and dy.item() == 0.0

    def test_offsets_stay_within_half_a_pixel_and_per_image(self) -> None:
        maps = torch.cat([_peak_map(16, 16, 8.49, 8.0), _peak_map(16, 16, 8.0, 7.6)])  # (2, 1, 16, 16)
        skewed = maps.clone()
        skewed[0, 0, 8, 9] = skewed[0, 0, 8, 8] - 1e-6  # right neighbour almost as high: vertex near +0.5
        dx, dy = subpixel_offsets(skewed, torch.tensor([[8 * 16 + 8], [8 * 16 + 8]]))
        assert 0.4 < dx[0].item() <= 0.5 and dy[0].item() == pytest.approx(0.0, abs=1e-6)
        assert dx[1].item() == pytest.approx(0.0, abs=1e-6) and dy[1].item() == pytest.approx(-0.4, abs=0.05)

    @pytest.mark.parametrize("column, row", [(0, 3), (9, 3), (4, 0), (4, 7), (1, 1), (8, 6)])
    def test_each_edge_keeps_its_axis_and_the_pixel_beside_it_is_refined(self, column: int, row: int) -> None:
        height, width = 8, 10
        repeatability = _peak_map(height, width, column + 0.3, row - 0.3)
        dx, dy = subpixel_offsets(repeatability, torch.tensor([[row * width + column]]))
        on_side, on_top_or_bottom = column in (0, width - 1), row in (0, height - 1)
        assert dx.item() == (0.0 if on_side else pytest.approx(0.3, abs=0.05))
        assert dy.item() == (0.0 if on_top_or_bottom else pytest.approx(-0.3, abs=0.05))

    def test_a_pixel_on_the_slope_is_moved_half_a_pixel_at_most(self) -> None:
        """Whatever pixel it is given (not only a maximum), the offset stays within half a pixel."""
        repeatability = _peak_map(16, 16, 8.0, 8.0)
        dx, dy = subpixel_offsets(repeatability, torch.tensor([[8 * 16 + 7, 7 * 16 + 8, 8 * 16 + 9]]))
        assert dx.tolist()[0] == [0.5, 0.0, -0.5] and dy.tolist()[0] == [0.0, 0.5, 0.0]

    def test_the_map_must_be_one_channel_per_image(self) -> None:
        with pytest.raises(ValueError):
            subpixel_offsets(torch.zeros(1, 8, 8), torch.zeros(1, 1, dtype=torch.long))


def test_level_pixel_centres_map_to_input_pixel_centres() -> None:
    assert level_to_input(torch.tensor(0.0), 1.0).item() == 0.0
    # Level pixel 0 of a half-size level covers input pixels 0 and 1: its centre is 0.5.
    assert level_to_input(torch.tensor(0.0), 2.0).item() == 0.5
    assert level_to_input(torch.tensor(3.0), 2.0).item() == 6.5


class _PeakRunner:
    """A stand-in network whose repeatability, at every level, peaks where the input point PEAK lies."""

    device, dim = torch.device("cpu"), 4

    def precision(self, requested: str) -> str:
        return "fp32"

    def __call__(self, image: torch.Tensor, precision: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, _, height, width = image.shape
        # The input point in this level's pixel coordinates (pixel centre to pixel centre).
        x = (PEAK[0] + 0.5) * width / WIDTH - 0.5
        y = (PEAK[1] + 0.5) * height / HEIGHT - 0.5
        repeatability = _peak_map(height, width, x, y).expand(batch, 1, height, width)
        descriptors = torch.ones(batch, self.dim, height, width)
        return descriptors, torch.ones(batch, 1, height, width), repeatability.contiguous()


@pytest.mark.parametrize("subpixel", [False, True])
def test_extraction_places_each_level_peak(subpixel: bool) -> None:
    config = ExtractionConfig(min_size=0, min_scale=0.3, max_size=4096, repeatability_threshold=0.5,
                              reliability_threshold=0.5, precision="fp32", subpixel=subpixel)
    features = extract_multiscale(_PeakRunner(), np.zeros((HEIGHT, WIDTH, 3), np.uint8), config)
    scales = 32 / features.keypoints[:, 2].numpy()
    assert len(features) == len(set(scales.round(4))) >= 5, "one keypoint per level"
    errors = np.abs(features.keypoints[:, :2].numpy() - np.array(PEAK))
    if subpixel:
        # The parabola's error (< 0.05 level px) grows with the level's pixel size, 1/scale.
        assert (errors.max(axis=1) < 0.06 / scales).all(), errors
    else:  # the original's whole level pixels, c * (input / level size): up to a level pixel off
        assert (errors.max(axis=1) < 1.0 / scales + 1e-3).all()
        assert errors.max() > 0.5, "whole level pixels cannot reach a peak between them"
