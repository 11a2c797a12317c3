"""blocres box mode at every voxel at once: band-passed maps and FFT-correlated local sums.

How it relates to the box-by-box reference (matched shell weights, what still differs) is in the
package docstring of :mod:`locres.methods.blocres`.
"""

from __future__ import annotations

import functools
import logging
import math
import time

import numpy as np
import scipy.fft
import torch

from locres.core.fourier import frequency_grid_per_a
from locres.errors import LocresError
from locres.methods.blocres.common import (
    MAX_RESOLUTION_CLAMP_A,
    _check_box,
    _cpu_threads_for,
    _prepare_halves,
    cutoff_curves,
    n_shells,
    parse_cutoffs,
    resolution_limit_a,
    window_1d,
    window_3d,
)

log = logging.getLogger(__name__)
_DIRECTIONS = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 1], [1, 2, 3], [3, 1, 2]], dtype=np.float64)

# --------------------------------------------------------------------------- fast path: all voxels
def _rfftn(x: torch.Tensor) -> torch.Tensor:
    """rFFT of a 3-D tensor; on the CPU through scipy.fft (about half the CPU time of torch's c2r)."""
    if x.device.type == "cpu":
        return torch.from_numpy(scipy.fft.rfftn(x.numpy(), workers=torch.get_num_threads()))
    return torch.fft.rfftn(x)


def _irfftn(x: torch.Tensor, shape) -> torch.Tensor:
    if x.device.type == "cpu":
        return torch.from_numpy(scipy.fft.irfftn(x.numpy(), s=shape, workers=torch.get_num_threads()))
    return torch.fft.irfftn(x, s=shape)


