"""Dense DeepRes inference: slabs equal one pass, outputs on the input grid, ordered quantiles."""

from __future__ import annotations

import numpy as np
import torch

from locres.methods.deepres_dense import predict_dense_quantiles_a, run_net_in_slabs
from locres.models.dense import DenseQuantileNet
from locres.models.features import n_feature_channels
from locres.simulate.phantom import molecule_mask, synthetic_density


def _net(inputs="map"):
    torch.manual_seed(0)
    net = DenseQuantileNet(inputs=inputs)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return net.eval()


def test_slabs_equal_one_pass():
    net = _net()
    x = np.random.default_rng(0).standard_normal((n_feature_channels("map"), 40, 9, 11)).astype(np.float32)
    whole = run_net_in_slabs(net, x, max_voxels=10**9)
    slabs = run_net_in_slabs(net, x, max_voxels=6 * 9 * 11)
    np.testing.assert_allclose(slabs, whole, rtol=1e-5, atol=1e-5)


def test_quantile_maps_on_the_input_grid_zero_outside_the_mask():
    rng = np.random.default_rng(1)
    d = synthetic_density((33, 30, 36), 1.3, rng)
    mask = molecule_mask(d, 1.3)
    meta = {"voxel_size_a": 1.0, "resolution_range_a": [2.0, 20.0], "inputs": "halves"}
    h1 = d + 0.1 * rng.standard_normal(d.shape).astype(np.float32)
    h2 = d + 0.1 * rng.standard_normal(d.shape).astype(np.float32)
    info = {}
    lo, mid, hi = predict_dense_quantiles_a(
        _net("halves"), meta, 1.3, mask, half1_zyx=h1, half2_zyx=h2, info=info
    )
    for a in (lo, mid, hi):
        assert a.shape == d.shape and a.dtype == np.float32
        assert np.all(a[~mask] == 0)
    assert np.all(lo[mask] <= mid[mask]) and np.all(mid[mask] <= hi[mask])
    assert mid[mask].min() >= 2.6 - 1e-6  # never finer than the input's Nyquist
    assert "seconds_net" in info
