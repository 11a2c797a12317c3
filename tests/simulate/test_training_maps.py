"""Realistic training maps: the truth ignores global filters and flattening, follows noise and cuts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from locres.errors import LocresError
from locres.simulate.phantom import molecule_mask, synthetic_density
from locres.simulate.training_maps import TrainingMapRecipe, make_training_example


@pytest.fixture(scope="module")
def densities():
    rng = np.random.default_rng(5)
    out = []
    for shape in ((34, 30, 32), (28, 30, 26)):
        d = synthetic_density(shape, 1.0, rng)
        out.append((d, molecule_mask(d, 1.0), 1.0))
    return out


def _example(densities, seed=0, **kw):
    base = dict(
        voxel_size_range_a=(1.0, 1.0),
        box_size_range_a=(40.0, 44.0),
        p_envelope=0.0,
        patterns=("radial",),
        p_coloured_noise=0.0,
        p_global_bfactor=0.0,
        p_solvent_flatten=0.0,
        p_global_lowpass=0.0,
        scale_range=(1.0, 1.0),
    )
    base.update(kw)
    return make_training_example(densities, TrainingMapRecipe(**base), np.random.default_rng(seed))


def test_shapes_geometry_and_halves_average_to_the_map(densities):
    ex = _example(densities, scale_range=(0.5, 2.0), box_size_range_a=(36.0, 52.0))
    assert ex.map.shape == ex.half1.shape == ex.truth_a.shape == ex.mask.shape
    assert len(set(ex.map.shape)) > 1  # non-cubic
    assert ex.mask.dtype == bool and ex.mask.any()
    scale_free = (ex.half1 + ex.half2) / 2.0 - ex.map
    assert np.abs(scale_free).max() < 1e-3 * np.abs(ex.map).max()
    lo, hi = TrainingMapRecipe().truth_range_a
    assert ex.truth_a.min() >= lo and ex.truth_a.max() <= hi


def test_global_bfactor_and_flattening_change_the_map_not_the_truth(densities):
    plain = _example(densities, seed=3)
    sharpened = _example(densities, seed=3, p_global_bfactor=1.0, global_bfactor_range_a2=(-100.0, -100.0))
    flattened = _example(densities, seed=3, p_solvent_flatten=1.0)
    for other in (sharpened, flattened):
        assert other.info["snr"] == pytest.approx(plain.info["snr"])
        assert not np.allclose(other.map, plain.map, atol=1e-3 * np.abs(plain.map).max())
        np.testing.assert_array_equal(other.truth_a, plain.truth_a)


def test_global_lowpass_removes_power_beyond_it_and_clips_the_truth(densities):
    from locres.core.fourier import frequency_grid_per_a

    plain = _example(densities, seed=4, snr_range=(50.0, 50.0))
    cut = _example(
        densities, seed=4, snr_range=(50.0, 50.0), p_global_lowpass=1.0, lowpass_percentile_range=(50.0, 50.0)
    )
    r = cut.info["global_lowpass_a"]
    assert r > 0 and plain.info["global_lowpass_a"] == 0.0
    np.testing.assert_allclose(cut.truth_a, np.maximum(plain.truth_a, r), rtol=1e-6)
    spec = np.abs(np.fft.rfftn(cut.half1)) ** 2
    f = frequency_grid_per_a(cut.half1.shape, 1.0)
    assert spec[f > 1.0 / r].sum() < 1e-6 * spec[(f > 0) & (f < 1.0 / r)].sum()


def test_soft_lowpass_keeps_a_falling_tail_and_clips_the_truth_at_its_power_floor(densities):
    from locres.core.fourier import butterworth_floor_resolution_a, frequency_grid_per_a

    kw = dict(snr_range=(50.0, 50.0), p_global_lowpass=1.0, lowpass_percentile_range=(50.0, 50.0))
    plain = _example(densities, seed=4, snr_range=(50.0, 50.0))
    soft = _example(densities, seed=4, p_soft_lowpass=1.0, butterworth_order_range=(8.0, 8.0), **kw)
    r, n = soft.info["global_lowpass_a"], soft.info["butterworth_order"]
    assert r > 0 and n == 8.0
    floor_a = butterworth_floor_resolution_a(r, n, 1e-5)
    assert floor_a < r  # the tail reaches beyond the nominal cut
    np.testing.assert_allclose(soft.truth_a, np.maximum(plain.truth_a, floor_a), rtol=1e-6)
    spec = np.abs(np.fft.rfftn(soft.half1)) ** 2
    f = frequency_grid_per_a(soft.half1.shape, 1.0)
    near = spec[(f > 1.0 / r) & (f < 1.15 / r)].mean()
    below = spec[(f > 0.8 / r) & (f < 0.95 / r)].mean()
    assert 1e-4 * below < near < 0.5 * below  # past the cut: weaker, not gone (unlike the raised cosine)


def test_fsc_weighting_is_a_common_filter_that_leaves_the_fsc_and_the_truth(densities):
    from locres.methods.fsc import fsc_raw
    from locres.simulate.training_maps import fsc_weighted_halves

    ex = _example(densities, seed=6, snr_range=(1.0, 1.0))
    w1, w2, floor_a = fsc_weighted_halves(ex.half1, ex.half2, 1.0)
    _, fsc0, _ = fsc_raw(ex.half1, ex.half2, 1.0)
    _, fsc1, _ = fsc_raw(w1, w2, 1.0)
    keep = fsc0 > 0.02
    np.testing.assert_allclose(fsc1[keep], fsc0[keep], atol=1e-4)  # a global filter changes no FSC
    p0, p1 = np.abs(np.fft.rfftn(ex.half1)) ** 2, np.abs(np.fft.rfftn(w1)) ** 2
    assert p1.sum() <= p0.sum() * (1 + 1e-6)  # weights never exceed 1
    assert 2.0 < floor_a < 20.0  # at SNR 1 the FSC reaches 0 before Nyquist
    weighted = _example(densities, seed=6, snr_range=(1.0, 1.0), p_fsc_weighting=1.0)
    assert weighted.info["fsc_weighting_floor_a"] == pytest.approx(floor_a)
    np.testing.assert_allclose(weighted.truth_a, np.maximum(ex.truth_a, floor_a), rtol=1e-6)


def test_high_snr_cut_truth_follows_the_cut_and_noise_coarsens_it(densities):
    clean = _example(densities, seed=1, snr_range=(1e4, 1e4), patterns=("uniform",))
    rungs = np.asarray(clean.info["rungs"])
    t = clean.truth_a[clean.mask]
    assert rungs.min() * 0.93 <= np.median(t) <= rungs.max() * 1.07
    noisy = _example(densities, seed=1, snr_range=(0.3, 0.3), patterns=("uniform",))
    assert np.median(noisy.truth_a[noisy.mask]) > np.median(t) + 0.5


def test_envelope_truth_is_coarser_where_the_neighbourhood_holds_less_signal(densities):
    """Uniform local B: the truth varies only with the local signal fraction, coarser at the rim."""
    from scipy import ndimage

    kw = dict(p_envelope=1.0, patterns=("uniform",), snr_range=(1.0, 1.0))
    plain = _example(densities, seed=2, signal_window_a=0.0, **kw)
    local = _example(densities, seed=2, signal_window_a=5.0, **kw)
    np.testing.assert_array_equal(local.map, plain.map)  # the same map: only the truth changed
    m = plain.mask
    assert np.ptp(plain.truth_a[m]) < 0.05  # one ladder position, one signal level: one value
    rim = m & ~ndimage.binary_erosion(m, iterations=2)
    core = ndimage.binary_erosion(m, iterations=4)
    assert np.median(local.truth_a[rim]) > np.median(local.truth_a[core]) + 0.2


def test_recipe_refuses_bad_ranges():
    from locres.errors import LocresError

    with pytest.raises(LocresError):
        TrainingMapRecipe(voxel_size_range_a=(0.0, 1.0))
    with pytest.raises(LocresError):
        dataclasses.replace(TrainingMapRecipe(), patterns=("spiral",))


def test_recipe_from_config_values():
    r = TrainingMapRecipe.from_mapping({"snr_range": [0.5, 2.0], "p_envelope": 1.0})
    assert r.snr_range == (0.5, 2.0) and r.p_envelope == 1.0
    assert r.voxel_size_range_a == TrainingMapRecipe().voxel_size_range_a
    with pytest.raises(LocresError, match="snr_rang"):
        TrainingMapRecipe.from_mapping({"snr_rang": [0.5, 2.0]})


def _signal_with_spectrum(shape, voxel_size_a, power_of_freq, seed=0):
    """A random-phase volume whose shell power follows ``power_of_freq`` (1/A -> power)."""
    from locres.core.fourier import frequency_grid_per_a

    rng = np.random.default_rng(seed)
    white = np.fft.rfftn(rng.standard_normal(shape))
    amp = np.sqrt(power_of_freq(frequency_grid_per_a(shape, voxel_size_a)))
    return np.fft.irfftn(white * amp, s=shape).astype(np.float32)


def _expected_fsc(signal, voxel_size_a, sigma, b):
    from locres.simulate.fsc_target import expected_fsc, shell_power_per_voxel
    from locres.simulate.noise import noise_transfer
    from locres.simulate.training_maps import noise_shell_power

    _, s = shell_power_per_voxel(signal, voxel_size_a)
    t = noise_transfer(signal.shape, voxel_size_a, b) if b > 0 else None
    return expected_fsc(s, noise_shell_power(signal.shape, voxel_size_a, sigma, t))


def test_noise_kept_no_redder_than_the_signal_leaves_a_falling_fsc_alone():
    from locres.core.fourier import FSC_RECOVERY_MARGIN, fsc_recovers
    from locres.simulate.training_maps import noise_bfactor_keeping_fsc_falling_a2

    # signal falling as exp(-B s^2 / 2) with B = 200 A^2; noise B = 50 A^2: the SSNR falls with frequency
    signal = _signal_with_spectrum((40, 40, 40), 1.0, lambda s: np.exp(-100.0 * s**2))
    sigma = 0.5 * float(np.std(signal))
    level = 0.143 + FSC_RECOVERY_MARGIN
    assert not fsc_recovers(_expected_fsc(signal, 1.0, sigma, 50.0), level, margin=0.0)
    assert noise_bfactor_keeping_fsc_falling_a2(signal, 1.0, sigma, 50.0) == 50.0


def test_noise_redder_than_the_signal_is_halved_until_the_fsc_stays_down():
    from locres.core.fourier import FSC_RECOVERY_MARGIN, fsc_recovers
    from locres.simulate.training_maps import noise_bfactor_keeping_fsc_falling_a2

    # a signal with a dip (a tenth of its power at 0.12-0.18 1/A); noise B = 400 A^2 is far redder than the
    # signal (B = 50 A^2), so the FSC falls in the dip and climbs back beyond it, where the noise has gone
    def power(s):
        return np.exp(-25.0 * s**2) * np.where((s > 0.12) & (s < 0.18), 0.1, 1.0)

    signal = _signal_with_spectrum((48, 48, 48), 1.0, power, seed=1)
    sigma = 1.5 * float(np.std(signal))
    assert fsc_recovers(_expected_fsc(signal, 1.0, sigma, 400.0))
    b = noise_bfactor_keeping_fsc_falling_a2(signal, 1.0, sigma, 400.0)
    assert 0.0 < b < 400.0 and np.log2(400.0 / b) == pytest.approx(round(np.log2(400.0 / b)))
    level = 0.143 + FSC_RECOVERY_MARGIN
    assert not fsc_recovers(_expected_fsc(signal, 1.0, sigma, b), level, margin=0.0)  # kept falling
    assert fsc_recovers(_expected_fsc(signal, 1.0, sigma, 2.0 * b), level, margin=0.0)  # the largest such


def test_recipe_option_changes_only_the_maps_whose_fsc_would_recover(densities):
    kw = dict(p_coloured_noise=1.0, noise_bfactor_range_a2=(20.0, 300.0), snr_range=(0.5, 3.0))
    for seed in range(6):
        old = _example(densities, seed=seed, **kw)
        new = _example(densities, seed=seed, coloured_noise_fsc_falls=True, **kw)
        assert new.info["noise_bfactor_drawn_a2"] == old.info["noise_bfactor_a2"]
        if new.info["noise_bfactor_a2"] == old.info["noise_bfactor_a2"]:
            np.testing.assert_array_equal(new.half1, old.half1)
        else:
            assert new.info["noise_bfactor_a2"] < old.info["noise_bfactor_a2"]
