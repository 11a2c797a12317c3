"""Phantoms: known local resolution, noise level and the half-map FSC relationship."""

from __future__ import annotations

import time

import numpy as np
import pytest

from locres.core.fourier import frequency_grid_per_a, lowpass_raised_cosine
from locres.errors import LocresError
from locres.methods.fsc import fsc_curve
from locres.simulate.phantom import (
    blend_ladder,
    make_phantom,
    make_synthetic_phantom,
    synthetic_density,
)


@pytest.fixture(scope="module")
def radial():
    return make_synthetic_phantom((64, 64, 64), 1.0, (3.0, 8.0), "radial", snr=2.0, seed=0)


def test_fields_shapes_and_ranges(radial):
    p = radial
    for arr in (p.clean, p.map, p.half1, p.half2, p.truth_a):
        assert arr.shape == (64, 64, 64) and arr.dtype == np.float32
    assert p.mask.dtype == bool and 0.05 < p.mask.mean() < 0.5
    assert p.truth_a.min() >= 3.0 - 1e-5 and p.truth_a.max() <= 8.0 + 1e-5
    assert p.truth_a[p.mask].min() < 3.3 and p.truth_a[p.mask].max() > 7.9
    np.testing.assert_allclose(p.map, 0.5 * (p.half1 + p.half2), atol=1e-5)


def test_radial_truth_grows_outwards(radial):
    z, y, x = np.indices(radial.mask.shape)
    c = np.argwhere(radial.mask).mean(axis=0)
    r = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
    inner = radial.truth_a[radial.mask & (r < 5)].mean()
    outer = radial.truth_a[radial.mask & (r > 15)].mean()
    assert inner < 4.0 < 6.0 < outer


def test_no_power_beyond_finest_resolution(radial):
    """Only the smooth blending weights leak power past 1/R_fine (measured 7e-5)."""
    spec = np.abs(np.fft.rfftn(radial.clean)) ** 2
    freq = frequency_grid_per_a(radial.clean.shape, 1.0)
    assert spec[freq > 1 / 3.0 + 1e-4].sum() < 1e-3 * spec.sum()


def test_local_content_is_the_ladder_map_where_truth_is_constant(rng):
    """Linear pattern: the voxels at the coarse end hold exactly the density low-passed to that resolution."""
    density = synthetic_density((40, 40, 40), 1.0, rng)
    p = make_phantom(density, 1.0, (3.0, 7.0), "linear", snr=1.0, seed=1)
    fine = p.truth_a <= 3.0 + 1e-6
    coarse = p.truth_a >= 7.0 - 1e-6
    assert fine.sum() > 100 and coarse.sum() > 100
    np.testing.assert_allclose(p.clean[coarse], lowpass_raised_cosine(density, 1.0, 7.0)[coarse], atol=1e-4)
    np.testing.assert_allclose(p.clean[fine], lowpass_raised_cosine(density, 1.0, 3.0)[fine], atol=1e-4)


def test_blend_between_ladder_levels_is_linear_in_frequency(rng):
    density = synthetic_density((32, 32, 32), 1.0, rng)
    truth = np.full(density.shape, 4.0, dtype=np.float32)
    truth[0, 0, 0], truth[0, 0, 1] = 3.0, 8.0  # fixes the ladder ends
    clean, ladder = blend_ladder(density, 1.0, truth)
    f = 1 / np.array(ladder)
    assert f[0] == pytest.approx(1 / 8.0) and f[-1] == pytest.approx(1 / 3.0)
    assert np.all(np.diff(f) <= 0.01 + 1e-9)
    i = int(np.searchsorted(f, 0.25)) - 1  # ladder levels bracketing 1/4 A
    t = (0.25 - f[i]) / (f[i + 1] - f[i])
    want = (1 - t) * lowpass_raised_cosine(density, 1.0, ladder[i]) + t * lowpass_raised_cosine(
        density, 1.0, ladder[i + 1])
    np.testing.assert_allclose(clean[1:], want[1:], atol=1e-4 * np.abs(want).max())


def test_snr_and_half_map_noise(radial):
    p = radial
    noise_map = p.map - p.clean
    snr = np.var(p.clean[p.mask]) / np.var(noise_map)
    assert snr == pytest.approx(2.0, rel=0.05)
    var_half = np.var(p.half1 - p.clean)
    assert var_half == pytest.approx(2 * np.var(noise_map), rel=0.05)
    assert abs(np.corrcoef((p.half1 - p.clean).ravel(), (p.half2 - p.clean).ravel())[0, 1]) < 0.02


@pytest.mark.parametrize("pattern", ["radial", "linear", "blobs"])
def test_half_map_fsc_crosses_at_the_known_global_resolution(pattern):
    p = make_synthetic_phantom((64, 64, 64), 1.0, (3.0, 8.0), pattern, snr=2.0, seed=3)
    expected = p.info["global_resolution_a"]
    assert 3.0 < expected < 8.0
    measured = fsc_curve(p.half1, p.half2, p.voxel_size_a).resolution_a["0.143"]
    assert measured == pytest.approx(expected, rel=0.05)
    masked = fsc_curve(p.half1, p.half2, p.voxel_size_a, mask=p.mask).resolution_a["0.143"]
    assert masked == pytest.approx(p.info["global_resolution_masked_a"], rel=0.1)


def test_lower_snr_gives_coarser_global_resolution():
    hi = make_synthetic_phantom((48, 48, 48), snr=10.0, seed=2).info["global_resolution_a"]
    lo = make_synthetic_phantom((48, 48, 48), snr=0.5, seed=2).info["global_resolution_a"]
    assert hi < lo


def test_coloured_noise_phantom():
    p = make_synthetic_phantom((48, 48, 48), snr=2.0, seed=0, noise_b_factor_a2=30.0)
    measured = fsc_curve(p.half1, p.half2, 1.0).resolution_a["0.143"]
    assert measured == pytest.approx(p.info["global_resolution_a"], rel=0.05)


def test_non_cubic_and_other_voxel_size():
    p = make_synthetic_phantom((40, 56, 48), voxel_size_a=1.4, resolution_range_a=(3.5, 9.0), seed=5)
    assert p.map.shape == (40, 56, 48) and p.voxel_size_a == 1.4
    assert p.mask.any() and 3.5 <= p.truth_a.min() and p.truth_a.max() <= 9.0 + 1e-5


def test_seeded_and_fast():
    t0 = time.perf_counter()
    a = make_synthetic_phantom(seed=11)
    elapsed = time.perf_counter() - t0
    b = make_synthetic_phantom(seed=11)
    c = make_synthetic_phantom(seed=12)
    np.testing.assert_array_equal(a.half1, b.half1)
    assert not np.array_equal(a.half1, c.half1)
    assert elapsed < 3.0  # < 1 s on an idle core; generous for the shared machine


def test_bad_inputs():
    with pytest.raises(LocresError, match="Nyquist"):
        make_synthetic_phantom(voxel_size_a=2.0, resolution_range_a=(3.0, 8.0))
    with pytest.raises(LocresError, match="pattern"):
        make_synthetic_phantom((32, 32, 32), pattern="spiral")
    with pytest.raises(LocresError, match="empty"):
        make_phantom(np.zeros((32, 32, 32), np.float32), 1.0)
    with pytest.raises(LocresError, match="snr"):
        make_synthetic_phantom((32, 32, 32), snr=0.0)
