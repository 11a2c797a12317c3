"""MonoRes: local resolution from the monogenic amplitude (Vilas et al., Structure 2018).

For a sweep of frequencies from coarse to fine, the map is high-passed at the frequency, its monogenic
amplitude (energy at every voxel of what lies above that frequency) is compared voxel by voxel with the
amplitude of noise in the same band, and a voxel's resolution is the finest frequency at which it still
stands out of the noise at the chosen significance. Noise comes from outside the mask (one map) or from
the half-map difference (two half maps).

The stages follow Xmipp's ``resolution_monogenic_signal`` (the reference wins over
``specs/monogenic.md`` where they disagree): :func:`monores_masks` (radius limit, refinement, signal and
noise sets), :func:`noise_sample_index`, :func:`monores_sweep`, :func:`postprocess_resolution`.

- One map: the weak mask voxels that the refinement moves out of the signal join the noise pool.
- Half maps, by default as the reference program without ``--noiseonlyinhalves``: the mask refinement
  runs as for one map and the noise is the half difference over mask and solvent. With
  ``noise_only_in_halves`` (the reference's flag, and the default of Scipion's form): no refinement, noise
  over the mask's voxels only (the reference marks everything outside the mask -1, out of both sets).
  locres follows the program's default: on the quick bench at equal coverage it reads 2.99 A against
  3.20 A with the flag (one map: 3.05 A), because without refinement weak mask voxels stay in the signal
  and stop the sweep early. Half maps that are masked or solvent-flattened (a half difference flat outside
  the mask), or a box with no solvent, fall back to the flag's behaviour and say so in the JSON
  (``why_noise_only_in_halves``): zero noise in the solvent would set the threshold far too low.
- Post-processing: voxels not estimated are set to the median before the Gaussian smoothing, then
  min(smoothed, raw), as the reference.
- Numerics as the reference: the Nyquist index of z and y is +0.5 in the Riesz components
  (:func:`locres.methods.monogenic.reference_fftfreq`) and the z test's critical value is its
  approximation of the normal quantile (:func:`locres.methods.monogenic.reference_normal_quantile`);
  with them the half-map result equals the original's to a median 0.0001 A (0.015 A before).

Departures from the reference, each deliberate:

- Voxels that fail the first two sweep steps never passed any test; the reference gives them the sweep's
  start value (two steps back), which on a sharpened map is most of the mask. They are counted
  (``never_passed_voxels``) and left unestimated (0, out of the returned mask) unless
  ``keep_never_passed=True`` restores the reference's behaviour.
- The exclusion-mask quirk (ignored with half maps unless ``noise_only_in_halves``) is not copied: an
  exclusion mask always applies.
- The noise percentile is taken on an evenly strided subset of at most ``max_noise_samples`` voxels.
- No mask given: one is made from the map (see :func:`automatic_mask`) and returned.

Speed: the amplitudes come from :class:`~locres.methods.monogenic.PackedMonogenic` (full complex FFTs
carrying two real outputs each, four per band for the map and the half difference plus a real low pass
of each, two and a real low pass for one map, instead of twelve and six real ones; torch's inverse real
FFT of a whole spectrum costs as much as a complex one of the same grid), and the sweep keeps its
per-voxel state for the signal voxels only. Same maps as the real-FFT path
to float rounding (a voxel at a threshold tie may move one sweep step).
"""


