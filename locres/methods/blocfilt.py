"""blocfilt: low-pass each region of a map to its own local resolution (Bsoft; ``specs/blocres.md``).

Transfer function (the reference's): ``T(s) = Hi(s)``, ``Hi = 1 / (1 + exp(a (s - 1/r)))`` with
``a = 1.618034 / 0.002 = 809`` Angstrom, set to 0 once ``s - 1/r > 0.02`` / Angstrom; half power at 1/r.
The reference also takes ``min(Hi, Lo)`` with ``Lo = 1 / (1 + exp(a (1e-37 - s)))``, whose only
visible effect is to halve the DC term (so each output is the low-passed value minus half the box mean);
``halve_dc=True`` reproduces that QUIRK, the default leaves DC alone.

Reference (:func:`blocfilt_reference`): per voxel, a B^3 box (no taper, no padding) is Fourier-filtered
periodically with T at that voxel's resolution, and the box's central voxel (B//2, B//2, B//2) is kept;
a resolution of 0 means no filtering.

Fast version (:func:`blocfilt`): a ladder of whole-map low passes evenly spaced in frequency 1/r
(spacing ``ladder_step_per_a``, at most ``max_levels``) between the coarsest and finest resolution in the
map; each voxel blends the two ladder maps whose frequencies bracket its 1/r, linearly in 1/r. Where 1/r
falls on a ladder frequency (always true for the ends) the output *is* the whole-map low pass there, so
no power is left beyond 1/r + 0.02. It differs from the reference in filtering the whole map rather than
a periodic box (no box-edge wrap-around) and in the blend between ladder frequencies. Voxels whose
resolution is <= 0 (not estimated) or that lie outside ``mask`` are set to 0.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from locres.core.fourier import frequency_grid_per_a
from locres.errors import LocresError
from locres.methods.blocres.common import _cpu_threads_for

log = logging.getLogger(__name__)

SLOPE_A = 1.618034 / 0.002
CUT_WIDTH_PER_A = 0.02


def bsoft_lowpass_transfer(freq_per_a, resolution_a: float, halve_dc: bool = False):
    """T(s) of blocfilt at ``resolution_a`` (see the module notes); ``freq_per_a`` array or tensor."""
    lib = torch if isinstance(freq_per_a, torch.Tensor) else np
    inv = 1.0 / float(resolution_a)
    x = lib.clip(SLOPE_A * (freq_per_a - inv), -80.0, 80.0)
    hi = 1.0 / (1.0 + lib.exp(x))
    hi = lib.where(freq_per_a - inv > CUT_WIDTH_PER_A, 0.0 * hi, hi)
    if halve_dc:
        lo = 1.0 / (1.0 + lib.exp(lib.clip(SLOPE_A * (1e-37 - freq_per_a), -80.0, 80.0)))
        hi = lib.minimum(hi, lo)
    return hi


def _check(volume: np.ndarray, resolution_a: np.ndarray, voxel_size_a: float) -> None:
    if volume.ndim != 3 or volume.shape != resolution_a.shape:
        raise LocresError(f"map {volume.shape} and resolution map {resolution_a.shape} "
                          "must be 3-D arrays on one grid")
    if not (np.isfinite(voxel_size_a) and voxel_size_a > 0):
        raise LocresError(f"voxel size must be a positive number of Angstrom, got {voxel_size_a}")


def blocfilt_reference(volume: np.ndarray, resolution_a: np.ndarray, voxel_size_a: float, box: int,
                       points_zyx: np.ndarray, halve_dc: bool = True) -> np.ndarray:
    """The reference's per-voxel box filter at the given voxels.

    Parameters
    ----------
    volume : (z, y, x) map.
    resolution_a : (z, y, x) local resolution in Angstrom (0: no filtering).
    voxel_size_a : voxel size in Angstrom.
    box : box edge B in voxels (boxes start at v - B//2; zeros outside the map).
    points_zyx : (n, 3) int voxel coordinates.
    halve_dc : reproduce the reference's halved DC term.

    Returns
    -------
    (n,) filtered values at the points.
    """
    vol = np.asarray(volume, dtype=np.float32)
    res = np.asarray(resolution_a, dtype=np.float32)
    _check(vol, res, voxel_size_a)
    big = np.pad(vol, box)
    freq = frequency_grid_per_a((box,) * 3, voxel_size_a, rfft=True)
    out = np.zeros(len(points_zyx), dtype=np.float32)
    c = box // 2
    for n, (z, y, x) in enumerate(np.asarray(points_zyx, dtype=np.int64)):
        z0, y0, x0 = z + box - c, y + box - c, x + box - c
        b = big[z0:z0 + box, y0:y0 + box, x0:x0 + box]
        r = float(res[z, y, x])
        if r <= 0:
            out[n] = b[c, c, c]
            continue
        t = bsoft_lowpass_transfer(freq, r, halve_dc)
        out[n] = np.fft.irfftn(np.fft.rfftn(b) * t, s=b.shape)[c, c, c]
    return out


def blocfilt(volume: np.ndarray, resolution_a: np.ndarray, voxel_size_a: float,
             mask: np.ndarray | None = None, halve_dc: bool = False, ladder_step_per_a: float = 0.005,
             max_levels: int = 200,
             device: str = "cpu") -> np.ndarray:
    """Low-pass every voxel of ``volume`` to its own local resolution (ladder of whole-map low passes).

    Parameters
    ----------
    volume : (z, y, x) map.
    resolution_a : (z, y, x) local resolution in Angstrom; voxels <= 0 are not filtered (set to 0).
    voxel_size_a : voxel size in Angstrom.
    mask : optional bool (z, y, x); voxels outside are set to 0.
    halve_dc : reproduce the reference's halved DC term (QUIRK).
    ladder_step_per_a : spacing of the ladder in 1/Angstrom (finer: closer to a per-voxel filter).
    max_levels : upper bound on the number of ladder maps.
    device : torch device for the FFTs.

    Returns
    -------
    (z, y, x) float32 locally filtered map.
    """
    vol = np.asarray(volume, dtype=np.float32)
    res = np.asarray(resolution_a, dtype=np.float32)
    _check(vol, res, voxel_size_a)
    if not ladder_step_per_a > 0:
        raise LocresError(f"ladder_step_per_a must be positive, got {ladder_step_per_a}")
    use = res > 0
    if mask is not None:
        use &= np.asarray(mask).astype(bool)
    if not use.any():
        raise LocresError("the resolution map has no positive value inside the mask: nothing to filter")
    inv = np.zeros_like(res)
    inv[use] = 1.0 / res[use]
    f_lo, f_hi = float(inv[use].min()), float(inv[use].max())
    levels = min(max_levels, math.ceil((f_hi - f_lo) / ladder_step_per_a))
    step = (f_hi - f_lo) / levels if levels > 0 else 0.0
    dev = torch.device(device)
    spec = torch.fft.rfftn(torch.from_numpy(vol).to(dev))
    freq = torch.from_numpy(frequency_grid_per_a(vol.shape, voxel_size_a)).to(dev)
    inv_t = torch.from_numpy(inv).to(dev)
    with _cpu_threads_for(vol.size, str(device)):
        out = torch.zeros(vol.shape, dtype=torch.float32, device=dev)
        for j in range(levels + 1):
            f_j = f_lo + j * step
            if step > 0:
                w = (1.0 - (inv_t - f_j).abs() / step).clamp_min(0.0)
            else:
                w = torch.ones_like(inv_t)
            if not bool((w > 0).any()):
                continue
            layer = torch.fft.irfftn(spec * bsoft_lowpass_transfer(freq, 1.0 / f_j, halve_dc), s=vol.shape)
            out += w * layer
    out = out.cpu().numpy()
    out[~use] = 0.0
    log.info("blocfilt: %d ladder levels from %.2f to %.2f A", levels + 1, 1.0 / f_lo, 1.0 / f_hi)
    return out.astype(np.float32)
