"""blocres: parameters, windows, shell binning, the FSC read-out, node grids and defaults.

Shared by the box-by-box reference (:mod:`.reference`), the every-voxel fast path (:mod:`.fast`) and
the method's :func:`locres.methods.blocres.run`; the conventions are in ``specs/blocres.md`` and the
package docstring.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from scipy import ndimage

from locres.core.fourier import lowpass_gaussian
from locres.errors import LocresError
from locres.methods.fsc import global_resolution_a, half_bit_threshold

TAPERS = ("hann", "edge", "none")
MAX_RESOLUTION_CLAMP_A = 200.0


# --------------------------------------------------------------------------- parameters and checks
def parse_cutoffs(cutoff) -> list[float | str]:
    """One cutoff or a list: numbers in (0, 1) or ``"half_bit"``. Raises LocresError otherwise."""
    iterable = hasattr(cutoff, "__iter__") and not isinstance(cutoff, (str, bytes))
    items = list(cutoff) if iterable else [cutoff]  # lists, tuples and Hydra ListConfig
    if not items:
        raise LocresError("no FSC cutoff given: set method.cutoff to a number in (0, 1) or half_bit")
    out: list[float | str] = []
    for c in items:
        if isinstance(c, str) and c.replace("-", "_").lower() in ("half_bit", "halfbit"):
            out.append("half_bit")
            continue
        try:
            value = float(c)
        except (TypeError, ValueError):
            raise LocresError(f"FSC cutoff '{c}' is not a number: use a value in (0, 1) or half_bit") \
                from None
        if not 0.0 < value < 1.0:
            raise LocresError(f"FSC cutoff must lie in (0, 1), got {value}: use e.g. 0.5 or 0.143")
        out.append(value)
    return out


def resolution_limit_a(voxel_size_a: float, box: int, max_resolution_a: float = 0.0) -> float:
    """``hi``: the finest resolution reported, max(h, 2/sqrt(3/u^2)) and at most the box length in A."""
    u = float(voxel_size_a)
    return min(max(float(max_resolution_a), 2.0 / math.sqrt(3.0 / u**2)), box * u)


def n_shells(padded: int, voxel_size_a: float, hi_a: float) -> int:
    """``maxrad = floor(2 + P u / hi)``: number of shells, the last one at (maxrad-1)/(P u)."""
    return int(math.floor(2.0 + padded * voxel_size_a / hi_a))


def window_3d(box: int, taper: str) -> np.ndarray:
    """(B, B, B) taper weights w: a tapered box is ``A + w (b - A)``."""
    if taper not in TAPERS:
        raise LocresError(f"unknown taper '{taper}': choose one of {', '.join(TAPERS)}")
    if taper == "edge":
        c = box // 4 + (box // 2 - 1) / 2.0
        i = np.arange(box) - c
        rho = np.sqrt(i[:, None, None] ** 2 + i[None, :, None] ** 2 + i[None, None, :] ** 2)
        radius = (box // 2) // 2
        return (1.0 / (1.0 + np.exp(1.618 * (rho - radius) / (box / 4.0)))).astype(np.float32)
    w = window_1d(box, taper)
    return (w[:, None, None] * w[None, :, None] * w[None, None, :]).astype(np.float32)


def window_1d(box: int, taper: str) -> np.ndarray:
    """(B,) separable taper (``hann`` or ``none``); ``edge`` is not separable."""
    if taper == "none":
        return np.ones(box, dtype=np.float64)
    if taper == "hann":
        return 0.5 * (1.0 - np.cos(2.0 * np.pi * np.arange(box) / (box - 1)))
    raise LocresError(f"taper '{taper}' has no separable 1-D form")


def _signed(n: int) -> np.ndarray:
    k = np.arange(n)
    return np.where(k > (n - 1) // 2, k - n, k)


def shell_binning(shape_zyx: tuple[int, int, int], maxrad: int, n_ref: int | None = None):
    """Linear-interpolation shell binning over the half space ``kx < nx//2`` of an rFFT of ``shape_zyx``.

    Returns flat ``(i0, f)`` over the rFFT array cropped to ``nx//2`` x columns; coefficient ``k`` adds
    ``(1-f)`` of itself to shell ``i0`` and ``f`` to ``i0 + 1``; out-of-range ones point at shell ``maxrad``
    (discarded). ``rho`` is in units of ``1 / n_ref`` cycles per voxel (``n_ref`` = max(shape) by default).
    """
    nz, ny, nx = shape_zyx
    n_ref = n_ref or max(shape_zyx)
    kz = _signed(nz) * (n_ref / nz)
    ky = _signed(ny) * (n_ref / ny)
    kx = np.arange(nx // 2) * (n_ref / nx)
    rho = np.sqrt(kz[:, None, None] ** 2 + ky[None, :, None] ** 2 + kx[None, None, :] ** 2).ravel()
    i0 = np.floor(rho).astype(np.int64)
    f = (rho - i0).astype(np.float32)
    bad = i0 + 1 >= maxrad
    i0[bad] = maxrad
    f[bad] = 0.0
    return torch.from_numpy(i0), torch.from_numpy(f)


def _bin(q: torch.Tensor, i0: torch.Tensor, f: torch.Tensor, maxrad: int) -> torch.Tensor:
    """Shell sums of q (n, ncoeff) -> (n, maxrad)."""
    out = torch.zeros(q.shape[0], maxrad + 2, dtype=torch.float64, device=q.device)
    q = q.to(torch.float64)
    f = f.to(q.device, torch.float64)
    out.index_add_(1, i0.to(q.device), q * (1.0 - f))
    out.index_add_(1, (i0 + 1).to(q.device), q * f)
    return out[:, :maxrad]


def cutoff_curves(cutoffs: list, padded: int, box: int, maxrad: int) -> np.ndarray:
    """(n_cutoffs, maxrad) threshold per shell (constant, or half-bit with padding-corrected counts)."""
    out = np.zeros((len(cutoffs), maxrad))
    counts = None
    for j, c in enumerate(cutoffs):
        if c == "half_bit":
            if counts is None:
                i0, f = shell_binning((padded,) * 3, maxrad)
                counts = 2.0 * _bin(torch.ones(1, i0.numel()), i0, f, maxrad)[0].numpy()
                counts = counts / (padded / box) ** 3
            out[j] = half_bit_threshold(counts)
        else:
            out[j] = float(c)
    return out


def cut_last_crossing(freq_per_a: np.ndarray, fsc: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Frequency s* (1/A) where each FSC curve falls below the threshold for the *last* time.

    Parameters
    ----------
    freq_per_a : (n_shells,) shell frequencies, evenly spaced from 0.
    fsc : (n, n_shells) curves (FSC_0 should be 1).
    threshold : (n_shells,) or scalar threshold.

    Returns
    -------
    (n,) s*: linear interpolation at the highest shell ``i`` with FSC_i >= c > FSC_{i+1}; ``s_last`` when
    the curve never drops, or when the crossing lies below s_1 while the last value is above c (QUIRK).
    """
    fsc = np.atleast_2d(np.asarray(fsc, dtype=np.float64))
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), fsc.shape[1:])
    g = fsc - thr
    cross = (g[:, :-1] >= 0) & (g[:, 1:] < 0)
    any_cross = cross.any(axis=1)
    last = cross.shape[1] - 1 - np.argmax(cross[:, ::-1], axis=1)
    rows = np.arange(fsc.shape[0])
    g0, g1 = g[rows, last], g[rows, last + 1]
    s0, s1 = freq_per_a[last], freq_per_a[last + 1]
    s_star = s0 + (s1 - s0) * g0 / np.where(g0 != g1, g0 - g1, 1.0)
    s_last = freq_per_a[-1]
    quirk = (s_star < freq_per_a[1]) & (g[:, -1] > 0)
    return np.where(any_cross & ~quirk, s_star, s_last)


