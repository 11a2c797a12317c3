"""MonoRes: local resolution from the monogenic amplitude (Vilas et al., Structure 2018).

For a sweep of frequencies from coarse to fine, the map is high-passed at the frequency, its monogenic
amplitude (energy at every voxel of what lies above that frequency) is compared voxel by voxel with the
amplitude of noise in the same band, and a voxel's resolution is the finest frequency at which it still
stands out of the noise at the chosen significance. Noise comes from outside the mask (one map) or from
the half-map difference (two half maps, everywhere in the box).

Departures from the reference (``specs/monogenic.md`` section 1), each deliberate:

- The final smoothing is a normalised Gaussian average over the mask only: the reference smooths the
  zeros outside the mask in, which pulls voxels at the surface toward 0 A (too fine).
- Mask voxels that never received an estimate (dropped by the refinement) are left out of the smoothing
  and of the returned mask instead of being set to the median.
- With half maps the noise sample is the difference map's amplitude over every usable voxel (mask and
  solvent); the reference's option "noise only in halves" is the default and the exclusion-mask quirk
  (ignored with half maps unless that option is on) is not copied: an exclusion mask always applies.
- No mask given: one is made from the map (see :func:`automatic_mask`) and returned.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from scipy import ndimage
from scipy.stats import norm as normal_dist

from locres.errors import LocresError
from locres.methods import LocalResolution, MethodInputs
from locres.methods.monogenic import (
    Band,
    FourierGrid,
    centred_radius,
    check_resolution_range,
    full_band_amplitude,
    gaussian_smooth,
    monogenic_amplitude,
    percentile_threshold,
    radius_limit,
    resolve_device,
    smooth_within,
    snap_index,
    sweep_step,
    threads_for_volume,
    to_spectrum,
)

NAME = "monores"
INPUTS = "map_or_halves"
log = logging.getLogger(__name__)


def default_range_a(voxel_size_a: float, shape_zyx: tuple[int, ...]) -> tuple[float, float, float]:
    """(min_resolution_a, max_resolution_a, step_a) derived from the voxel size and box.

    Finest: Nyquist (2 voxels). Coarsest: 15 voxels, at least 12 A and at most 30 A (but never below
    10 voxels), and no coarser than a third of the smallest box edge. Step: 0.25 A per Angstrom of
    voxel, never below 0.25 A.
    """
    nyquist = 2.0 * voxel_size_a
    coarse = max(min(max(15.0 * voxel_size_a, 12.0), 30.0), 10.0 * voxel_size_a)
    coarse = min(coarse, min(shape_zyx) * voxel_size_a / 3.0)
    coarse = max(coarse, 4.0 * voxel_size_a)
    step = max(0.25, 0.25 * voxel_size_a)
    return nyquist, coarse, step


def sweep_bands(voxel_size_a: float, shape_zyx: tuple[int, ...], min_resolution_a: float,
                max_resolution_a: float, step_a: float, half_width: float = 0.02) -> list[Band]:
    """Bands from ``max_resolution_a`` down to ``min_resolution_a`` in steps, snapped to the frequency grid.

    Frequencies are snapped on the longest axis (the finest index grid); repeated indices are skipped.
    """
    n = max(shape_zyx)
    bands: list[Band] = []
    last = None
    count = 0
    while True:
        r = max_resolution_a - count * step_a
        count += 1
        if r < min_resolution_a - 1e-6 or r <= 0:
            break
        idx = snap_index(r, voxel_size_a, n)
        if idx == last or idx <= 0:
            continue
        last = idx
        f = idx / n
        r = voxel_size_a / f
        if r < max(min_resolution_a, 2.0 * voxel_size_a) - 1e-6:
            break
        bands.append(Band(f=f, f_high_pass=max(f - half_width, 0.0), f_low_pass=min(f + half_width, 0.5),
                          resolution_a=r))
    return bands


def automatic_mask(volume: np.ndarray, voxel_size_a: float) -> np.ndarray:
    """A molecule mask made from the map alone (bool, (Z, Y, X)).

    The map is smoothed with a Gaussian of std 0.02 x the smallest box edge (at least 1 voxel, as the
    Scipion wrapper) and thresholded at the larger of 5 % of its maximum and the box border's mean plus
    5 standard deviations (so that noise does not enter the mask); components smaller than 5 % of the
    largest are dropped, holes filled and the result dilated by one voxel.
    """
    sigma = max(0.02 * min(volume.shape), 1.0)
    sm = ndimage.gaussian_filter(volume.astype(np.float32), sigma)
    border = np.ones(volume.shape, bool)
    b = max(2, min(volume.shape) // 16)
    border[b:-b, b:-b, b:-b] = False
    thr = max(0.05 * float(sm.max()), float(sm[border].mean() + 5.0 * sm[border].std()))
    mask = sm > thr
    labels, n = ndimage.label(mask)
    if n == 0:
        raise LocresError("could not make a mask from the map (nothing above the noise): pass input.mask")
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= 0.05 * sizes.max()) + 1
    mask = ndimage.binary_fill_holes(np.isin(labels, keep))
    mask = ndimage.binary_dilation(mask, iterations=1)
    if mask.mean() > 0.9:
        raise LocresError("the automatic mask covers the whole box (no solvent found): pass input.mask")
    log.info("automatic mask: %d voxels (%.1f %% of the box)", int(mask.sum()), 100 * mask.mean())
    return mask


def estimate_monores(volume: np.ndarray, voxel_size_a: float, mask: np.ndarray | None = None,
                     half1: np.ndarray | None = None, half2: np.ndarray | None = None,
                     min_resolution_a: float | None = None, max_resolution_a: float | None = None,
                     step_a: float | None = None, significance: float = 0.95,
                     noise_only_in_halves: bool = True, gaussian_threshold: bool = False,
                     smooth: bool = True, exclude_mask: np.ndarray | None = None,
                     bands_per_batch: int | None = None, max_noise_samples: int = 2_000_000,
                     device: str = "cpu") -> LocalResolution:
    """MonoRes local resolution of a map (Angstrom, (Z, Y, X) float32, 0 outside the refined mask).

    Parameters
    ----------
    volume : (Z, Y, X) float32
        The map (with half maps: their average; it is recomputed from them).
    voxel_size_a : float
        Voxel size in Angstrom.
    mask : (Z, Y, X) bool, optional
        Molecule mask; None -> :func:`automatic_mask`.
    half1, half2 : (Z, Y, X) float32, optional
        Half maps; noise is then estimated from (half1 - half2) / 2.
    min_resolution_a, max_resolution_a, step_a : float, optional
        Sweep range and step in Angstrom (None -> :func:`default_range_a`).
    significance : float
        One-sided significance of the per-voxel test (0.95).
    noise_only_in_halves : bool
        With half maps, take noise only from their difference (default); off: mask refinement as for a
        single map.
    gaussian_threshold : bool
        Threshold mean + z * std of the noise instead of its percentile.
    smooth : bool
        Post-smoothing (normalised Gaussian over the mask, never coarser than the raw value).
    exclude_mask : (Z, Y, X) bool, optional
        Voxels left out of signal and noise.
    bands_per_batch : int, optional
        Bands evaluated per batched FFT (None: 1 on CPU, 4 on GPU).
    max_noise_samples : int
        Noise statistics use at most this many voxels (an evenly strided subset; the percentile of two
        million samples is as good as that of all, and it saves a sort of the whole box per step).
    device : str
        "cpu", "cuda" or "auto".
    """
    shape = volume.shape
    if volume.ndim != 3:
        raise LocresError(f"MonoRes needs a 3-D map, got an array of shape {shape}")
    if not 0.5 < significance < 1.0:
        raise LocresError(f"significance must lie in (0.5, 1), got {significance}")
    dev = resolve_device(device)
    halves = half1 is not None and half2 is not None
    d_min, d_max, d_step = default_range_a(voxel_size_a, shape)
    min_res = d_min if min_resolution_a is None else float(min_resolution_a)
    max_res = d_max if max_resolution_a is None else float(max_resolution_a)
    step = d_step if step_a is None else max(float(step_a), 0.25)
    check_resolution_range(min_res, max_res, voxel_size_a, "MonoRes")
    if halves:
        volume = 0.5 * (half1.astype(np.float32) + half2.astype(np.float32))
        noise_vol = 0.5 * (half1.astype(np.float32) - half2.astype(np.float32))
    volume = volume.astype(np.float32)
    auto_mask = mask is None
    mask = automatic_mask(volume, voxel_size_a) if auto_mask else mask.astype(bool)
    if not mask.any():
        raise LocresError("the mask is empty: give a mask that covers the molecule")

    # usable voxels: inside the radius limit and not excluded
    rprot, rlimit = radius_limit(volume, mask)
    valid = centred_radius(shape) <= rlimit
    if exclude_mask is not None:
        valid &= ~exclude_mask.astype(bool)
    signal_mask = mask & valid
    if not halves or not noise_only_in_halves:
        # mask refinement: weak mask voxels (below the 95th percentile of solvent amplitude) are not
        # estimated (the reference moves them to the noise set; we leave them out of both)
        amp = gaussian_smooth(full_band_amplitude(volume, dev), 4.0).cpu().numpy()
        solvent = valid & ~mask
        if solvent.sum() < 100:
            raise LocresError("no solvent left around the mask for the noise estimate: use half maps or a "
                              "box with room around the particle")
        thr = np.sort(amp[solvent])[int(solvent.sum() * 0.95)]
        signal_mask &= amp >= thr
    noise_mask = (valid & ~mask) if not halves else valid
    n_vox = int(signal_mask.sum())
    if n_vox == 0:
        raise LocresError("no mask voxel stands above the solvent: check the mask and the map")

    bands = sweep_bands(voxel_size_a, shape, min_res, max_res, step)
    if not bands:
        raise LocresError("the resolution range holds no frequency of this box: widen it")
    z_crit = float(normal_dist.ppf(significance))
    grid = FourierGrid(shape, dev)
    spectra = to_spectrum(np.stack([volume, noise_vol]) if halves else volume[None], dev)
    t_active = torch.from_numpy(signal_mask.copy()).to(dev)
    # noise sample: every voxel of the noise region, thinned by a fixed stride beyond max_noise_samples
    noise_idx = torch.from_numpy(np.flatnonzero(noise_mask.ravel())).to(dev)
    if noise_idx.numel() > max_noise_samples:
        noise_idx = noise_idx[:: int(np.ceil(noise_idx.numel() / max_noise_samples))]
    fails = torch.zeros(shape, dtype=torch.int8, device=dev)
    res = torch.zeros(shape, dtype=torch.float32, device=dev)
    batch = bands_per_batch or (4 if dev.type == "cuda" else 1)
    visited: list[float] = []
    trace: list[dict] = []
    max_mean_s = 0.0
    stop = False
    it = 0
    while it < len(bands) and not stop:
        chunk = bands[it:it + batch]
        amps = monogenic_amplitude(spectra, grid, chunk)
        for j, band in enumerate(chunk):
            n_s = int(t_active.sum())
            if n_s / n_vox < 0.025:
                stop = True
                break
            r = band.resolution_a
            visited.append(r)
            r2 = visited[0] if len(visited) <= 2 else visited[-3]
            a_s = amps[0, j]
            noise = (amps[1, j] if halves else a_s).reshape(-1)[noise_idx]
            sig = a_s[t_active]
            mean_n, var_n = float(noise.mean()), float(noise.var())
            mean_s, var_s = float(sig.mean()), float(sig.var()) if n_s > 1 else 0.0
            thr = (mean_n + z_crit * var_n**0.5 if gaussian_threshold
                   else percentile_threshold(noise, significance))
            max_mean_s = max(max_mean_s, mean_s)
            if mean_s < 0.001 * max_mean_s:
                visited.pop()
                stop = True
                break
            t_active, res, fails = sweep_step(t_active, a_s > thr, res, fails, r, r2)
            z = (mean_s - mean_n) / max((var_s / max(n_s, 1) + var_n / max(noise.numel(), 1)) ** 0.5, 1e-30)
            trace.append({"resolution_a": round(r, 4), "threshold": thr, "mean_signal": mean_s,
                          "mean_noise": mean_n, "active_fraction": n_s / n_vox, "z": z})
            log.debug("MonoRes %.2f A: thr %.4g, active %.3f, z %.2f", r, thr, n_s / n_vox, z)
            it += 1
            if z < z_crit or r < 2.0 * voxel_size_a + 1e-6:
                stop = True
                break
        del amps

    last_r = visited[-1] if visited else bands[0].resolution_a
    estimated = t_active.new_zeros(shape)
    estimated |= torch.from_numpy(signal_mask).to(dev) & (res > last_r - 0.001)
    raw = res.clone()
    if smooth and bool(estimated.any()):
        smoothed = smooth_within(raw, estimated, 3.0, grid)
        use = estimated & (smoothed <= raw) & (smoothed >= 2.0 * voxel_size_a)
        res = torch.where(use, smoothed, raw)
    res = torch.where(estimated, res, torch.zeros_like(res))
    out = res.cpu().numpy().astype(np.float32)
    est = estimated.cpu().numpy()
    vals = out[est]
    hist_edges = (np.arange(np.floor(vals.min() * 4) / 4, vals.max() + 0.5, 0.25) if vals.size
                  else np.array([0.0, 1.0]))
    hist, _ = np.histogram(vals, bins=hist_edges)
    info = {
        "min_resolution_a": min_res, "max_resolution_a": max_res, "step_a": step,
        "significance": significance,
        "mode": "half maps" if halves else "single map", "noise_only_in_halves": bool(noise_only_in_halves),
        "gaussian_threshold": bool(gaussian_threshold), "smooth": bool(smooth), "automatic_mask": auto_mask,
        "protein_radius_px": rprot, "radius_limit_px": rlimit, "mask_voxels": int(mask.sum()),
        "estimated_voxels": int(est.sum()), "last_resolution_a": last_r,
        "median_a": float(np.median(vals)) if vals.size else None,
        "histogram": {"edges_a": hist_edges.tolist(), "counts": hist.tolist()},
        "sweep": trace,
    }
    log.info("MonoRes: %d voxels, median %.2f A, sweep stopped at %.2f A", est.sum(),
             info["median_a"] or 0.0, last_r)
    return LocalResolution(resolution_a=out, info=info, mask=est)


def run(inputs: MethodInputs, **params) -> LocalResolution:
    """Adapter for ``infer.py``: half maps when given (noise from their difference), else the map."""
    params = {k: v for k, v in params.items() if k != "name"}
    with threads_for_volume(inputs.shape_zyx, inputs.device):
        if inputs.has_halves:
            return estimate_monores(inputs.average_map(), inputs.voxel_size_a, mask=inputs.mask,
                                    half1=inputs.half1, half2=inputs.half2, device=inputs.device, **params)
        return estimate_monores(inputs.average_map(), inputs.voxel_size_a, mask=inputs.mask,
                                device=inputs.device, **params)
