"""Band features: invariant to global filters, scale and offset; the same at training and inference."""

from __future__ import annotations

import numpy as np
import pytest

from locres.core.fourier import apply_bfactor, frequency_grid_per_a, lowpass_raised_cosine
from locres.core.maps import model_grid_shape
from locres.errors import LocresError
from locres.models.features import (
    BAND_RESOLUTIONS_A,
    BAND_WIDTH_LOG,
    band_transfer,
    dense_features,
    floor_crossings_a,
    log_frequency_grid_per_a,
    n_feature_channels,
)
from locres.simulate.noise import make_noise, noise_transfer
from locres.simulate.phantom import synthetic_density


@pytest.fixture(scope="module")
def noisy_map():
    rng = np.random.default_rng(2)
    d = synthetic_density((40, 36, 44), 1.0, rng)
    return d + make_noise(d.shape, 0.3 * float(d.std()), rng)


def test_band_passes_are_log_gaussians_centred_on_their_resolution():
    shape, voxel_a = (30, 25, 32), 0.9  # odd and even sides, non-cubic
    log_f = log_frequency_grid_per_a(shape, voxel_a)
    t = np.stack([band_transfer(log_f, r) for r in BAND_RESOLUTIONS_A])
    f = frequency_grid_per_a(shape, voxel_a).astype(np.float64)
    assert t.dtype == np.float32 and t.shape == (len(BAND_RESOLUTIONS_A),) + f.shape
    assert (t[:, 0, 0, 0] == 0).all()  # DC passes no band
    logf = np.log(np.where(f > 0, f, 1.0))
    for k, r in enumerate(BAND_RESOLUTIONS_A):
        expected = np.where(f > 0, np.exp(-0.5 * ((logf + np.log(r)) / BAND_WIDTH_LOG) ** 2), 0.0)
        np.testing.assert_allclose(t[k], expected, rtol=2e-5, atol=1e-7)  # float32 evaluation
        inside = f < 1.0 / (2 * voxel_a)
        peak = np.unravel_index(np.argmax(np.where(inside, t[k], -1)), f.shape)
        if 1.0 / r < 1.0 / (2 * voxel_a):  # a band centred below Nyquist peaks at the shell nearest 1 / r
            assert abs(f[peak] - 1.0 / r) <= 1.0 / (min(shape) * voxel_a)


