"""blocres box mode, box by box: the reference implementation of ``specs/blocres.md`` (batched FFTs)."""

from __future__ import annotations

import numpy as np
import torch

from locres.methods.blocres.common import (
    _bin,
    _check_box,
    _cpu_threads_for,
    _prepare_halves,
    _to_resolution,
    cut_last_crossing,
    cutoff_curves,
    n_shells,
    parse_cutoffs,
    resolution_limit_a,
    shell_binning,
    window_3d,
)


# --------------------------------------------------------------------------- reference: box by box
def local_fsc_reference(half1: np.ndarray, half2: np.ndarray, voxel_size_a: float, box: int,
                        points_zyx: np.ndarray, cutoffs=(0.5,), pad: int = 1, taper: str = "hann",
                        max_resolution_a: float = 0.0, batch: int = 64, return_curves: bool = False):
    """Bsoft blocres box mode at the given voxels, one box per voxel (batched FFTs, float32).

    Parameters
    ----------
    half1, half2 : (z, y, x) half maps.
    voxel_size_a : voxel size u in Angstrom.
    box : box edge B in voxels.
    points_zyx : (n, 3) int voxel coordinates.
    cutoffs : FSC thresholds (numbers in (0, 1) or "half_bit").
    pad, taper, max_resolution_a : as in the spec.
    return_curves : also return the (n, maxrad) FSC curves and the shell frequencies (1/A).

    Returns
    -------
    (n_cutoffs, n) resolution in Angstrom [, fsc (n, maxrad), freq_per_a (maxrad,)].
    """
    cut = parse_cutoffs(cutoffs)
    h1, h2, a = _prepare_halves(half1, half2)
    box = _check_box(box, h1.shape)
    padded = box * (pad + 1) if pad > 0 else box
    hi = resolution_limit_a(voxel_size_a, box, max_resolution_a)
    maxrad = n_shells(padded, voxel_size_a, hi)
    freq = np.arange(maxrad) / (padded * voxel_size_a)
    thr = cutoff_curves(cut, padded, box, maxrad)
    i0, f = shell_binning((padded,) * 3, maxrad)
    wnd = torch.from_numpy(window_3d(box, taper))
    pts = np.asarray(points_zyx, dtype=np.int64).reshape(-1, 3)
    big1 = torch.from_numpy(np.pad(h1, box))
    big2 = torch.from_numpy(np.pad(h2, box))
    curves = np.zeros((len(pts), maxrad))
    with _cpu_threads_for(0, "cpu"):
        _reference_batches(big1, big2, pts, box, padded, a, wnd, i0, f, maxrad, batch, curves)
    res = np.stack([_to_resolution(cut_last_crossing(freq, curves, thr[j]), hi) for j in range(len(cut))])
    return (res, curves, freq) if return_curves else res


def _reference_batches(big1, big2, pts, box, padded, a, wnd, i0, f, maxrad, batch, curves):
    """FSC curves of the boxes at ``pts`` into ``curves`` (n, maxrad), ``batch`` boxes per FFT."""
    ar = torch.arange(box)
    for start in range(0, len(pts), batch):
        p = torch.from_numpy(pts[start:start + batch]) + box - box // 2
        zi = (p[:, 0, None] + ar)[:, :, None, None]
        yi = (p[:, 1, None] + ar)[:, None, :, None]
        xi = (p[:, 2, None] + ar)[:, None, None, :]
        spectra = []
        for big in (big1, big2):
            b = a + (big[zi, yi, xi] - a) * wnd
            full = torch.full((b.shape[0], padded, padded, padded), a, dtype=torch.float32)
            full[:, :box, :box, :box] = b
            spec = torch.fft.rfftn(full, dim=(1, 2, 3))[..., : padded // 2]
            spectra.append(spec.reshape(b.shape[0], -1))
        f1, f2 = spectra
        num = _bin((f1 * f2.conj()).real, i0, f, maxrad)
        d1 = _bin(f1.abs() ** 2, i0, f, maxrad)
        d2 = _bin(f2.abs() ** 2, i0, f, maxrad)
        prod = d1 * d2
        fsc = torch.where(prod > 1e-30, num / prod.clamp_min(1e-30).sqrt(), torch.zeros_like(num))
        fsc = fsc.clamp(-1.0, 1.0)
        fsc[:, 0] = 1.0
        curves[start:start + len(p)] = fsc.numpy()
