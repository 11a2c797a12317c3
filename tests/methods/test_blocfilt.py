"""blocfilt: each region low-passed to its own resolution; the reference's known answers."""

from __future__ import annotations

import numpy as np
import pytest

from locres.core.fourier import apply_fourier_filter, frequency_grid_per_a
from locres.errors import LocresError
from locres.methods.blocfilt import CUT_WIDTH_PER_A, blocfilt, blocfilt_reference, bsoft_lowpass_transfer
from locres.simulate.phantom import make_synthetic_phantom


def test_constant_map_gives_half_with_the_dc_quirk():
    x = np.full((24, 24, 24), 3.0, np.float32)
    r = np.full_like(x, 5.0)
    r[:, :, 12:] = 9.0
    ref = blocfilt_reference(x, r, 1.0, 12, np.array([[12, 12, 6], [12, 12, 18]]), halve_dc=True)
    np.testing.assert_allclose(ref, 1.5, rtol=1e-5)
    np.testing.assert_allclose(blocfilt(x, r, 1.0, halve_dc=True), 1.5, rtol=1e-5)
    np.testing.assert_allclose(blocfilt(x, r, 1.0), 3.0, rtol=1e-5)


def _power_beyond(volume: np.ndarray, freq_per_a: float, voxel_size_a: float) -> float:
    spec = np.abs(np.fft.rfftn(volume)) ** 2
    return float(spec[frequency_grid_per_a(volume.shape, voxel_size_a) > freq_per_a].sum() / spec.sum())


def test_each_region_keeps_no_power_beyond_its_resolution():
    u = 1.0
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 40, 48)).astype(np.float32)
    r = np.full(x.shape, 4.0, np.float32)
    r[:, :, 24:] = 8.0
    out = blocfilt(x, r, u)
    freq = frequency_grid_per_a(x.shape, u)
    for res_a, region in ((4.0, r == 4.0), (8.0, r == 8.0)):
        whole = apply_fourier_filter(x, bsoft_lowpass_transfer(freq, res_a).astype(np.float32))
        # in its region the output is the whole-map low pass at that region's resolution ...
        np.testing.assert_allclose(out[region], whole[region], atol=1e-4)
        # ... which holds no power beyond 1/r + 0.02 (and little beyond 1/r + 0.005)
        assert _power_beyond(whole, 1.0 / res_a + CUT_WIDTH_PER_A, u) < 1e-10
        assert _power_beyond(whole, 1.0 / res_a + 0.005, u) < 0.02
    # the unfiltered noise had most of its power beyond 1/4 A
    assert _power_beyond(x, 0.25 + CUT_WIDTH_PER_A, u) > 0.5


def test_filtering_a_phantom_to_its_truth_brings_it_closer_to_the_clean_map():
    ph = make_synthetic_phantom((40, 40, 40), 1.0, (3.0, 8.0), "radial", snr=1.0, seed=3)
    out = blocfilt(ph.map, ph.truth_a, ph.voxel_size_a, mask=ph.mask)
    m = ph.mask
    err_raw = np.mean((ph.map[m] - ph.clean[m]) ** 2)
    err_filt = np.mean((out[m] - ph.clean[m]) ** 2)
    assert err_filt < 0.7 * err_raw
    assert (out[~m] == 0).all()


def test_ladder_matches_the_box_reference_inside_a_uniform_region():
    """Inside a uniform-resolution map the whole-map filter and the periodic box filter (B = 24) agree:
    correlation > 0.9 over 40 voxels and RMS difference < 25 % of the map's spread (they differ only
    by the box's periodic wrap-around, which the reference does not taper)."""
    rng = np.random.default_rng(1)
    x = apply_fourier_filter(rng.standard_normal((32, 32, 32)).astype(np.float32),
                             bsoft_lowpass_transfer(frequency_grid_per_a((32, 32, 32), 1.0), 4.0))
    r = np.full_like(x, 5.0)
    pts = rng.integers(8, 24, size=(40, 3))
    ref = blocfilt_reference(x, r, 1.0, 24, pts, halve_dc=False)
    fast = blocfilt(x, r, 1.0)[tuple(pts.T)]
    assert np.corrcoef(ref, fast)[0, 1] > 0.9  # measured 0.957
    assert np.sqrt(np.mean((ref - fast) ** 2)) < 0.25 * x.std()  # measured 0.18


def test_bad_inputs():
    x = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(LocresError):
        blocfilt(x, np.zeros((8, 8, 9), np.float32), 1.0)
    with pytest.raises(LocresError):
        blocfilt(x, np.zeros_like(x), 1.0)