from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from locres.errors import LocresError
from locres.methods import LocalResolution, MethodInputs
from locres.methods.monogenic import (
    Band,
    FourierGrid,
    PackedMonogenic,
    centred_radius,
    check_resolution_range,
    full_band_amplitude,
    gaussian_smooth,
    percentile_threshold,
    radius_limit,
    reference_normal_quantile,
    resolve_device,
    snap_index,
    sweep_step,
    threads_for_volume,
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


@dataclass
class MonoResMasks:
    """Signal and noise sets of the mask stage ((Z, Y, X) bool) and the radii (voxels) that bound them."""

    signal: np.ndarray
    noise: np.ndarray
    rprot_px: float
    rlimit_px: float
    refined_out: int
    noise_only_in_halves: bool = False
    why_noise_only_in_halves: str | None = None


@dataclass
class SweepResult:
    """Raw resolution (Angstrom, 0 where never set), voxels that passed a test, tested resolutions."""

    res: torch.Tensor
    passed: torch.Tensor
    visited: list[float]
    trace: list[dict]


def monores_masks(volume: np.ndarray, voxel_size_a: float, mask: np.ndarray, halves: bool,
                  noise_only_in_halves: bool, exclude_mask: np.ndarray | None,
                  device: torch.device, noise_volume: np.ndarray | None = None) -> MonoResMasks:
    """Mask stage: usable voxels, mask refinement, and the signal and noise sets (reference's pMask).

    Parameters
    ----------
    volume : (Z, Y, X) float32
        The map (half-map average with half maps).
    voxel_size_a : float
        Voxel size in Angstrom.
    mask : (Z, Y, X) bool
        Molecule mask (non-empty).
    halves : bool
        Whether noise comes from a half-map difference.
    noise_only_in_halves : bool
        With half maps: no refinement, noise from the mask's voxels only (the reference sets everything
        outside the mask to -1, out of both sets); off: refinement, noise over mask and solvent.
    exclude_mask : (Z, Y, X) bool or None
        Voxels out of both sets.
    device : torch.device
    noise_volume : (Z, Y, X) float32, optional
        The half difference. With ``noise_only_in_halves`` off, half maps fall back to the mask-only noise
        (and say why in ``why_noise_only_in_halves``) where the solvent cannot serve: fewer than 100
        solvent voxels, or a half difference that is flat over the solvent (solvent-flattened or masked
        half maps, whose zero noise there would set the threshold far too low).

    Returns
    -------
    MonoResMasks
        ``signal``: voxels to estimate; ``noise``: voxels whose (noise) amplitude sets the threshold.
        One map: solvent plus the weak mask voxels that the refinement moved out of the signal
        (reference: they become 0, the noise label). Half maps: the mask (``noise_only_in_halves``) or
        every usable voxel.
    """
    shape = volume.shape
    rprot, rlimit = radius_limit(volume, mask)
    valid = centred_radius(shape) <= rlimit
    if exclude_mask is not None:
        valid &= ~exclude_mask.astype(bool)
    signal = mask & valid
    refined_out = np.zeros(shape, bool)
    why = None
    if halves and not noise_only_in_halves:
        why = solvent_unusable_for_half_map_noise(valid & ~mask, signal, noise_volume)
        noise_only_in_halves = why is not None
    if not halves or not noise_only_in_halves:
        # refinement: mask voxels whose smoothed full-band amplitude is below the 95th percentile of the
        # solvent's leave the signal and join the noise
        amp = gaussian_smooth(full_band_amplitude(volume, device), 4.0).cpu().numpy()
        solvent = valid & ~mask
        if solvent.sum() < 100:
            raise LocresError("no solvent left around the mask for the noise estimate: use half maps or a "
                              "box with room around the particle")
        thr = np.sort(amp[solvent])[int(solvent.sum() * 0.95)]
        refined_out = signal & (amp < thr)
        signal &= ~refined_out
    if not halves:
        noise = (valid & ~mask) | refined_out
    elif noise_only_in_halves:
        noise = signal.copy()
    else:
        noise = valid.copy()
    if not signal.any():
        raise LocresError("no mask voxel stands above the solvent: check the mask and the map")
    return MonoResMasks(signal=signal, noise=noise, rprot_px=rprot, rlimit_px=rlimit,
                        refined_out=int(refined_out.sum()),
                        noise_only_in_halves=bool(halves and noise_only_in_halves),
                        why_noise_only_in_halves=why)


def solvent_unusable_for_half_map_noise(solvent: np.ndarray, signal: np.ndarray,
                                        noise_volume: np.ndarray | None) -> str | None:
    """Why the solvent cannot join the half-map noise pool (None: it can).

    Fewer than 100 solvent voxels leave no refinement threshold; a half difference whose spread over the
    solvent is under 1 % of its spread over the mask means the half maps were masked or solvent-flattened.
    """
    if solvent.sum() < 100:
        return "fewer than 100 solvent voxels around the mask"
    if noise_volume is not None and signal.any():
        if float(noise_volume[solvent].std()) < 0.01 * float(noise_volume[signal].std()):
            return "the half maps' difference is flat outside the mask (masked or solvent-flattened halves)"
    return None


def noise_sample_index(noise_mask: np.ndarray, max_noise_samples: int, device: torch.device) -> torch.Tensor:
    """Noise stage: flat indices of the noise voxels, thinned by a fixed stride beyond ``max_noise_samples``.

    The percentile of two million evenly strided samples is as good as that of all and saves a sort of
    the whole box per step.
    """
    idx = torch.from_numpy(np.flatnonzero(noise_mask.ravel())).to(device)
    if idx.numel() == 0:
        raise LocresError("no noise voxels to set a threshold from: give a mask that leaves room around "
                          "the particle, or half maps")
    if idx.numel() > max_noise_samples:
        idx = idx[:: int(np.ceil(idx.numel() / max_noise_samples))]
    return idx


def monores_sweep(amplitudes, shape: tuple[int, int, int], bands: list[Band], signal: np.ndarray,
                  noise_idx: torch.Tensor, significance: float, gaussian_threshold: bool,
                  voxel_size_a: float, device: torch.device) -> SweepResult:
    """Sweep stage: bands from coarse to fine, per-voxel test against the noise threshold.

    ``amplitudes(band) -> (map amplitude, noise amplitude or None)`` gives the low-passed monogenic
    amplitudes, (Z, Y, X) tensors (the second: of the half difference; None with one map, whose own
    amplitude at ``noise_idx`` is then the noise). Stops when fewer than 2.5 % of the signal voxels are
    active, when the signal's mean amplitude falls below 0.1 % of its maximum, when the signal is no
    longer significantly above the noise, or at Nyquist.

    The per-voxel state is kept for the signal voxels only (gathered in flat-index order, so every
    statistic sees the same values in the same order as on the whole box) and scattered back at the end.
    """
    dev = device
    z_crit = reference_normal_quantile(significance)
    sig_idx = torch.from_numpy(np.flatnonzero(signal.ravel())).to(dev)
    n_vox = int(sig_idx.numel())
    active = torch.ones(n_vox, dtype=torch.bool, device=dev)
    passed = torch.zeros(n_vox, dtype=torch.bool, device=dev)
    fails = torch.zeros(n_vox, dtype=torch.int8, device=dev)
    res = torch.zeros(n_vox, dtype=torch.float32, device=dev)
    visited: list[float] = []
    trace: list[dict] = []
    max_mean_s = 0.0
    for band in bands:
        n_s = int(active.sum())
        if n_s / n_vox < 0.025:
            break
        amp_s, amp_n = amplitudes(band)
        r = band.resolution_a
        visited.append(r)
        r2 = visited[0] if len(visited) <= 2 else visited[-3]
        a_s = amp_s.reshape(-1)[sig_idx]
        noise = (amp_s if amp_n is None else amp_n).reshape(-1)[noise_idx]
        del amp_s, amp_n
        sig = a_s[active]
        mean_n, var_n = float(noise.mean()), float(noise.var())
        mean_s, var_s = float(sig.mean()), float(sig.var()) if n_s > 1 else 0.0
        thr = (mean_n + z_crit * var_n**0.5 if gaussian_threshold
               else percentile_threshold(noise, significance))
        max_mean_s = max(max_mean_s, mean_s)
        if mean_s < 0.001 * max_mean_s:
            visited.pop()
            break
        above = a_s > thr
        passed |= active & above
        active, res, fails = sweep_step(active, above, res, fails, r, r2)
        z = (mean_s - mean_n) / max((var_s / max(n_s, 1) + var_n / max(noise.numel(), 1)) ** 0.5, 1e-30)
        trace.append({"resolution_a": round(r, 4), "threshold": thr, "mean_signal": mean_s,
                      "mean_noise": mean_n, "active_fraction": n_s / n_vox, "z": z})
        log.debug("MonoRes %.2f A: thr %.4g, active %.3f, z %.2f", r, thr, n_s / n_vox, z)
        if z < z_crit or r < 2.0 * voxel_size_a + 1e-6:
            break
    res_full = torch.zeros(shape, dtype=torch.float32, device=dev)
    res_full.view(-1)[sig_idx] = res
    passed_full = torch.zeros(shape, dtype=torch.bool, device=dev)
    passed_full.view(-1)[sig_idx] = passed
    return SweepResult(res=res_full, passed=passed_full, visited=visited, trace=trace)


def postprocess_resolution(raw: torch.Tensor, estimated: torch.Tensor, voxel_size_a: float,
                           grid: FourierGrid, smooth: bool = True, sigma_ref: float = 3.0) -> torch.Tensor:
    """Post-processing stage, as the reference: median fill, Gaussian smoothing, min(smoothed, raw).

    Every voxel not ``estimated`` (outside the mask, below the last tested resolution) is set to the
    median of the estimated values (sorted(values)[int(N / 2)]) before a Gaussian smoothing
    (``sigma_ref`` in the reference's convention, periodic); an estimated voxel then takes the smoothed
    value where that is finer than its raw value but not beyond Nyquist. Not-estimated voxels hold 0.

    Parameters
    ----------
    raw : (Z, Y, X) float32 tensor
        Raw resolution in Angstrom.
    estimated : (Z, Y, X) bool tensor
    voxel_size_a : float
    grid : FourierGrid
        Frequencies of the box (for the smoothing).
    smooth : bool
        False: the raw values (0 outside ``estimated``).
    """
    out = raw
    if smooth and bool(estimated.any()):
        vals = raw[estimated]
        fill = torch.sort(vals).values[int(0.5 * vals.numel())]
        smoothed = gaussian_smooth(torch.where(estimated, raw, fill), sigma_ref, grid)
        use = estimated & (smoothed <= raw) & (smoothed >= 2.0 * voxel_size_a)
        out = torch.where(use, smoothed, raw)
    return torch.where(estimated, out, torch.zeros_like(out))


def estimate_monores(volume: np.ndarray, voxel_size_a: float, mask: np.ndarray | None = None,
                     half1: np.ndarray | None = None, half2: np.ndarray | None = None,
                     min_resolution_a: float | None = None, max_resolution_a: float | None = None,
                     step_a: float | None = None, significance: float = 0.95,
                     noise_only_in_halves: bool = False, gaussian_threshold: bool = False,
                     smooth: bool = True, keep_never_passed: bool = False,
                     exclude_mask: np.ndarray | None = None, bands_per_batch: int | None = None,
                     max_noise_samples: int = 2_000_000, device: str = "cpu") -> LocalResolution:
    """MonoRes local resolution of a map (Angstrom, (Z, Y, X) float32, 0 where not estimated).

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
        With half maps, noise from their difference over the mask only, no refinement (the reference's
        ``--noiseonlyinhalves``); off (default, the reference program's default): mask refinement and noise
        over mask and solvent, falling back to the mask only where the solvent cannot serve (see
        :func:`monores_masks`).
    gaussian_threshold : bool
        Threshold mean + z * std of the noise instead of its percentile.
    smooth : bool
        Post-smoothing (median fill, Gaussian, never coarser than the raw value).
    keep_never_passed : bool
        True: voxels that never passed a test hold the sweep's start value, as the reference; False
        (default): they are left unestimated (and counted in ``info["never_passed_voxels"]``).
    exclude_mask : (Z, Y, X) bool, optional
        Voxels left out of signal and noise.
    bands_per_batch : int, optional
        Accepted for old configurations and ignored: the packed transforms take one band at a time.
    max_noise_samples : int
        Noise statistics use at most this many voxels (an evenly strided subset).
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
    sets = monores_masks(volume, voxel_size_a, mask, halves, noise_only_in_halves, exclude_mask, dev,
                         noise_volume=noise_vol if halves else None)
    if sets.why_noise_only_in_halves:
        log.info("MonoRes: noise from the mask only: %s", sets.why_noise_only_in_halves)
    noise_idx = noise_sample_index(sets.noise, max_noise_samples, dev)
    bands = sweep_bands(voxel_size_a, shape, min_res, max_res, step)
    if not bands:
        raise LocresError("the resolution range holds no frequency of this box: widen it")
    engine = PackedMonogenic(volume, noise_vol if halves else None, dev)
    sw = monores_sweep(engine.amplitudes, shape, bands, sets.signal, noise_idx, significance,
                       gaussian_threshold, voxel_size_a, dev)
    del engine
    grid = FourierGrid(shape, dev)
    last_r = sw.visited[-1] if sw.visited else bands[0].resolution_a
    t_signal = torch.from_numpy(sets.signal).to(dev)
    estimated = t_signal & (sw.res > last_r - 0.001)
    never = estimated & ~sw.passed
    if not keep_never_passed:
        estimated &= sw.passed
    res = postprocess_resolution(sw.res, estimated, voxel_size_a, grid, smooth)
    out = res.cpu().numpy().astype(np.float32)
    est = estimated.cpu().numpy()
    info = _summary(out, est, dict(
        min_resolution_a=min_res, max_resolution_a=max_res, step_a=step, significance=significance,
        mode="half maps" if halves else "single map", noise_only_in_halves=sets.noise_only_in_halves,
        why_noise_only_in_halves=sets.why_noise_only_in_halves,
        gaussian_threshold=bool(gaussian_threshold), smooth=bool(smooth), automatic_mask=auto_mask,
        keep_never_passed=bool(keep_never_passed), protein_radius_px=sets.rprot_px,
        radius_limit_px=sets.rlimit_px, mask_voxels=int(mask.sum()), signal_voxels=int(sets.signal.sum()),
        noise_voxels=int(sets.noise.sum()), refined_out_voxels=sets.refined_out,
        never_passed_voxels=int(never.sum()), last_resolution_a=last_r, sweep=sw.trace))
    log.info("MonoRes: %d voxels (%d never passed, %s), median %.2f A, sweep stopped at %.2f A", est.sum(),
             info["never_passed_voxels"], "kept" if keep_never_passed else "left out",
             info["median_a"] or 0.0, last_r)
    return LocalResolution(resolution_a=out, info=info, mask=est)


def _summary(out: np.ndarray, est: np.ndarray, info: dict) -> dict:
    """``info`` plus the estimated-voxel count, median and a 0.25 A histogram of ``out[est]``."""
    vals = out[est]
    edges = (np.arange(np.floor(vals.min() * 4) / 4, vals.max() + 0.5, 0.25) if vals.size
             else np.array([0.0, 1.0]))
    hist, _ = np.histogram(vals, bins=edges)
    sweep = info.pop("sweep")
    info.update(estimated_voxels=int(est.sum()), median_a=float(np.median(vals)) if vals.size else None,
                histogram={"edges_a": edges.tolist(), "counts": hist.tolist()}, sweep=sweep)
    return info


def run(inputs: MethodInputs, **params) -> LocalResolution:
    """Adapter for ``infer.py``: half maps when given (noise from their difference), else the map."""
    params = {k: v for k, v in params.items() if k != "name"}
    with threads_for_volume(inputs.shape_zyx, inputs.device):
        if inputs.has_halves:
            return estimate_monores(inputs.average_map(), inputs.voxel_size_a, mask=inputs.mask,
                                    half1=inputs.half1, half2=inputs.half2, device=inputs.device, **params)
        return estimate_monores(inputs.average_map(), inputs.voxel_size_a, mask=inputs.mask,
                                device=inputs.device, **params)
