"""Global FSC: known answers for identical maps, independent noise, thresholds and the mask correction."""

from __future__ import annotations

import numpy as np
import pytest

from locres.core.fourier import (
    frequency_grid_per_a,
    lowpass_raised_cosine,
    resolution_at_threshold,
    shell_index,
)
from locres.errors import LocresError
from locres.methods.fsc import (
    fsc_curve,
    fsc_raw,
    global_resolution_a,
    half_bit_threshold,
)
from locres.simulate.phantom import make_synthetic_phantom


@pytest.mark.parametrize("shape", [(32, 32, 32), (30, 41, 36)])
def test_map_with_itself_is_one(rng, shape):
    vol = rng.standard_normal(shape).astype(np.float32)
    freq, fsc, n = fsc_raw(vol, 3.0 * vol, 1.3)
    np.testing.assert_allclose(fsc, 1.0, atol=1e-6)
    assert freq[-1] == pytest.approx(1 / (2 * 1.3), rel=0.05)
    assert freq[1] == pytest.approx(1 / (max(shape) * 1.3))


def test_independent_noise_is_zero(rng):
    a = rng.standard_normal((48, 48, 48))
    b = rng.standard_normal((48, 48, 48))
    _, fsc, n = fsc_raw(a, b, 1.0)
    shells = slice(3, None)  # enough coefficients for the 1/sqrt(n) spread to be small
    assert np.all(np.abs(fsc[shells]) < 5.0 / np.sqrt(n[shells]))
    assert abs(fsc[shells].mean()) < 0.01


@pytest.mark.parametrize("shape", [(17, 23, 31), (18, 22, 30)])  # no coefficient on a shell boundary
def test_shell_counts_match_the_full_transform(shape):
    idx, n_shells = shell_index(shape, 1.0)
    _, _, n = fsc_raw(np.ones(shape), np.ones(shape), 1.0)
    full_freq = frequency_grid_per_a(shape, 1.0, rfft=False)  # every coefficient of the full FFT
    full = np.floor(full_freq * max(shape) + 0.5).astype(int)
    want = np.bincount(full.ravel(), minlength=n_shells + 1)[:n_shells]
    np.testing.assert_array_equal(n, want)


def test_half_bit_threshold_limits():
    assert half_bit_threshold(np.array([1.0]))[0] == pytest.approx(1.0, abs=1e-3)
    assert half_bit_threshold(np.array([1e12]))[0] == pytest.approx(0.2071 / 1.2071, abs=1e-4)
    t = half_bit_threshold(np.array([10, 100, 1000]))
    assert np.all(np.diff(t) < 0)


def test_resolution_readout_interpolates():
    freq = np.linspace(0, 0.5, 11)  # 0.05 steps
    fsc = 1.0 - 2.0 * freq  # crosses 0.5 at 0.25 and 0.143 at 0.4285
    assert resolution_at_threshold(freq, fsc, 0.5) == pytest.approx(4.0)
    assert resolution_at_threshold(freq, fsc, 0.143) == pytest.approx(1 / 0.4285, rel=1e-3)
    assert resolution_at_threshold(freq, np.ones(11), 0.143) == pytest.approx(2.0)  # never crosses: Nyquist


def test_lowpassed_signal_crosses_at_its_cutoff(rng):
    s = lowpass_raised_cosine(rng.standard_normal((48, 48, 48)).astype(np.float32), 1.0, 6.0)
    s /= s.std()
    h1 = s + 0.3 * rng.standard_normal(s.shape)
    h2 = s + 0.3 * rng.standard_normal(s.shape)
    res = fsc_curve(h1, h2, 1.0).resolution_a
    for key in ("0.143", "0.5", "half_bit"):
        assert 5.2 < res[key] < 6.8  # the raised cosine falls from 6.8 A to 6 A; shells are 1/48 A^-1 wide


def test_mask_correction_removes_the_mask_correlation(rng):
    s = lowpass_raised_cosine(rng.standard_normal((48, 48, 48)).astype(np.float32), 1.0, 6.0)
    s /= s.std()
    z, y, x = np.indices(s.shape)
    mask = ((z - 24) ** 2 + (y - 24) ** 2 + (x - 24) ** 2) < 12**2  # sharp mask: strong convolution
    h1 = s + 0.3 * rng.standard_normal(s.shape)
    h2 = s + 0.3 * rng.standard_normal(s.shape)
    r = fsc_curve(h1, h2, 1.0, mask=mask)
    unmasked = fsc_curve(h1, h2, 1.0).resolution_a["0.143"]
    assert resolution_at_threshold(r.freq_per_a, r.fsc_masked, 0.143) < 4.0  # inflated by the mask
    assert r.resolution_a["0.143"] == pytest.approx(unmasked, rel=0.05)
    beyond = r.freq_per_a > 0.22
    assert np.abs(r.fsc[beyond]).mean() < 0.1 < r.fsc_masked[beyond].mean()
    assert r.randomised_from_per_a == pytest.approx(1 / 6.0, abs=0.03)
    d = r.to_dict()
    assert set(d["resolution_a"]) == {"0.143", "0.5", "half_bit"} and len(d["fsc"]) == len(d["freq_per_a"])


def test_phantom_half_maps_cross_near_the_known_global_resolution():
    p = make_synthetic_phantom((64, 64, 64), 1.0, (3.0, 8.0), "radial", snr=2.0, seed=4)
    got = global_resolution_a(p.half1, p.half2, p.voxel_size_a)
    assert got == pytest.approx(p.info["global_resolution_a"], rel=0.05)
    masked = global_resolution_a(p.half1, p.half2, p.voxel_size_a, mask=p.mask)
    assert masked == pytest.approx(p.info["global_resolution_masked_a"], rel=0.1)
    assert 3.0 < masked < got < 8.0


def test_bad_inputs(rng):
    a = rng.standard_normal((16, 16, 16))
    with pytest.raises(LocresError, match="same shape"):
        fsc_curve(a, a[:, :, :15], 1.0)
    with pytest.raises(LocresError, match="voxel size"):
        fsc_curve(a, a, 0.0)
    with pytest.raises(LocresError, match="empty"):
        fsc_curve(a, a, 1.0, mask=np.zeros(a.shape, bool))
    with pytest.raises(LocresError, match="threshold"):
        global_resolution_a(a, a, 1.0, threshold="0.3")