def _to_resolution(s_star, hi_a: float):
    s = np.maximum(np.asarray(s_star, dtype=np.float64), 1e-12)
    return np.clip(1.0 / s, hi_a, MAX_RESOLUTION_CLAMP_A).astype(np.float32)


def _prepare_halves(half1: np.ndarray, half2: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Half 2 rescaled to half 1's mean and standard deviation; A = half 1's mean."""
    h1 = np.asarray(half1, dtype=np.float32)
    h2 = np.asarray(half2, dtype=np.float32)
    if h1.ndim != 3 or h1.shape != h2.shape:
        raise LocresError(f"half maps must be 3-D and of the same shape, got {h1.shape} and {h2.shape}")
    if not (np.all(np.isfinite(h1)) and np.all(np.isfinite(h2))):
        raise LocresError("half maps contain NaN or infinite values: fix or re-export them")
    a, s1 = float(h1.mean()), float(h1.std())
    s2 = float(h2.std())
    if not (s1 > 0 and s2 > 0):
        raise LocresError("a half map is constant: local FSC needs two maps with structure")
    h2 = ((h2 - float(h2.mean())) * (s1 / s2) + a).astype(np.float32)
    return h1, h2, a


def _check_box(box: int, shape_zyx) -> int:
    box = int(box)
    if box < 4:
        raise LocresError(f"box of {box} voxels is too small: use at least 4 (about 6x the resolution)")
    if box > min(shape_zyx):
        raise LocresError(f"box of {box} voxels is larger than the map {tuple(shape_zyx)}: "
                          "use a smaller method.box")
    return box


@contextlib.contextmanager
def _cpu_threads_for(numel: int, device: str):
    """One torch CPU thread for small maps: thread start-up costs more than it saves there, and on a
    busy machine two spinning threads can be ten times slower than one. Restored on exit."""
    before = torch.get_num_threads()
    small = device == "cpu" and numel < 2_000_000
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small:
            torch.set_num_threads(before)


# --------------------------------------------------------------------------- grids, masks, defaults
def computed_nodes(shape_zyx, step: int, edge: int) -> np.ndarray:
    """Bool (nz', ny', nx') step-grid nodes with ``edge <= coordinate <= n - edge`` on every axis."""
    axes = []
    for n in shape_zyx:
        c = np.arange(0, n, step)
        axes.append((c >= edge) & (c <= n - edge))
    return axes[0][:, None, None] & axes[1][None, :, None] & axes[2][None, None, :]


def interpolate_nodes(values: np.ndarray, valid: np.ndarray, shape_zyx, step: int) -> np.ndarray:
    """Trilinear interpolation from the step-grid nodes to every voxel, over valid nodes only.

    Weights of invalid nodes are dropped and the rest renormalised (the reference instead blends
    fill values into the edges); voxels with no valid neighbour get 0.
    """
    if step == 1:
        return np.where(valid, values, 0.0).astype(np.float32)
    num = np.zeros(shape_zyx, dtype=np.float64)
    den = np.zeros(shape_zyx, dtype=np.float64)
    lo, fr = [], []
    for n in shape_zyx:
        v = np.arange(n)
        lo.append(v // step)
        fr.append((v % step) / step)
    vals = np.where(valid, values, 0.0)
    for corner in range(8):
        bits = [(corner >> b) & 1 for b in range(3)]
        ids, ws = [], []
        for ax in range(3):
            k = lo[ax] + bits[ax]
            ok = k < values.shape[ax]
            ids.append(np.minimum(k, values.shape[ax] - 1))
            ws.append(np.where(ok, fr[ax] if bits[ax] else 1.0 - fr[ax], 0.0))
        w = ws[0][:, None, None] * ws[1][None, :, None] * ws[2][None, None, :]
        sel = np.ix_(*ids)
        w = w * valid[sel]
        num += w * vals[sel]
        den += w
    return np.where(den > 1e-9, num / np.maximum(den, 1e-9), 0.0).astype(np.float32)


def make_auto_mask(average: np.ndarray, voxel_size_a: float, dilate_vox: int) -> np.ndarray | None:
    """Bool mask from the half-map average (see the module notes); None if nothing stands out.

    Its own rule (solvent statistics outside the inscribed sphere) rather than a core mask: blocres
    estimates everywhere when it finds nothing, where the others refuse."""
    smooth = lowpass_gaussian(average, voxel_size_a, max(8.0, 4.0 * voxel_size_a))
    nz, ny, nx = smooth.shape
    z, y, x = np.ogrid[:nz, :ny, :nx]
    r2 = ((z - nz / 2) / (nz / 2)) ** 2 + ((y - ny / 2) / (ny / 2)) ** 2 + ((x - nx / 2) / (nx / 2)) ** 2
    outer = smooth[r2 > 1.0]
    if outer.size < 100:
        return None
    mask = smooth > float(outer.mean()) + 3.0 * float(outer.std())
    if not mask.any():
        return None
    if dilate_vox > 0:
        mask = ndimage.binary_dilation(mask, iterations=int(dilate_vox))
    return mask


def default_box(half1: np.ndarray, half2: np.ndarray, voxel_size_a: float, mask=None) -> tuple[int, float]:
    """Box edge from the 5-7x rule: ``round(6 R / u)`` voxels, R the global 0.143 FSC resolution.

    Kept between 8 voxels and half the smallest map side (and never above the map).
    """
    res = global_resolution_a(half1, half2, voxel_size_a, mask=mask)
    box = int(round(6.0 * res / voxel_size_a))
    box = max(8, min(box, max(8, min(half1.shape) // 2)))
    return min(box, min(half1.shape)), float(res)