def test_shapes_and_channels(noisy_map):
    f = dense_features(1.2, 1.0, map_zyx=noisy_map)
    n = model_grid_shape(noisy_map.shape, 1.2, 1.0)
    assert f.shape == (n_feature_channels("map"),) + tuple((k + 1) // 2 for k in n)
    assert np.isfinite(f).all()
    h = dense_features(1.0, 1.0, half1_zyx=noisy_map, half2_zyx=noisy_map[::-1].copy(), inputs="halves")
    assert h.shape[0] == n_feature_channels("halves") == 5 * len(BAND_RESOLUTIONS_A)


def test_scale_offset_and_global_bfactor_leave_features_unchanged(noisy_map):
    f = dense_features(1.0, 1.0, map_zyx=noisy_map)
    g = dense_features(1.0, 1.0, map_zyx=7.0 * noisy_map - 3.0)
    np.testing.assert_allclose(g, f, atol=2e-3)
    # a global B (blur) changes the map a lot but the within-band features (local power and its
    # spread over the box) hardly; only the spectral step between bands moves
    blurred = apply_bfactor(noisy_map, 1.0, 60.0)
    assert np.abs(blurred - noisy_map).max() > 0.3 * np.abs(noisy_map).max()
    k = dense_features(1.0, 1.0, map_zyx=blurred)
    n = len(BAND_RESOLUTIONS_A)
    within = np.r_[0 : n // 2, n : n + 3 * (n // 2)]  # coarse bands, which the blur keeps above the floor
    within = [c for c in within if c < n or (c - n) % 3 != 2]
    assert np.median(np.abs(k[within] - f[within])) < 0.05
    steps = [n + 3 * j + 2 for j in range(1, n)]
    assert np.median(np.abs(k[steps] - f[steps])) > 0.1


def test_a_band_without_power_reads_empty(noisy_map):
    from locres.core.fourier import lowpass_raised_cosine

    f = dense_features(1.0, 1.0, map_zyx=lowpass_raised_cosine(noisy_map, 1.0, 4.0))
    n = len(BAND_RESOLUTIONS_A)
    fine = [k for k, r in enumerate(BAND_RESOLUTIONS_A) if r < 2.6]  # bands well beyond the 4 A cut
    assert np.abs(f[fine]).max() < 0.5  # local power of an empty band = its (floor) median
    assert np.abs(f[: fine[0]]).max() > 2.0  # bands with signal do vary over the box
    first_empty_step = n + 3 * fine[0] + 2
    assert f[first_empty_step].max() < -3.0  # the spectrum falls off a cliff there


def test_identical_halves_correlate_fully_and_noise_does_not(noisy_map):
    rng = np.random.default_rng(0)
    same = dense_features(1.0, 1.0, half1_zyx=noisy_map, half2_zyx=noisy_map, inputs="halves")
    n = len(BAND_RESOLUTIONS_A)
    np.testing.assert_allclose(same[4 * n :], 1.0, atol=1e-3)
    a, b = (make_noise(noisy_map.shape, 1.0, rng) for _ in range(2))
    indep = dense_features(1.0, 1.0, half1_zyx=a, half2_zyx=b, inputs="halves")
    assert np.abs(np.median(indep[4 * n :])) < 0.1


def test_half_model_refuses_one_map(noisy_map):
    with pytest.raises(LocresError, match="half-map model"):
        dense_features(1.0, 1.0, map_zyx=noisy_map, inputs="halves")


@pytest.mark.parametrize("version", [1, 2])
def test_both_feature_versions_are_scale_free_and_the_same_size(noisy_map, version):
    f = dense_features(1.0, 1.0, map_zyx=noisy_map, version=version)
    g = dense_features(1.0, 1.0, map_zyx=3.0 * noisy_map + 1.0, version=version)
    assert f.shape[0] == n_feature_channels("map")
    np.testing.assert_allclose(g, f, atol=2e-3)


def test_version_2_ignores_how_much_flat_solvent_surrounds_the_molecule(noisy_map):
    """The same map in its box and padded with exact zeros (a flattened map, the map 18 % of the box):
    the version-2 local features inside agree within 0.5 (log units), the median-referred version-1
    ones are moved by several units (the median becomes the empty solvent's)."""
    small = noisy_map[4:-4, 4:-4, 4:-4]
    big = np.pad(small, 12)
    n = len(BAND_RESOLUTIONS_A)
    diffs = {}
    for v in (1, 2):
        a = dense_features(1.0, 1.0, map_zyx=small, version=v)[:n, 6:10, 6:10, 6:10]
        b = dense_features(1.0, 1.0, map_zyx=big, version=v)[:n, 12:16, 12:16, 12:16]
        diffs[v] = float(np.median(np.abs(a - b)))
    assert diffs[2] < 0.5 and diffs[1] > 2.0


def test_fsc_crossing_known_answers():
    from locres.models.features import fsc_crossing_resolution_a

    bands = np.array(BAND_RESOLUTIONS_A)
    log_r = np.log(bands)
    # a correlation falling linearly in log resolution, 1 at 20 A, 0 at 2 A: 0.143 is crossed at
    # exp(log 2 + 0.143 (log 20 - log 2)) = 2 * 10**0.143
    rho = ((log_r - log_r[-1]) / (log_r[0] - log_r[-1]))[:, None]
    np.testing.assert_allclose(fsc_crossing_resolution_a(rho), [2.0 * 10**0.143], rtol=1e-6)
    assert fsc_crossing_resolution_a(np.full((len(bands), 1), 0.9))[0] == pytest.approx(2.0)  # never below
    assert fsc_crossing_resolution_a(np.full((len(bands), 1), 0.0))[0] == pytest.approx(20.0)  # at once below
    # the first drop counts, not a later recovery (noise rising again in an empty band)
    rho2 = np.where(bands > 6.0, 0.9, 0.0)
    rho2[-1] = 0.9
    assert 5.8 <= fsc_crossing_resolution_a(rho2[:, None])[0] <= 7.1


def test_version_3_adds_wide_correlations_and_the_local_fsc_crossing():
    from locres.core.fourier import lowpass_raised_cosine

    rng = np.random.default_rng(5)
    signal = lowpass_raised_cosine(rng.standard_normal((48, 48, 48)).astype(np.float32), 1.0, 6.0)
    noise_sd = 2.0 * float(signal.std())  # white: a spectral SNR of ~13 inside 6 A
    h1, h2 = (signal + noise_sd * rng.standard_normal(signal.shape).astype(np.float32) for _ in range(2))
    v2 = dense_features(1.0, 1.0, half1_zyx=h1, half2_zyx=h2, inputs="halves", version=2)
    v3 = dense_features(1.0, 1.0, half1_zyx=h1, half2_zyx=h2, inputs="halves", version=3)
    assert v3.shape[0] == n_feature_channels("halves", version=3) == 6 * len(BAND_RESOLUTIONS_A) + 2
    np.testing.assert_array_equal(v3[: v2.shape[0]], v2)
    # signal to 6 A: the halves correlate to 6 A and not beyond. The crossing reads within a band
    # (4.7-7.1 A) of the cut: finer, as the band passes' tails still see the strong signal inside it
    # (the network learns the correction); the wide window's scatters less over the box
    spread = []
    for channel in (-2, -1):
        r = np.exp(v3[channel])
        assert 4.5 < float(np.median(r)) < 7.2
        spread.append(np.subtract(*np.percentile(r, [95, 5])))
    assert spread[1] < 0.5 * spread[0]
    # the wide window's correlation scatters less over the box in a band of pure noise
    n = len(BAND_RESOLUTIONS_A)
    k = len(BAND_RESOLUTIONS_A) - 1  # 2 A band: noise only
    assert v3[5 * n + k].std() < 0.7 * v3[4 * n + k].std()
    # single-map features do not change with version 3
    np.testing.assert_array_equal(dense_features(1.0, 1.0, map_zyx=h1, version=3),
                                  dense_features(1.0, 1.0, map_zyx=h1, version=2))


@pytest.mark.parametrize("ssnr", [0.25, 1.0, 4.0])
def test_version_4_local_ssnr_against_the_half_difference_noise_has_its_known_value(ssnr):
    """Half maps of one white signal plus independent white noise: every band's SSNR is the variance
    ratio, so ``log(E_avg / N)`` is ``log(1 + 2 SSNR)`` everywhere: the median over the box within
    0.1 in every band of 10 A and finer (a 48 A box holds too few Fourier terms in the coarser bands for
    one noise draw to show the expectation). Versions 3 and 4 share their first channels."""
    rng = np.random.default_rng(5)
    shape = (48, 48, 48)
    signal = make_noise(shape, np.sqrt(ssnr), rng)
    h1, h2 = (signal + make_noise(shape, 1.0, rng) for _ in range(2))
    f4 = dense_features(1.0, 1.0, half1_zyx=h1, half2_zyx=h2, inputs="halves", version=4)
    f3 = dense_features(1.0, 1.0, half1_zyx=h1, half2_zyx=h2, inputs="halves", version=3)
    n = len(BAND_RESOLUTIONS_A)
    assert f4.shape[0] == n_feature_channels("halves", version=4) == f3.shape[0] + n
    np.testing.assert_array_equal(f4[: f3.shape[0]], f3)
    ssnr_bands = f4[f3.shape[0]:]
    for k in range(n):
        if BAND_RESOLUTIONS_A[k] <= 10.0:
            assert np.median(ssnr_bands[k]) == pytest.approx(np.log(1 + 2 * ssnr), abs=0.1), k


@pytest.fixture(scope="module")
def molecule_in_solvent():
    """A molecule filling about a tenth of its box, and a white-noise draw at a tenth of its SD."""
    d = synthetic_density((48, 44, 52), 1.0, np.random.default_rng(2))
    return d, make_noise(d.shape, 0.1 * float(d.std()), np.random.default_rng(3))


def _floor_channels(volume):
    n = len(BAND_RESOLUTIONS_A)
    f = dense_features(1.0, 1.0, map_zyx=volume, version=5)
    assert f.shape[0] == n_feature_channels("map", version=5) == 5 * n
    np.testing.assert_array_equal(f[: 4 * n], dense_features(1.0, 1.0, map_zyx=volume, version=2))
    block = f[4 * n:]
    assert np.ptp(block, axis=(1, 2, 3)).max() == 0.0  # one value per band over the box
    return block[:, 0, 0, 0]


def test_version_5_noise_floor_follows_the_noise_level_and_colour(molecule_in_solvent):
    """``log P99_k / N_k``: doubling the noise's SD quarters the signal-to-floor ratio, so the feature falls
    by log 4 (within 0.15) in the bands of 3.7 A and finer, where the molecule's signal sets the peak and
    the noise the floor (coarser bands' floor is the molecule's own ringing in a 48 A box). Noise of the
    same SD made red (noise B = 100 A^2) has less power in the fine bands: their floor falls, so the
    feature rises, the more the finer the band."""
    d, noise = molecule_in_solvent
    white, doubled = _floor_channels(d + noise), _floor_channels(d + 2.0 * noise)
    fine = [k for k, r in enumerate(BAND_RESOLUTIONS_A) if r <= 3.8]
    np.testing.assert_allclose((white - doubled)[fine], np.log(4.0), atol=0.15)
    red_noise = make_noise(d.shape, 0.1 * float(d.std()), np.random.default_rng(3),
                           noise_transfer(d.shape, 1.0, b_factor_a2=100.0))
    rise = (_floor_channels(d + red_noise) - white)[fine]
    assert np.all(np.diff(rise) > 0.5) and rise[-1] > 3.0


def test_version_5_flat_solvent_reads_as_no_floor_and_global_changes_leave_it(molecule_in_solvent):
    """A solvent-flattened map (exact zeros beyond the molecule) has no noise floor: its fine bands read
    10 or more (log units; the unflattened map's fewer than 8). Scale and offset leave every band's
    feature unchanged, a global blur (B = 60 A^2) within 0.35."""
    d, noise = molecule_in_solvent
    noisy = d + noise
    white = _floor_channels(noisy)
    flat = _floor_channels(np.where(np.abs(d) > 0.05 * np.abs(d).max(), noisy, 0.0))
    fine = [k for k, r in enumerate(BAND_RESOLUTIONS_A) if r <= 3.8]
    assert white[fine].max() < 8.0 and flat[fine].min() > 10.0
    np.testing.assert_allclose(_floor_channels(7.0 * noisy - 3.0), white, atol=2e-3)
    np.testing.assert_allclose(_floor_channels(apply_bfactor(noisy, 1.0, 60.0)), white, atol=0.35)


def test_version_5_half_map_features_are_version_4s(noisy_map):
    h2 = noisy_map[::-1].copy()
    np.testing.assert_array_equal(
        dense_features(1.0, 1.0, half1_zyx=noisy_map, half2_zyx=h2, inputs="halves", version=5),
        dense_features(1.0, 1.0, half1_zyx=noisy_map, half2_zyx=h2, inputs="halves", version=4))


def test_floor_crossing_known_answers():
    """``E_k / N_k = 1 + SSNR_k``: SSNR 10 up to band 5 and none beyond crosses both levels between bands 5
    and 6, where the linear interpolation of ``SSNR / (1 + SSNR)`` in log resolution puts it; SSNR 10 up to
    band 8 crosses between bands 8 and 9; pure noise at the coarsest band; a floor of 0 (flattened solvent)
    at the finest; the stricter level (SSNR 1) never crosses finer than the truth's (0.33)."""
    bands = np.asarray(BAND_RESOLUTIONS_A)
    n = len(bands)
    ssnr = np.zeros((n, 4))
    ssnr[:6, 0] = 10.0
    ssnr[:9, 1] = 10.0
    ssnr[:, 3] = 10.0
    energies = [1.0 + ssnr[k].reshape(1, 4, 1) for k in range(n)]
    lo, hi = floor_crossings_a(energies, np.ones(n), bands)
    a = 10.0 / 11.0
    for level, r in ((0.33, lo), (1.0, hi)):
        t = (a - level / (1 + level)) / a
        for v, k in ((0, 5), (1, 8)):
            want = np.exp(np.log(bands[k]) + t * (np.log(bands[k + 1]) - np.log(bands[k])))
            assert r[0, v, 0] == pytest.approx(want, rel=1e-5)
    assert lo[0, 2, 0] == pytest.approx(bands[0]) and lo[0, 3, 0] == pytest.approx(bands[-1])
    assert np.all(hi >= lo - 1e-6)
    flat = floor_crossings_a([np.full((1, 1, 1), 1.0) for _ in range(n)], np.zeros(n), bands)
    assert flat[0][0, 0, 0] == pytest.approx(bands[-1])


def test_version_6_floor_crossings_follow_the_resolution_of_the_map(molecule_in_solvent):
    """Version 6 is version 5 and the two floor crossings. The molecule low-passed to 4, 8 and 12 A in white
    noise crosses coarser the coarser the cut (medians over the molecule's voxels), each between 0.6 and 1.1
    times its cut: the band passes are wide (log SD 0.16), so a band centred a little finer than the cut
    still holds power from below it and the crossing reads about 0.7 of the cut."""
    d, noise = molecule_in_solvent
    n = len(BAND_RESOLUTIONS_A)
    inside = (np.abs(d) > 0.2 * np.abs(d).max())[::2, ::2, ::2]
    medians = {}
    for cut in (4.0, 8.0, 12.0):
        m = lowpass_raised_cosine(d, 1.0, cut) + noise
        f6 = dense_features(1.0, 1.0, map_zyx=m, version=6)
        assert f6.shape[0] == n_feature_channels("map", version=6) == 5 * n + 2
        np.testing.assert_array_equal(f6[: 5 * n], dense_features(1.0, 1.0, map_zyx=m, version=5))
        medians[cut] = float(np.exp(np.median(f6[5 * n][inside])))
        assert 0.6 * cut <= medians[cut] <= 1.1 * cut, (cut, medians[cut])
    assert medians[4.0] < medians[8.0] < medians[12.0]
