"""Raw network maps of the original checkpoints equal the original implementation's (to 1e-4)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from r2d2_ros.model import R2D2Output, load_model, prepare_for_inference

pytestmark = pytest.mark.slow

DUMPS = {
    "r2d2_WASF_N16": "test.raw.npz",
    "faster2d2_WASF_N16": "test.raw.faster2d2_WASF_N16.npz",
    "r2d2_WASF_N8_big": "test.raw.r2d2_WASF_N8_big.npz",
}
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def network_input(reference: Path) -> torch.Tensor:
    return torch.from_numpy(np.load(reference / "outputs" / "test.raw.npz")["input_normalized"])[None]


def _run(model: torch.nn.Module, image: torch.Tensor) -> tuple[R2D2Output, list[torch.Tensor]]:
    """Forward pass that also records the output of every trunk layer."""
    layers: list[torch.Tensor] = []
    hooks = [op.register_forward_hook(lambda _m, _i, out: layers.append(out.clone())) for op in model.ops]
    try:
        with torch.no_grad():
            return model(image), layers
    finally:
        for hook in hooks:
            hook.remove()


def _assert_maps(out: R2D2Output, dump: np.lib.npyio.NpzFile, tolerance: float) -> None:
    np.testing.assert_allclose(out.reliability[0, 0].numpy(), dump["reliability"], atol=tolerance, rtol=0)
    np.testing.assert_allclose(out.repeatability[0, 0].numpy(), dump["repeatability"], atol=tolerance, rtol=0)
    descriptors = out.descriptors[0].numpy()
    rows, cols = dump["desc_grid_rows"], dump["desc_grid_cols"]
    np.testing.assert_allclose(descriptors[:, rows][:, :, cols], dump["desc_grid"], atol=tolerance, rtol=0)
    np.testing.assert_allclose(descriptors[:, :32, :32], dump["desc_corner_tl"], atol=tolerance, rtol=0)
    np.testing.assert_allclose(descriptors[:, -32:, -32:], dump["desc_corner_br"], atol=tolerance, rtol=0)
    if "desc_crop" in dump:
        (r0, r1), (c0, c1) = dump["desc_crop_rows"], dump["desc_crop_cols"]
        np.testing.assert_allclose(descriptors[:, r0:r1, c0:c1], dump["desc_crop"], atol=tolerance, rtol=0)


@pytest.mark.parametrize("name", sorted(DUMPS))
def test_raw_maps_and_every_layer(name: str, reference: Path, network_input: torch.Tensor) -> None:
    dump = np.load(reference / "outputs" / DUMPS[name])
    model = load_model(reference / "models" / f"{name}.pt")
    out, layers = _run(model, network_input)
    _assert_maps(out, dump, TOLERANCE)
    (r0, r1), (c0, c1), (k0, k1) = (
        dump["layer_window_center_rows"], dump["layer_window_center_cols"], dump["layer_window_corner"]
    )
    for index, (op, output) in enumerate(zip(model.ops, layers)):
        key = f"op{index:02d}_{type(op).__name__}"
        assert tuple(output.shape) == tuple(dump[f"{key}_shape"]), key
        # Same indices on the Fast net's half-resolution layers, so its window is clipped to 8x8 there.
        center = output[0, :, r0:r1, c0:c1]
        np.testing.assert_allclose(center.numpy(), dump[f"{key}_center"], atol=TOLERANCE, rtol=0, err_msg=key)
        np.testing.assert_allclose(output[0, :, k0:k1, k0:k1].numpy(), dump[f"{key}_corner"], atol=TOLERANCE, rtol=0)


def test_prepared_model_keeps_parity(reference: Path, network_input: torch.Tensor) -> None:
    """Folding batch norm for speed changes only rounding."""
    dump = np.load(reference / "outputs" / "test.raw.npz")
    model = prepare_for_inference(load_model(reference / "models" / "r2d2_WASF_N16.pt"))
    with torch.no_grad():
        out = model(network_input.contiguous(memory_format=torch.channels_last))
    _assert_maps(out, dump, TOLERANCE)
