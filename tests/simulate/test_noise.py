"""Noise: levels, colour and the half-map convention."""

from __future__ import annotations

import numpy as np
import pytest

from locres.core.fourier import frequency_grid_per_a, rfft_weights, shell_index, shell_sums
from locres.errors import LocresError
from locres.simulate.noise import (
    add_noise,
    make_half_maps,
    make_noise,
    noise_sigma_for_snr,
    noise_transfer,
)


def test_white_noise_level_and_flat_spectrum(rng):
    n = make_noise((48, 48, 48), 2.5, rng)
    assert n.dtype == np.float32 and n.std() == pytest.approx(2.5, rel=0.01)
    idx, ns = shell_index(n.shape, 1.0)
    w = rfft_weights(n.shape)
    power = shell_sums(np.abs(np.fft.rfftn(n)) ** 2, idx, ns, w) / shell_sums(np.ones(idx.shape), idx, ns, w)
    np.testing.assert_allclose(power[4:], n.size * 2.5**2, rtol=0.25)


def test_coloured_noise_follows_its_profile(rng):
    shape = (48, 48, 48)
    t = noise_transfer(shape, 1.0, b_factor_a2=40.0)
    n = make_noise(shape, 1.0, rng, transfer=t)
    assert n.std() == pytest.approx(1.0, rel=0.05)
    idx, ns = shell_index(shape, 1.0)
    w = rfft_weights(shape)
    count = shell_sums(np.ones(idx.shape), idx, ns, w)
    measured = shell_sums(np.abs(np.fft.rfftn(n)) ** 2, idx, ns, w) / count
    expected = shell_sums(t.astype(np.float64) ** 2, idx, ns, w) / count
    ratio = measured[3:20] / expected[3:20]
    assert np.ptp(np.log(ratio)) < 0.6  # same shape within sampling noise
    assert measured[20] < 0.2 * measured[3]  # red: high frequencies damped


def test_coloured_noise_lowpass_has_no_power_beyond_cutoff(rng):
    t = noise_transfer((40, 40, 40), 1.0, lowpass_resolution_a=5.0)
    n = make_noise((40, 40, 40), 1.0, rng, transfer=t)
    power = np.abs(np.fft.rfftn(n)) ** 2
    freq = frequency_grid_per_a(n.shape, 1.0)
    assert power[freq >= 0.2].sum() < 1e-10 * power.sum()
    assert power[(freq > 0.05) & (freq < 0.15)].mean() > 0.5 * power[(freq > 0) & (freq < 0.05)].mean()


def test_snr_definition(rng):
    signal = rng.standard_normal((32, 32, 32)).astype(np.float32)
    mask = np.zeros(signal.shape, bool)
    mask[8:24, 8:24, 8:24] = True
    signal[~mask] = 0
    noisy = add_noise(signal, 4.0, rng, mask=mask)
    assert np.var(signal[mask]) / np.var(noisy - signal) == pytest.approx(4.0, rel=0.03)
    assert noise_sigma_for_snr(signal, 4.0, mask) == pytest.approx(np.std(signal[mask]) / 2, rel=1e-6)


def test_half_maps_average_to_the_map_noise(rng):
    signal = rng.standard_normal((32, 32, 32)).astype(np.float32)
    full, h1, h2, sigma_half = make_half_maps(signal, 2.0, rng)
    np.testing.assert_allclose(full, 0.5 * (h1 + h2), atol=1e-6)
    sigma_map = noise_sigma_for_snr(signal, 2.0)
    assert sigma_half == pytest.approx(np.sqrt(2) * sigma_map)
    assert np.std(full - signal) == pytest.approx(sigma_map, rel=0.02)
    assert np.std(h1 - signal) == pytest.approx(sigma_half, rel=0.02)


def test_bad_inputs(rng):
    signal = rng.standard_normal((8, 8, 8))
    with pytest.raises(LocresError, match="snr"):
        add_noise(signal, -1.0, rng)
    with pytest.raises(LocresError, match="constant"):
        add_noise(np.ones((8, 8, 8)), 1.0, rng)
    with pytest.raises(LocresError, match="empty"):
        add_noise(signal, 1.0, rng, mask=np.zeros(signal.shape, bool))
