"""MonoRes and the shared monogenic amplitude: known-answer tests on small maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from locres.core.fourier import lowpass_raised_cosine
from locres.errors import LocresError
from locres.methods import MethodInputs, monores
from locres.methods.monogenic import Band, FourierGrid, centred_radius, monogenic_amplitude, to_spectrum


def atom_map(shape, voxel_size_a, resolution_a, radius_px, noise_sd, seed=0):
    """(half1, half2, mask): point atoms in a sphere low-passed to resolution_a, white noise everywhere."""
    rng = np.random.default_rng(seed)
    mask = centred_radius(shape) < radius_px
    vol = np.zeros(shape, np.float32)
    idx = np.flatnonzero(mask.ravel())
    np.add.at(vol.reshape(-1), idx[rng.integers(0, idx.size, int(0.1 * idx.size))], 1.0)
    sig = lowpass_raised_cosine(vol, voxel_size_a, resolution_a)
    sig /= sig[mask].std()
    h1, h2 = (sig + noise_sd * rng.standard_normal(shape, dtype=np.float32) for _ in range(2))
    return h1, h2, mask


def test_monogenic_amplitude_of_a_plane_wave_is_its_amplitude():
    # the monogenic amplitude of a cosine is flat (its envelope), whatever the phase
    n = 32
    x = np.arange(n, dtype=np.float32)
    wave = 2.0 * np.cos(2 * np.pi * 6 / n * x)[None, None, :] * np.ones((n, n, 1), np.float32)
    grid = FourierGrid((n, n, n))
    amp = monogenic_amplitude(to_spectrum(wave[None], "cpu"), grid, [Band(0.1, 0.08, 0.12, 10.0)])[0, 0]
    assert torch.allclose(amp, torch.full_like(amp, 2.0), atol=1e-3)
    # a band above the wave's frequency sees nothing
    amp_hi = monogenic_amplitude(to_spectrum(wave[None], "cpu"), grid, [Band(0.3, 0.28, 0.32, 3.3)])[0, 0]
    assert float(amp_hi.abs().max()) < 1e-4


@pytest.mark.parametrize("resolution_a", [4.0, 7.0])
def test_half_maps_lowpassed_to_r_give_r_inside_the_mask(resolution_a):
    h1, h2, mask = atom_map((40, 40, 40), 1.0, resolution_a, 12, 0.5)
    out = monores.run(MethodInputs(1.0, half1=h1, half2=h2, mask=mask))
    med = float(np.median(out.resolution_a[out.mask]))
    # signal has no power beyond 1/R and full power just below: the estimate is R or one step coarser
    assert resolution_a - 0.3 <= med <= 1.15 * resolution_a + 0.3, med
    assert out.mask.sum() > 0.9 * mask.sum()
    assert np.all(out.resolution_a[~out.mask] == 0)


def test_single_map_noise_from_outside_the_mask_on_a_non_cubic_box():
    h1, _, mask = atom_map((40, 48, 56), 1.0, 5.0, 13, 0.4, seed=2)
    out = monores.run(MethodInputs(1.0, map=h1, mask=mask))
    assert out.resolution_a.shape == (40, 48, 56)
    med = float(np.median(out.resolution_a[out.mask]))
    assert 4.7 <= med <= 6.3, med


def test_automatic_mask_is_made_and_returned():
    h1, h2, mask = atom_map((48, 48, 48), 1.0, 5.0, 14, 0.3, seed=3)
    out = monores.run(MethodInputs(1.0, half1=h1, half2=h2))
    assert out.mask is not None and out.mask.dtype == bool
    assert out.info["automatic_mask"] is True
    # the automatic mask sits on the particle (whose density reaches ~R/2 beyond the 14 px sphere)
    near = centred_radius(mask.shape) < 14 + 5
    assert (out.mask & near).sum() > 0.95 * out.mask.sum()
    assert (out.mask & mask).sum() > 0.6 * mask.sum()
    assert np.all(out.resolution_a[~out.mask] == 0)


def test_phantom_resolution_is_tracked():
    from locres.simulate.phantom import make_synthetic_phantom

    ph = make_synthetic_phantom((48, 48, 48), 1.0, (3.0, 8.0), "radial", snr=4.0, seed=5)
    out = monores.run(MethodInputs(1.0, half1=ph.half1, half2=ph.half2, mask=ph.mask))
    sel = out.mask & ph.mask
    est, truth = out.resolution_a[sel], ph.truth_a[sel]
    rho = spearmanr(est, truth).statistic
    mae = float(np.mean(np.abs(est - truth)))
    # stated tolerance: rank correlation > 0.5 and MAE < 3 A over 3-8 A
    assert rho > 0.5, rho
    assert mae < 3.0, mae


@pytest.mark.parametrize("params, msg", [({"min_resolution_a": 1.5}, "Nyquist"),
                                         ({"min_resolution_a": 6.0, "max_resolution_a": 4.0}, "coarser")])
def test_bad_resolution_range_is_a_one_line_error(params, msg):
    h1, h2, mask = atom_map((24, 24, 24), 1.0, 5.0, 7, 0.5)
    with pytest.raises(LocresError, match=msg) as err:
        monores.run(MethodInputs(1.0, half1=h1, half2=h2, mask=mask), **params)
    assert "\n" not in str(err.value)


def _ball_with_rim(n=32, core=5.0, rim=8.0):
    r = centred_radius((n, n, n))
    est = r < 9
    shell = est & (r >= 8)
    raw = np.where(est, core, 0.0).astype(np.float32)
    raw[shell] = rim
    return raw, est, shell


def test_postprocessing_fills_the_outside_with_the_median_before_smoothing():
    from scipy import ndimage

    raw, est, shell = _ball_with_rim()
    assert shell.sum() < 0.5 * est.sum()  # the median is the core value
    grid = FourierGrid(raw.shape)
    out = monores.postprocess_resolution(torch.from_numpy(raw), torch.from_numpy(est), 1.0, grid).numpy()
    # box filled with 5 A except the rim at 8 A: smoothed = 5 + 3 * G * rim (reference sigma 3 = std 3/sqrt 2)
    expect = 5.0 + 3.0 * ndimage.gaussian_filter(shell.astype(np.float64), 3.0 / np.sqrt(2), mode="wrap")
    np.testing.assert_allclose(out[shell], expect[shell], atol=0.05)
    assert np.all(out[~est] == 0)
    # a uniform map reads the same at its rim as in its core
    flat = np.where(est, 5.0, 0.0).astype(np.float32)
    out = monores.postprocess_resolution(torch.from_numpy(flat), torch.from_numpy(est), 1.0, grid).numpy()
    np.testing.assert_allclose(out[est], 5.0, atol=1e-4)


def test_single_map_refined_out_mask_voxels_join_the_noise():
    h1, _, _ = atom_map((48, 48, 48), 1.0, 5.0, 6, 0.3, seed=4)
    wide = centred_radius(h1.shape) < 17  # the mask overshoots the particle by 11 voxels
    sets = monores.monores_masks(h1, 1.0, wide, False, True, None, torch.device("cpu"))
    valid = centred_radius(h1.shape) <= sets.rlimit_px
    refined = wide & valid & ~sets.signal
    assert sets.refined_out == refined.sum() > 0
    assert np.array_equal(sets.noise, (valid & ~wide) | refined)
    assert not (sets.noise & sets.signal).any()


def test_noise_only_in_halves_takes_the_noise_from_the_mask_only():
    h1, h2, mask = atom_map((32, 32, 32), 1.0, 5.0, 9, 0.3, seed=6)
    vol = 0.5 * (h1 + h2)
    only = monores.monores_masks(vol, 1.0, mask, True, True, None, torch.device("cpu"))
    assert np.array_equal(only.noise, only.signal) and np.array_equal(only.signal, mask)
    both = monores.monores_masks(vol, 1.0, mask, True, False, None, torch.device("cpu"))
    valid = centred_radius(mask.shape) <= both.rlimit_px
    assert np.array_equal(both.noise, valid)


def test_half_maps_default_to_the_reference_programs_refined_mode_and_fall_back_on_flattened_halves():
    h1, h2, mask = atom_map((40, 40, 40), 1.0, 5.0, 10, 0.3, seed=8)
    out = monores.run(MethodInputs(1.0, half1=h1, half2=h2, mask=mask))
    assert out.info["noise_only_in_halves"] is False and out.info["why_noise_only_in_halves"] is None
    assert out.info["noise_voxels"] > mask.sum()  # mask and solvent
    # solvent-flattened half maps (background set to one constant): their difference is 0 outside the mask
    f1, f2 = np.where(mask, h1, 0.1).astype(np.float32), np.where(mask, h2, 0.1).astype(np.float32)
    flat = monores.run(MethodInputs(1.0, half1=f1, half2=f2, mask=mask))
    assert flat.info["noise_only_in_halves"] is True and flat.info["why_noise_only_in_halves"]
    assert flat.info["noise_voxels"] <= mask.sum()
    only = monores.run(MethodInputs(1.0, half1=f1, half2=f2, mask=mask), noise_only_in_halves=True)
    np.testing.assert_array_equal(flat.resolution_a, only.resolution_a)  # the flag's answer exactly


def test_a_half_difference_flat_outside_the_mask_keeps_the_solvent_out_of_the_noise():
    rng = np.random.default_rng(0)
    r = centred_radius((32, 32, 32))
    mask, solvent = r < 8, (r >= 8) & (r < 15)
    noise = rng.normal(size=r.shape).astype(np.float32)
    assert monores.solvent_unusable_for_half_map_noise(solvent, mask, noise) is None
    assert "flat" in monores.solvent_unusable_for_half_map_noise(solvent, mask, np.where(mask, noise, 0.3))
    few = np.zeros_like(solvent)
    few.ravel()[np.flatnonzero(solvent)[:99]] = True  # 99 solvent voxels
    assert "fewer than 100" in monores.solvent_unusable_for_half_map_noise(few, mask, noise)


def test_voxels_that_never_pass_are_counted_and_left_unestimated():
    # signal only in a 6 px ball; the mask reaches 19 px: its outer voxels hold noise alone
    h1, h2, _ = atom_map((44, 44, 44), 1.0, 5.0, 6, 0.3, seed=7)
    r = centred_radius(h1.shape)
    mask = r < 19
    empty = mask & (r >= 15)
    # noise from the mask only: without the refinement the empty shell stays in the signal
    default = monores.run(MethodInputs(1.0, half1=h1, half2=h2, mask=mask), max_resolution_a=8.0,
                          noise_only_in_halves=True)
    kept = monores.run(MethodInputs(1.0, half1=h1, half2=h2, mask=mask), max_resolution_a=8.0,
                       keep_never_passed=True, noise_only_in_halves=True)
    n_never = default.info["never_passed_voxels"]
    assert n_never == kept.info["never_passed_voxels"] >= 0.7 * empty.sum()
    assert (default.mask & empty).sum() < 0.3 * empty.sum()  # the empty shell is mostly not estimated
    assert kept.mask.sum() - default.mask.sum() == n_never
    # the reference's behaviour: they hold the sweep's start value (before smoothing)
    start = kept.info["sweep"][0]["resolution_a"]
    gained = kept.mask & ~default.mask
    raw = monores.run(MethodInputs(1.0, half1=h1, half2=h2, mask=mask), max_resolution_a=8.0,
                      keep_never_passed=True, smooth=False, noise_only_in_halves=True)
    np.testing.assert_allclose(raw.resolution_a[gained], start, atol=1e-4)
