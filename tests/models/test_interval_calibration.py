"""Interval calibration: known factors on synthetic truths, the net applies them, the calibrated file
carries them, and a model without an interval is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from locres.errors import LocresError
from locres.io.checkpoints import export_slim, export_with_interval_scale, load_deepres
from locres.models.dense import DenseQuantileNet
from locres.models.features import n_feature_channels
from locres.models.interval_calibration import (
    inside_fraction,
    interval_scales,
    scaled_interval_a,
    weighted_quantile,
)
from locres.models.nets import CompactResNet

Z90 = 1.2815515655446004  # the standard normal's 90 % point


def test_weighted_quantile_known_values():
    v = np.array([3.0, 1.0, 2.0, 4.0])
    assert weighted_quantile(v, np.ones(4), 0.5) == 2.0
    assert weighted_quantile(v, np.ones(4), 0.75) == 3.0
    # all the weight on 4: every level reads 4
    assert weighted_quantile(v, np.array([0.0, 0.0, 0.0, 1.0]), 0.1) == 4.0


def _lognormal_case(n=200_000, sigma=0.2, widen=(2.0, 2.0), shift=0.0, seed=0):
    """Truths log-normal around the median; an interval ``widen`` times its true 10-90 % log half-widths."""
    rng = np.random.default_rng(seed)
    mid = rng.uniform(2.5, 12.0, n)
    truth = mid * np.exp(sigma * rng.standard_normal(n) + shift)
    lo = mid * np.exp(-widen[0] * Z90 * sigma)
    hi = mid * np.exp(widen[1] * Z90 * sigma)
    return lo, mid, hi, truth


def test_too_wide_interval_is_shrunk_to_its_levels():
    lo, mid, hi, t = _lognormal_case(widen=(2.0, 0.5))
    assert inside_fraction(lo, hi, t) < 0.75  # too narrow above: many misses there
    s = interval_scales(lo, mid, hi, t)
    assert s == pytest.approx((0.5, 2.0), rel=0.03)
    lo2, hi2 = scaled_interval_a(lo, mid, hi, s)
    assert inside_fraction(lo2, hi2, t) == pytest.approx(0.8, abs=0.01)
    assert np.mean(t < lo2) == pytest.approx(0.1, abs=0.01)
    assert np.mean(t > hi2) == pytest.approx(0.1, abs=0.01)


def test_weights_decide_which_voxels_count():
    a = _lognormal_case(n=50_000, widen=(2.0, 2.0), seed=1)
    b = _lognormal_case(n=5_000, widen=(0.5, 0.5), seed=2)
    both = [np.concatenate(x) for x in zip(a, b, strict=True)]
    only_b = np.concatenate([np.zeros(50_000), np.ones(5_000)])
    assert interval_scales(*both, weights=only_b) == pytest.approx((2.0, 2.0), rel=0.05)
    with pytest.raises(LocresError):
        interval_scales(*both, levels=(0.9, 0.1))


def _features(seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(
        (1, n_feature_channels("map"), 6, 7, 5)).astype(np.float32))


def _random_net(**kw):
    torch.manual_seed(0)
    net = DenseQuantileNet(**kw)
    torch.manual_seed(0)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return net.eval()


def test_net_applies_the_scale_as_the_numpy_arithmetic():
    x = _features()
    plain = _random_net()(x)[0].detach().numpy()
    scaled = _random_net(interval_scale=(0.5, 1.7))(x)[0].detach().numpy()
    np.testing.assert_allclose(scaled[1], plain[1], rtol=1e-6)
    lo, hi = scaled_interval_a(plain[0], plain[1], plain[2], (0.5, 1.7))
    np.testing.assert_allclose(scaled[0], lo, rtol=1e-5)
    np.testing.assert_allclose(scaled[2], hi, rtol=1e-5)
    with pytest.raises(LocresError):
        DenseQuantileNet(interval_scale=(0.0, 1.0))


def test_calibrated_file_carries_the_scale_and_what_it_was_trained_for(tmp_path):
    net = _random_net()
    src = export_slim(tmp_path / "m.pt", net, 1.0, (2.0, 20.0),
                      extra={"target": "fsc_local", "inputs": "map", "quantiles": [0.1, 0.5, 0.9]})
    out = export_with_interval_scale(src, tmp_path / "cal.pt", (0.8, 1.2), {"how": "test"})
    cal, meta = load_deepres(out)
    assert cal.interval_scale == [0.8, 1.2]
    assert meta["target"] == "fsc_local" and meta["quantiles"] == [0.1, 0.5, 0.9]
    assert torch.load(out, weights_only=True)["interval_calibration"] == {"how": "test"}
    x = _features(1)
    base, new = net(x)[0].detach().numpy(), cal(x)[0].detach().numpy()
    lo, hi = scaled_interval_a(base[0], base[1], base[2], (0.8, 1.2))
    np.testing.assert_allclose(new[0], lo, rtol=1e-5)
    np.testing.assert_allclose(new[2], hi, rtol=1e-5)


def test_a_model_without_an_interval_is_refused(tmp_path):
    src = export_slim(tmp_path / "appearance.pt", CompactResNet(), 1.0, (2.0, 13.0))
    with pytest.raises(LocresError, match="no interval"):
        export_with_interval_scale(src, tmp_path / "cal.pt", (1.0, 1.0), {})
    assert not (tmp_path / "cal.pt").exists()


def test_calibrate_cli_refuses_a_model_that_is_not_deepres2(tmp_path):
    from locres.bench.calibrate_interval import main

    src = export_slim(tmp_path / "appearance.pt", CompactResNet(), 1.0, (2.0, 13.0))
    with pytest.raises(SystemExit) as e:
        main([str(src), "--out", str(tmp_path / "cal.pt")])
    assert str(e.value).startswith("error:") and not (tmp_path / "cal.pt").exists()
