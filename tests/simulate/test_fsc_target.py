"""Expected-local-FSC target: known answers for a sharp cut, an envelope and global filters."""

from __future__ import annotations

import numpy as np
import pytest

from locres.core.fourier import raised_cosine_lowpass_transfer
from locres.methods.fsc import fsc_curve
from locres.simulate.fsc_target import (
    crossing_table_a,
    expected_fsc,
    fsc_crossing_a,
    shell_power_per_voxel,
    truth_from_ladder_position_a,
)
from locres.simulate.noise import make_noise
from locres.simulate.phantom import synthetic_density


def _spectra(n_shells=33, voxel=1.0, noise=1e-4):
    freq = np.arange(n_shells) / (2 * (n_shells - 1) * voxel)
    return freq, np.exp(-20.0 * freq**2), np.full(n_shells, noise)


def test_white_noise_power_per_voxel_is_its_variance():
    rng = np.random.default_rng(0)
    n = make_noise((40, 40, 40), 2.0, rng)
    _, p = shell_power_per_voxel(n, 1.0)
    assert np.median(p[2:]) == pytest.approx(4.0, rel=0.05)


def test_sharp_cut_at_high_snr_returns_the_cut():
    freq, clean, noise = _spectra()
    for r in (3.0, 5.0, 8.0):
        h = raised_cosine_lowpass_transfer(freq, r, 1.0)
        got = fsc_crossing_a(freq, clean * h**2, noise)
        assert got == pytest.approx(r, rel=0.06)


def test_low_snr_reads_coarser_than_the_cut_and_global_filter_changes_nothing():
    freq, clean, noise = _spectra(noise=1.0)  # S/N falls below 0.167 before the 3 A cut
    h = raised_cosine_lowpass_transfer(freq, 3.0, 1.0)
    low_snr = fsc_crossing_a(freq, clean * h**2, noise)
    assert low_snr > 3.25  # coarser than the 3 A cut: the signal ran out first
    g2 = np.exp(+100.0 * freq**2 / 2.0)  # a sharpening |G|^2 applied to signal and noise alike
    assert fsc_crossing_a(freq, clean * h**2 * g2, noise * g2) == pytest.approx(low_snr, rel=1e-9)
    assert expected_fsc(clean * h**2, noise)[0] == pytest.approx(0.5)  # S = N at DC


def test_blend_table_spans_its_rungs_and_lookup_interpolates():
    freq, clean, noise = _spectra()
    rungs = np.array([8.0, 6.0, 4.0])
    h = np.stack([raised_cosine_lowpass_transfer(freq, r, 1.0) for r in rungs])
    table = crossing_table_a(freq, clean, noise, h)
    assert table.shape == (2, 33)
    np.testing.assert_allclose(table[:, 0], [fsc_crossing_a(freq, clean * h[k] ** 2, noise) for k in (0, 1)])
    got = truth_from_ladder_position_a(np.array([0.0, 1.0, 2.0, 0.5]), table)
    np.testing.assert_allclose(got[:3], rungs, rtol=0.06)
    # at high SNR a half-and-half blend keeps signal up to the finer cut: it reads the finer rung
    assert got[3] == pytest.approx(rungs[1], rel=0.06)


def test_uniform_envelope_truth_matches_measured_half_map_fsc():
    """A B-factor envelope phantom: the table's truth is where the measured FSC of its halves crosses."""
    rng = np.random.default_rng(3)
    v = 1.0
    d = synthetic_density((64, 64, 64), v, rng)
    freq, clean_power = shell_power_per_voxel(d, v)
    b = 120.0
    env = np.exp(-b * freq**2 / 4.0)
    sigma = 0.15 * float(d.std())
    truth = fsc_crossing_a(freq, clean_power * env**2, np.full(len(freq), sigma**2))
    from locres.core.fourier import apply_bfactor

    s = apply_bfactor(d, v, b)
    h1, h2 = s + make_noise(s.shape, sigma, rng), s + make_noise(s.shape, sigma, rng)
    measured = fsc_curve(h1, h2, v).resolution_a["0.143"]
    width = 1.0 / (64 * v)
    assert abs(1.0 / truth - 1.0 / measured) <= 1.5 * width
