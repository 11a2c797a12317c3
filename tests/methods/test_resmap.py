"""ResMap: known-answer tests (ladder, null table, steerability, low-passed maps, noise, phantoms)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from locres.core.fourier import lowpass_raised_cosine
from locres.errors import LocresError
from locres.methods import MethodInputs, resmap
from locres.methods.resmap_stats import (
    block_noise_variance,
    design_matrix,
    level_operators,
    null_threshold,
    resolution_ladder_a,
    steerable_directions,
    weighted_chisq_sf,
    window_radius,
)


def test_ladder_matches_reference_examples():
    assert resolution_ladder_a(1.0, max_res_a=4.0) == [2.2, 3.2, 4.2]
    assert [2 * window_radius(r, 1.0) + 1 for r in (2.2, 3.2, 4.2)] == [5, 5, 7]
    lad = resolution_ladder_a(3.54, 7.5, 20.0, 0.5)  # the Scipion test: min raised to 2.2 voxels
    assert lad[0] == 7.8 and lad[-1] == 20.3 and lad[-2] < 20.0
    widths = {r: 2 * window_radius(r, 3.54) + 1 for r in lad}
    assert widths[13.8] == 5 and widths[14.3] == 7


@pytest.mark.parametrize("ratio,n_kept,lam_max,thr", [(2.2, 6, 0.2063, 1.003), (3.2, 6, 0.4105, 2.661),
                                                      (4.2, 16, 0.2769, 3.324), (6.0, 16, 0.3175, 3.707)])
def test_null_threshold_table(ratio, n_kept, lam_max, thr):
    ops = level_operators(ratio, 1.0)
    assert ops.null_eigs.size == n_kept
    assert ops.null_eigs.max() == pytest.approx(lam_max, abs=1e-4)
    assert null_threshold(ops.null_eigs, 0.05) == pytest.approx(thr, abs=2e-3)  # spec table, 3 decimals


def test_weighted_chisq_sf_against_monte_carlo(rng):
    eigs = level_operators(4.2, 1.0).null_eigs
    draws = (rng.standard_normal((200_000, eigs.size)) ** 2) @ eigs
    for x in (1.0, 2.5, 4.0):
        assert weighted_chisq_sf(x, eigs)[0] == pytest.approx(np.mean(draws > x), abs=4e-3)


@pytest.mark.parametrize("ratio", [3.2, 4.2])
def test_statistic_on_white_noise_follows_the_null(rng, ratio):
    n = 40
    noise = rng.standard_normal((n, n, n)).astype(np.float32)
    ops = level_operators(ratio, 1.0)
    stat = resmap.level_statistic(np.fft.rfftn(noise).astype(np.complex64), (n, n, n), ops,
                                  np.arange(n**3))
    assert stat.mean() == pytest.approx(ops.null_eigs.sum(), rel=0.03)
    assert np.mean(stat > null_threshold(ops.null_eigs, 0.05)) == pytest.approx(0.05, abs=0.006)
    blocks = resmap._blocks(noise, np.ones(noise.shape, bool), ops.width)
    assert np.mean(block_noise_variance(blocks, ops)) == pytest.approx(1.0, abs=0.04)


def test_basis_is_steerable(rng):
    """Rotated G2 and H2 functions lie in the span of the 16 fixed ones; a quartic does not."""
    t = rng.uniform(-2, 2, size=(400, 3))
    basis = design_matrix(t)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    dg, dh = steerable_directions()

    def rel_residual(f):
        coef, *_ = np.linalg.lstsq(basis, f, rcond=None)
        return np.linalg.norm(basis @ coef - f) / np.linalg.norm(f)

    for d in (q @ dg[0], q @ dh[3], q @ dh[7]):
        u = t @ d
        assert rel_residual(4 * u**2 - 2) < 1e-8
        assert rel_residual(u**3 - 2.254 * u) < 1e-8
    assert rel_residual((t @ (q @ dg[0])) ** 4) > 1e-2


def _lowpassed_sphere(rng, n, res_a, snr, radius):
    sig = lowpass_raised_cosine(rng.standard_normal((n, n, n)).astype(np.float32), 1.0, res_a)
    zz, yy, xx = np.mgrid[:n, :n, :n] - n / 2
    sphere = zz**2 + yy**2 + xx**2 < radius**2
    signal = sig / sig.std() * np.sqrt(snr) * sphere
    return signal, sphere


def test_lowpassed_map_reads_about_its_resolution(rng):
    """Signal low-passed to R plus white noise (split mode): median within 1.5 A of R, and ordered."""
    medians = {}
    n = 48
    for res_a in (4.0, 7.0):
        signal, sphere = _lowpassed_sphere(rng, n, res_a, 2.0, 16)
        h1 = signal + rng.standard_normal(signal.shape).astype(np.float32) * np.sqrt(2)
        h2 = signal + rng.standard_normal(signal.shape).astype(np.float32) * np.sqrt(2)
        out = resmap.run(MethodInputs(1.0, half1=h1, half2=h2, mask=sphere), max_res_a=9.0)
        r = out.resolution_a[sphere]
        assert np.mean(r > 0) > 0.9
        medians[res_a] = float(np.median(r[r > 0]))
        assert abs(medians[res_a] - res_a) <= 1.5, medians
    assert medians[4.0] < medians[7.0]


def test_noise_only_region_is_not_assigned(rng):
    n = 48
    signal, sphere = _lowpassed_sphere(rng, n, 5.0, 4.0, 12)
    volume = np.roll(signal, 10, axis=2) + rng.standard_normal((n, n, n)).astype(np.float32)
    mask = np.roll(sphere, 10, axis=2) | np.roll(sphere, -12, axis=2)
    noise_only = np.roll(sphere, -12, axis=2) & ~np.roll(sphere, 10, axis=2)
    res, info = resmap.resmap_local_resolution(volume, 1.0, mask, max_res_a=8.0)
    assert np.mean(res[noise_only] > 0) < 0.05
    assert np.mean(res[np.roll(sphere, 10, axis=2) & ~noise_only] > 0) > 0.8
    assert info["mode"] == "single" and info["prewhitening"]["applied"]


def test_invariant_to_scale_and_offset_with_fixed_mask(rng):
    n = 40
    signal, sphere = _lowpassed_sphere(rng, n, 5.0, 4.0, 12)
    volume = signal + rng.standard_normal((n, n, n)).astype(np.float32)
    base, _ = resmap.resmap_local_resolution(volume, 1.0, sphere, max_res_a=7.0)
    other, _ = resmap.resmap_local_resolution(3.7 * volume + 5.0, 1.0, sphere, max_res_a=7.0)
    assert np.mean(base == other) > 0.999


def test_phantom_tracks_truth():
    from locres.simulate.phantom import make_synthetic_phantom

    ph = make_synthetic_phantom((48, 48, 48), 1.0, (3.0, 8.0), "radial", snr=2.0, seed=3)
    out = resmap.run(MethodInputs(1.0, half1=ph.half1, half2=ph.half2, mask=ph.mask), max_res_a=9.0)
    r, truth = out.resolution_a[ph.mask], ph.truth_a[ph.mask]
    ok = r > 0
    assert ok.mean() > 0.9
    err = r[ok] - truth[ok]
    assert np.abs(err).mean() < 1.8 and abs(err.mean()) < 1.5
    assert spearmanr(r[ok], truth[ok])[0] > 0.3


def test_non_cubic_map_and_auto_mask(rng):
    shape = (36, 44, 40)
    sig = lowpass_raised_cosine(rng.standard_normal(shape).astype(np.float32), 1.0, 5.0)
    zz, yy, xx = np.meshgrid(*[np.arange(n) - n / 2 for n in shape], indexing="ij")
    blob = np.exp(-(zz**2 + yy**2 + xx**2) / (2 * 8.0**2)).astype(np.float32)
    volume = 3 * blob + 0.5 * sig / sig.std() * blob + 0.2 * rng.standard_normal(shape).astype(np.float32)
    out = resmap.run(MethodInputs(1.0, map=volume), max_res_a=7.0)
    assert out.resolution_a.shape == shape and out.mask is not None and out.mask.any()
    assert np.all(out.resolution_a[~out.mask] == 0)
    assert np.mean(out.resolution_a[out.mask] > 0) > 0.5


def test_mask_without_background_suggests_half_maps(rng):
    volume = rng.standard_normal((32, 32, 32)).astype(np.float32)
    with pytest.raises(LocresError, match="half maps"):
        resmap.run(MethodInputs(1.0, map=volume, mask=np.ones(volume.shape, bool)))


def test_torch_backend_matches_numpy(rng):
    """The torch path (used on CUDA) gives the numpy statistic; checked here with torch on the CPU."""
    import torch

    n = 24
    vol = rng.standard_normal((n, n, n)).astype(np.float32)
    ops = level_operators(4.2, 1.0)
    idx = np.flatnonzero(rng.random(n**3) < 0.3)
    ref = resmap.level_statistic(np.fft.rfftn(vol).astype(np.complex64), (n, n, n), ops, idx)
    backend = resmap._Backend("cpu")
    backend.torch = True
    vhat = backend.rfftn(backend.asarray(vol))
    got = resmap.level_statistic(vhat, (n, n, n), ops, torch.from_numpy(idx), backend).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4 * float(ref.max()))


@pytest.mark.gpu
def test_cuda_run_matches_cpu(rng):
    n = 40
    signal, sphere = _lowpassed_sphere(rng, n, 5.0, 4.0, 12)
    h1 = signal + rng.standard_normal(signal.shape).astype(np.float32)
    h2 = signal + rng.standard_normal(signal.shape).astype(np.float32)
    cpu = resmap.run(MethodInputs(1.0, half1=h1, half2=h2, mask=sphere), max_res_a=8.0)
    gpu = resmap.run(MethodInputs(1.0, half1=h1, half2=h2, mask=sphere, device="cuda"), max_res_a=8.0)
    assert np.mean(cpu.resolution_a == gpu.resolution_a) > 0.999


@pytest.mark.parametrize("ratio", [3.2, 6.0])
def test_direct_window_path_matches_fft_path(rng, ratio):
    shape = (20, 26, 23)
    vol = rng.standard_normal(shape).astype(np.float32)
    ops = level_operators(ratio, 1.0)
    idx = np.flatnonzero(rng.random(vol.size) < 0.2)
    fft = resmap.level_statistic(np.fft.rfftn(vol).astype(np.complex64), shape, ops, idx)
    direct = resmap.level_statistic_direct(vol, ops, idx)
    np.testing.assert_allclose(direct, fft, rtol=2e-3, atol=1e-4 * float(fft.max()))


def test_zeroed_solvent_suggests_half_maps(rng):
    """A masked map (solvent exactly 0) has no noise to measure outside the mask."""
    n = 32
    signal, sphere = _lowpassed_sphere(rng, n, 5.0, 4.0, 12)
    volume = (signal + rng.standard_normal((n, n, n)).astype(np.float32)) * sphere
    with pytest.raises(LocresError, match="half maps"):
        resmap.run(MethodInputs(1.0, map=volume, mask=np.roll(sphere, 1, axis=0) & sphere))


def test_reference_null_model_is_anti_conservative(rng):
    """ResMap 1.1.5 sums all 16 directions but thresholds with the kept eigenvalues: noise passes more
    often than p (the reason ``null_model="consistent"`` is the default)."""
    n = 40
    noise = rng.standard_normal((n, n, n)).astype(np.float32)
    ops = level_operators(3.2, 1.0, null_model="reference")
    assert ops.stat_dirs.shape == (19, 16) and ops.null_eigs.size == 6
    stat = resmap.level_statistic(np.fft.rfftn(noise).astype(np.complex64), (n, n, n), ops, np.arange(n**3))
    assert stat.mean() == pytest.approx(ops.all_eigs.sum(), rel=0.03)
    assert np.mean(stat > null_threshold(ops.null_eigs, 0.05)) > 0.065  # about 0.074 (vs 0.05)


def test_soft_masked_map_is_refused_like_the_advisory():
    """EMD-3488's case: solvent exactly 0 beyond a soft edge, a tight mask inside it. The band between the
    mask and the zeros is no noise; single-map mode refuses whenever the masked advisory fires."""
    from scipy import ndimage

    from locres.advisories import advise
    from locres.simulate.phantom import make_synthetic_phantom

    ph = make_synthetic_phantom((48, 48, 48), 1.0, (3.0, 8.0), snr=2.0, seed=3)
    d = ndimage.distance_transform_edt(~ph.mask)
    soft = np.where(d < 6, 0.5 * (1 + np.cos(np.pi * d / 6)), 0.0).astype(np.float32)
    tight = ndimage.binary_erosion(ph.mask, iterations=2)
    masked = ph.map * soft
    assert "masked" in [a.code for a in advise(masked, 1.0)]
    with pytest.raises(LocresError, match="masked or solvent-flattened.*half maps"):
        resmap.run(MethodInputs(1.0, map=masked, mask=tight))
    assert "masked" not in [a.code for a in advise(ph.map, 1.0)]
    out = resmap.run(MethodInputs(1.0, map=ph.map, mask=tight), max_res_a=9.0)
    assert np.mean(out.resolution_a[tight] > 0) > 0.5


@pytest.mark.shared
def test_emd_3488_single_map_is_refused(shared_data):
    from locres.io.maps import read_map

    vol = read_map(shared_data / "maps" / "emd_3488" / "emd_3488.mrc")
    with pytest.raises(LocresError, match="71 %"):
        resmap.run(MethodInputs(vol.voxel_size_a, map=vol.data))
