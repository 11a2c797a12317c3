"""MonoTomo on simulated half tomograms with known per-particle resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from locres.errors import LocresError
from locres.methods import MethodInputs, monotomo
from locres.simulate.tomogram import simulate_half_tomograms


@pytest.fixture(scope="module")
def tomo():
    return simulate_half_tomograms((32, 128, 128), 10.0, (25.0, 35.0, 50.0), 8, seed=1)


def _core_median(out, p):
    z, y, x = np.ogrid[:out.shape[0], :out.shape[1], :out.shape[2]]
    cz, cy, cx = p["centre_zyx"]
    core = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= (p["radius_px"] - 2) ** 2
    return float(np.median(out[core]))


def test_each_particle_resolution_is_found(tomo):
    out = monotomo.run(MethodInputs(10.0, half1=tomo.half1, half2=tomo.half2), step_a=2.5)
    assert out.resolution_a.shape == tomo.half1.shape
    meds = []
    for p in tomo.particles:
        med = _core_median(out.resolution_a, p)
        # no power beyond 1/R: the estimate is R up to a couple of sweep steps coarser
        assert p["resolution_a"] - 1.0 <= med <= 1.2 * p["resolution_a"] + 2.5, (p, med)
        meds.append(med)
    assert np.all(np.diff(meds) > 0)  # ordered like the truth
    # background (no particle) reads far coarser than any particle
    bg = out.mask & (tomo.truth_a == 0)
    assert np.median(out.resolution_a[bg]) > 70.0
    # the excluded border holds 0
    assert np.all(out.resolution_a[~out.mask] == 0)


def test_threshold_surface_follows_the_noise_across_x(tomo):
    noise = torch.from_numpy(np.abs((tomo.half1 - tomo.half2) / 2).astype(np.float32))
    region = np.ones(noise.shape, bool)
    surf, details = monotomo.fit_threshold_surface(noise, region, 0.95, 32)
    assert surf.shape == (128, 128)
    ratio = surf[:, -16:].mean() / surf[:, :16].mean()
    expected = tomo.noise_sigma_yx[:, -16:].mean() / tomo.noise_sigma_yx[:, :16].mean()
    assert ratio == pytest.approx(expected, rel=0.25)


def test_bad_inputs_are_one_line_errors(tomo):
    inputs = MethodInputs(10.0, half1=tomo.half1, half2=tomo.half2)
    with pytest.raises(LocresError, match="Nyquist"):
        monotomo.run(inputs, min_resolution_a=15.0)
    with pytest.raises(LocresError, match="coarser"):
        monotomo.run(inputs, min_resolution_a=60.0, max_resolution_a=40.0)
    with pytest.raises(LocresError, match="half tomograms"):
        monotomo.run(MethodInputs(10.0, map=tomo.half1))


def test_packed_sweep_equals_the_real_transform_path(tomo):
    """The fast engine changes no answer: the sweep with the old rfft amplitudes gives the same map."""
    from locres.methods.monogenic import FourierGrid, PackedMonogenic, monogenic_amplitude, to_spectrum

    shape = tomo.half1.shape
    bands = monotomo.tomo_bands(shape, 10.0, 20.0, 60.0, 2.5)
    mean, noise, region = monotomo.tapered_pair(tomo.half1, tomo.half2, (4, 10, 10))
    grid = FourierGrid(shape)
    spectra = to_spectrum(np.stack([mean, noise]), "cpu")

    def real_path(band):
        amps = monogenic_amplitude(spectra, grid, [band])
        return amps[0, 0], amps[1, 0]

    dev = torch.device("cpu")
    fast, trace_fast, _ = monotomo.monotomo_sweep(PackedMonogenic(mean, noise).amplitudes, bands, region,
                                                  0.95, 32, 8, dev)
    slow, trace_slow, _ = monotomo.monotomo_sweep(real_path, bands, region, 0.95, 32, 8, dev)
    assert len(trace_fast) == len(trace_slow) > 5
    assert float((fast != slow).float().mean()) <= 1e-4
    out_fast = monotomo.smooth_tomo(fast, region, 20.0, True)
    out_slow = monotomo.smooth_tomo(slow, region, 20.0, True)
    assert np.median(np.abs(out_fast - out_slow)) == 0.0


def test_sweep_schedule_is_the_references_over_the_z_grid_by_default():
    """100 to 20 A, step 2 A, 10 A/px, 128 slices: the reference visits 23 resolutions (index / 128 of
    the Z axis, each at least a step finer than the last); the longest-axis schedule 41."""
    z = monotomo.tomo_bands((128, 512, 512), 10.0, 20.0, 100.0, 2.0)
    res = np.array([b.resolution_a for b in z])
    assert len(z) == 23
    assert np.allclose(res[:4], [1280 / 13, 1280 / 14, 1280 / 15, 1280 / 16])
    assert np.all(-np.diff(res) >= 2.0) and np.isclose(res[-1], 20.0)
    assert all(abs(b.f * 128 - round(b.f * 128)) < 1e-9 for b in z)
    longest = monotomo.tomo_bands((128, 512, 512), 10.0, 20.0, 100.0, 2.0, "longest")
    assert len(longest) == 41
    with pytest.raises(LocresError, match="sweep_grid"):
        monotomo.tomo_bands((128, 512, 512), 10.0, 20.0, 100.0, 2.0, "x")


def test_reference_noise_surface_follows_a_noise_level_that_rises_along_x():
    """The original's tiles and spline: on noise whose level grows linearly along X the surface rises
    with X and sits near the tiles' 95th percentiles; too few tiles for its spline are refused."""
    rng = np.random.default_rng(2)
    z, y, x = 8, 300, 320
    level = np.linspace(1.0, 3.0, x, dtype=np.float32)
    noise = torch.from_numpy(np.abs(rng.standard_normal((z, y, x)).astype(np.float32)) * level)
    surf, details = monotomo.reference_threshold_surface(noise, 0.95, 50)
    assert surf.shape == (y, x) and len(details["tile_thresholds"]) == 36
    cols = surf[y // 2]
    assert cols[300] > 1.8 * cols[20]
    expected = 1.96 * level  # |N(0,1)| 95th percentile times the level
    inner = slice(25, 295)
    assert np.median(np.abs(cols[inner] - expected[inner]) / expected[inner]) < 0.1
    with pytest.raises(LocresError, match="6 tiles"):
        monotomo.reference_threshold_surface(noise[:, :200, :200], 0.95, 50)


def test_background_that_never_passes_holds_the_unsnapped_start_value():
    """As the original: voxels failing the first two steps hold --maxRes itself (100 A here), not the
    first band's snapped resolution (96 A on 48 slices at 10 A/px)."""
    rng = np.random.default_rng(4)
    shape = (48, 64, 64)
    h1 = rng.standard_normal(shape).astype(np.float32)
    h2 = rng.standard_normal(shape).astype(np.float32)
    out = monotomo.estimate_monotomo(h1, h2, 10.0, min_resolution_a=20.0, max_resolution_a=100.0, step_a=2.0,
                                     smooth=False)
    first = monotomo.tomo_bands(shape, 10.0, 20.0, 100.0, 2.0)[0].resolution_a
    assert abs(first - 96.0) < 1e-6
    assert np.median(out.resolution_a[out.mask]) == pytest.approx(100.0)
