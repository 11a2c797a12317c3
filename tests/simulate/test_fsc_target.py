"""Expected-local-FSC target: known answers for a sharp cut, an envelope and global filters."""

from __future__ import annotations

import numpy as np
import pytest

from locres.core.fourier import raised_cosine_lowpass_transfer
from locres.errors import LocresError
from locres.methods.fsc import fsc_curve
from locres.simulate.fsc_target import (
    SIGNAL_FRACTIONS,
    crossing_table_a,
    expected_fsc,
    fsc_crossing_a,
    local_signal_fraction,
    shell_power_per_voxel,
    truth_from_ladder_position_a,
    windowed_ladder_truth_a,
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


def test_signal_fraction_table_at_one_is_the_plain_table_and_a_high_snr_cut_ignores_it():
    freq, clean, noise = _spectra()
    rungs = np.array([8.0, 6.0, 4.0])
    h = np.stack([raised_cosine_lowpass_transfer(freq, r, 1.0) for r in rungs])
    plain = crossing_table_a(freq, clean, noise, h)
    fractions = SIGNAL_FRACTIONS
    table = crossing_table_a(freq, clean, noise, h, signal_fractions=fractions)
    assert table.shape == (2, 33, len(fractions))
    one = int(np.argmin(np.abs(np.log(fractions))))
    assert fractions[one] == pytest.approx(1.0)
    np.testing.assert_allclose(table[..., one], plain, rtol=1e-12)
    # rho scales the signal: rho with noise N is rho = 1 with noise N / rho
    k, j, r = 1, 10, one - 6
    blend = (1 - j / 32) * h[1] + (j / 32) * h[2]
    assert table[k, j, r] == pytest.approx(fsc_crossing_a(freq, clean * blend**2, noise / fractions[r]))
    pos = np.array([0.0, 1.0, 2.0])
    for rho in (0.25, 1.0, 4.0):  # plenty of signal: the cut wins whatever the neighbourhood holds
        got = truth_from_ladder_position_a(pos, table, np.full(3, rho), fractions)
        np.testing.assert_allclose(got, rungs, rtol=0.06)


def test_sparser_neighbourhood_reads_coarser_under_an_envelope():
    freq, clean, _ = _spectra()
    env = np.exp(-100.0 * freq**2 / 4.0)[None]
    table = crossing_table_a(freq, clean, np.full(len(freq), 3e-3), env, signal_fractions=SIGNAL_FRACTIONS)
    got = truth_from_ladder_position_a(np.zeros(3), table, np.array([0.2, 1.0, 5.0]), SIGNAL_FRACTIONS)
    assert got[0] > got[1] > got[2]


def test_signal_fraction_predicts_the_measured_fsc_of_a_dense_and_a_sparse_part():
    """Two molecules side by side, one at 0.4 of the other's amplitude: each part's measured half-map FSC
    crosses where the target puts it with that part's signal fraction (and not with rho = 1)."""
    rng = np.random.default_rng(5)
    v, n = 1.0, 48
    dense = synthetic_density((n, n, n), v, rng, fill=0.42)
    sparse = 0.4 * synthetic_density((n, n, n), v, rng, fill=0.42)
    clean = np.concatenate([dense, sparse], axis=2)
    mask = np.ones(clean.shape, bool)
    rho = local_signal_fraction(clean, mask, v, 5.0)
    assert rho[..., :n].mean() > 1.5 and rho[..., n:].mean() < 0.4
    freq_box, power = shell_power_per_voxel(clean, v)
    b, sigma = 30.0, 0.35 * float(dense.std())
    from locres.core.fourier import apply_bfactor

    s = apply_bfactor(clean, v, b)
    h1, h2 = s + make_noise(s.shape, sigma, rng), s + make_noise(s.shape, sigma, rng)
    env = np.exp(-b * freq_box**2 / 4.0)[None]
    noise = np.full(len(freq_box), sigma**2)
    table = crossing_table_a(freq_box, power, noise, env, signal_fractions=SIGNAL_FRACTIONS)
    width, misses = 1.0 / (n * v), []
    for part in (slice(0, n), slice(n, 2 * n)):
        measured = fsc_curve(h1[..., part], h2[..., part], v).resolution_a["0.143"]
        predicted = truth_from_ladder_position_a(np.zeros(1), table, np.array([rho[..., part].mean()]),
                                                 SIGNAL_FRACTIONS)[0]
        plain = truth_from_ladder_position_a(np.zeros(1), table, np.ones(1), SIGNAL_FRACTIONS)[0]
        assert abs(1.0 / predicted - 1.0 / measured) <= 1.5 * width
        misses.append(abs(1.0 / plain - 1.0 / measured) / width)
    assert max(misses) > 2.0  # the whole-molecule spectrum (rho = 1) misses the sparse part by shells


def test_signal_fraction_without_a_window_is_one_and_an_empty_mask_is_refused():
    d = np.random.default_rng(0).normal(size=(16, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(local_signal_fraction(d, np.ones(d.shape, bool), 1.0, 0.0), 1.0)
    with pytest.raises(LocresError, match="mask is empty"):
        local_signal_fraction(d, np.zeros(d.shape, bool), 1.0, 5.0)


def _two_cut_ladder(p_over_n: float, n_shells: int = 129):
    """Flat clean power ``p_over_n`` times the noise, rungs cut at 8 A (coarse, 0) and 3 A (fine, 1)."""
    freq = np.arange(n_shells) / (2 * (n_shells - 1) * 1.0)
    h = np.stack([raised_cosine_lowpass_transfer(freq, r, 1.0, width_digital=0.001) for r in (8.0, 3.0)])
    return freq, np.full(n_shells, p_over_n), np.ones(n_shells), h


@pytest.mark.parametrize("p_over_n", [0.3, 0.5, 4.0])
def test_windowed_truth_of_a_uniform_field_is_the_voxel_truth(p_over_n):
    freq, clean, noise, h = _two_cut_ladder(p_over_n)
    position = np.full((12, 12, 12), 0.4, np.float32)
    mask = np.ones(position.shape, bool)
    voxel = truth_from_ladder_position_a(position, crossing_table_a(freq, clean, noise, h))
    windowed = windowed_ladder_truth_a(position, mask, freq, clean, noise, h, 5.0, 1.0)
    np.testing.assert_allclose(windowed, voxel, rtol=0.02)


def test_windowed_truth_mixes_the_filters_a_window_covers():
    """A step from an 8 A cut (x < 24) to a 3 A cut: the two voxels at the step see 43 % and 57 % of
    the fine side in a 3 A window, so their expected SSNR between 1/8 and 1/3 A^-1 is that fraction of
    P/N. With P/N = 0.5 both stay above 0.167 (t = 0.143) and read the 3 A cut; with P/N = 0.25 both fall
    below it and read 8 A. Far from the step every voxel reads its own cut, and without a window every
    voxel does (the fine side at P/N = 0.25 too)."""
    shape = (8, 8, 48)
    position = np.zeros(shape, np.float32)
    position[..., 24:] = 1.0
    mask = np.ones(shape, bool)
    for p_over_n, at_step in ((0.5, 3.0), (0.25, 8.0)):
        freq, clean, noise, h = _two_cut_ladder(p_over_n)
        got = windowed_ladder_truth_a(position, mask, freq, clean, noise, h, 3.0, 1.0)
        np.testing.assert_allclose(got[..., 10:14], 8.0, rtol=0.05)  # far on the coarse side
        np.testing.assert_allclose(got[..., 34:38], 3.0, rtol=0.05)  # far on the fine side
        np.testing.assert_allclose(got[..., 23:25], at_step, rtol=0.05)
        own = windowed_ladder_truth_a(position, mask, freq, clean, noise, h, 0.0, 1.0)
        np.testing.assert_allclose(own[..., :24], 8.0, rtol=0.05)
        np.testing.assert_allclose(own[..., 24:], 3.0, rtol=0.05)