@functools.lru_cache(maxsize=8)
def matched_shell_profiles(box: int, pad: int, taper: str, maxrad: int, drho: float = 0.5):
    """Effective radial weight of each reference shell on the input spectrum.

    ``W_i(rho') = sum_k T_i(k) |H(k - k')|^2``: a plane wave of frequency k' (units of 1/P cycles per
    voxel), windowed and padded like a reference box, spreads over the padded grid points k near k' as
    the window's transform ``|H|^2``, which the shell binning ``T_i`` (linear interpolation on |k|, with
    the grid's periodic wrap) collects. k runs over the (4 (pad+1))^3 neighbourhood of k' on both sides
    (the Hann transform is ~1e-5 of its peak beyond), over the full rather than the half space (the same
    up to the kx = 0 plane). k' = rho' d for five unit directions d; the profile at rho' averages the
    directions along which k' stays within the map's Nyquist cube.

    Returns
    -------
    rho : (R,) sample radii (spacing ``drho``).
    profiles : (maxrad, R) weights, each shell scaled to a peak of 1; None for a non-separable taper.
    """
    if taper == "edge":
        return None
    padded = box * (pad + 1) if pad > 0 else box
    w = window_1d(box, taper)
    j = np.arange(box)
    reach = 4 * (pad + 1)
    off = np.arange(-reach, reach + 1)
    rho = np.arange(0.0, maxrad + reach, drho)
    dirs = _DIRECTIONS / np.linalg.norm(_DIRECTIONS, axis=1, keepdims=True)
    prof = np.zeros((maxrad, rho.size))
    count = np.zeros(rho.size)
    for d in dirs:
        ok = rho * np.abs(d).max() <= padded / 2.0
        kp = rho[ok][:, None] * d[None, :]  # (n, 3)
        k = np.rint(kp)[:, :, None] + off[None, None, :]  # (n, 3, m) grid points near k'
        q = k - kp[:, :, None]
        ph = -2.0 * np.pi * q[..., None] * j / padded
        hpow = (w * np.cos(ph)).sum(-1) ** 2 + (w * np.sin(ph)).sum(-1) ** 2  # (n, 3, m)
        ks = np.mod(k, padded)
        ks = np.where(ks > (padded - 1) // 2, ks - padded, ks)
        weight = hpow[:, 0, :, None, None] * hpow[:, 1, None, :, None] * hpow[:, 2, None, None, :]
        r = np.sqrt(ks[:, 0, :, None, None] ** 2 + ks[:, 1, None, :, None] ** 2
                    + ks[:, 2, None, None, :] ** 2)
        i0 = np.floor(r).astype(np.int64)
        f = r - i0
        i0 = np.where(i0 + 1 < maxrad, i0, maxrad)
        f = np.where(i0 < maxrad, f, 0.0)
        row = np.arange(len(kp))[:, None, None, None] * (maxrad + 2)
        acc = np.bincount((row + i0).ravel(), (weight * (1.0 - f)).ravel(), len(kp) * (maxrad + 2))
        acc += np.bincount((row + i0 + 1).ravel(), (weight * f).ravel(), len(kp) * (maxrad + 2))
        prof[:, ok] += acc.reshape(len(kp), maxrad + 2)[:, :maxrad].T
        count += ok
    prof = prof / np.maximum(count, 1)[None, :]
    prof /= np.maximum(prof.max(axis=1, keepdims=True), 1e-30)
    return rho, prof


def _shell_weight_table(box: int, pad: int, taper: str, maxrad: int, matched: bool):
    """(rho samples, sqrt of the weight per shell): g_i with g_i^2 the effective shell weight."""
    prof = matched_shell_profiles(box, pad, taper, maxrad) if matched else None
    if prof is None:  # plain linear-interpolation shells
        rho = np.arange(0.0, maxrad + 1.0, 0.05)
        tri = np.maximum(0.0, 1.0 - np.abs(rho[None, :] - np.arange(maxrad)[:, None]))
        tri[-1, rho > maxrad - 1] = 0.0  # the last shell only collects from below
        return rho, np.sqrt(tri)
    rho, p = prof
    return rho, np.sqrt(p)


def _local_fsc_fast(half1: np.ndarray, half2: np.ndarray, voxel_size_a: float, box: int, cutoffs=(0.5,),
                    pad: int = 1, taper: str = "hann", max_resolution_a: float = 0.0, step: int = 1,
                    matched_shells: bool = True, device: str = "cpu", nodes: np.ndarray | None = None):
    """Implementation of :func:`local_fsc_fast`."""
    cut = parse_cutoffs(cutoffs)
    h1, h2, a = _prepare_halves(half1, half2)
    box = _check_box(box, h1.shape)
    shape = h1.shape
    padded = box * (pad + 1) if pad > 0 else box
    hi = resolution_limit_a(voxel_size_a, box, max_resolution_a)
    maxrad = n_shells(padded, voxel_size_a, hi)
    delta = 1.0 / (padded * voxel_size_a)
    thr = cutoff_curves(cut, padded, box, maxrad)
    dev = torch.device(device)
    t0 = time.perf_counter()
    rho_tab, g_tab = _shell_weight_table(box, pad, taper, maxrad, matched_shells)
    n_tab = len(rho_tab)
    g_tab = np.concatenate([g_tab, np.zeros((maxrad, 2))], axis=1)  # two zero entries for "outside"
    g_tab = torch.from_numpy(g_tab.astype(np.float32)).to(dev)
    drho = float(rho_tab[1] - rho_tab[0])
    pos = torch.from_numpy(frequency_grid_per_a(shape, voxel_size_a) / (delta * drho)).to(dev)
    idx = pos.floor().long().clamp(max=n_tab - 2)
    frac = (pos - idx).clamp(0.0, 1.0)
    idx[pos >= n_tab - 1] = n_tab  # -> zero weight
    idx1 = idx + 1
    one_minus = 1.0 - frac
    del pos
    # squared window as a correlation kernel: offsets t = j - B//2, j = 0..B-1
    kern = np.zeros(shape, dtype=np.float32)
    wnd2 = window_3d(box, taper) ** 2
    offs = [(np.arange(box) - box // 2) % n for n in shape]
    kern[np.ix_(*offs)] = wnd2
    khat = _rfftn(torch.from_numpy(kern).to(dev)).conj()
    del kern
    f1 = _rfftn(torch.from_numpy(h1 - a).to(dev))
    f2 = _rfftn(torch.from_numpy(h2 - a).to(dev))
    sl = (slice(None, None, step),) * 3

    node_shape = tuple(math.ceil(n / step) for n in shape)
    if nodes is None:
        sel = None
        n_sel = int(np.prod(node_shape))
    else:
        if tuple(nodes.shape) != node_shape:
            raise LocresError(f"node mask {nodes.shape} does not match the step grid {node_shape}")
        sel = torch.from_numpy(np.flatnonzero(nodes)).to(dev)
        n_sel = int(sel.numel())

    def local_sum(x):  # windowed sums at the selected nodes, flat (n_sel,)
        spec = _rfftn(x)
        spec *= khat
        out = _irfftn(spec, shape)[sl].reshape(-1)
        return out if sel is None else out[sel]

    thr_t = torch.from_numpy(thr.astype(np.float32)).to(dev)
    g_prev = (1.0 - thr_t[:, 0]).view(-1, 1).expand(len(cut), n_sel).contiguous()
    s_star = torch.full((len(cut), n_sel), float("nan"), device=dev)
    fsc = None
    for i in range(1, maxrad):
        gi = g_tab[i][idx] * one_minus + g_tab[i][idx1] * frac
        b1 = _irfftn(f1 * gi, shape)
        b2 = _irfftn(f2 * gi, shape)
        del gi
        num = local_sum(b1 * b2)
        d1 = local_sum(b1 * b1)
        d2 = local_sum(b2 * b2)
        del b1, b2
        # sqrt separately: no float32 underflow of d1 * d2; |num| <= den, so an empty shell reads 0
        den = d1.clamp_min_(0.0).sqrt_().mul_(d2.clamp_min_(0.0).sqrt_()).clamp_min_(1e-30)
        fsc = num.div_(den).clamp_(-1.0, 1.0)
        del d1, d2, den
        g = fsc[None] - thr_t[:, i].view(-1, 1)
        cross = (g_prev >= 0) & (g < 0)
        if bool(cross.any()):
            gp, gn = g_prev[cross], g[cross]
            s_star[cross] = (i - 1) * delta + delta * gp / (gp - gn)  # gp >= 0 > gn: no zero division
        g_prev = g
    s_last = (maxrad - 1) * delta
    never = torch.isnan(s_star)
    quirk = (s_star < delta) & (g_prev > 0)
    s_star = torch.where(never | quirk, torch.full_like(s_star, s_last), s_star)
    res = torch.clamp(1.0 / s_star.clamp_min(1e-12), hi, MAX_RESOLUTION_CLAMP_A).cpu().numpy()
    log.info("fast local FSC: %d shells on %s in %.1f s", maxrad - 1, shape, time.perf_counter() - t0)
    out = np.zeros((len(cut), int(np.prod(node_shape))), dtype=np.float32)
    if sel is None:
        out[:] = res
    else:
        out[:, sel.cpu().numpy()] = res
    return out.reshape(len(cut), *node_shape)


def local_fsc_fast(half1: np.ndarray, half2: np.ndarray, voxel_size_a: float, box: int, cutoffs=(0.5,),
                   pad: int = 1, taper: str = "hann", max_resolution_a: float = 0.0, step: int = 1,
                   matched_shells: bool = True, device: str = "cpu", nodes: np.ndarray | None = None):
    """Local FSC resolution at every node of the ``step`` grid, all at once (see the module notes).

    Parameters
    ----------
    half1, half2 : (z, y, x) half maps.
    voxel_size_a : voxel size in Angstrom.
    box, cutoffs, pad, taper, max_resolution_a : as :func:`local_fsc_reference`.
    step : nodes are the voxels whose coordinates are multiples of ``step``.
    matched_shells : weight shells to match the box FSC's window blur (see the module notes).
    device : torch device for the FFTs ("cpu" or "cuda").
    nodes : optional bool (nz', ny', nx'): evaluate the FSC and read-out only there (the FFTs are the
        same; the per-voxel work shrinks to the masked nodes). Other nodes return 0.

    Returns
    -------
    (n_cutoffs, nz', ny', nx') float32 resolution in Angstrom at the nodes, ``n' = ceil(n / step)``.
    Edge nodes (whose box leaves the map) are computed periodically; :func:`run` discards them.
    """
    with _cpu_threads_for(int(np.prod(np.shape(half1))), str(device)):
        return _local_fsc_fast(half1, half2, voxel_size_a, box, cutoffs, pad, taper, max_resolution_a, step,
                               matched_shells, device, nodes)
