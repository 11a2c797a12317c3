"""blocres: local (box) and radial-shell FSC between two half maps (Cardone, Heymann & Steven 2013).

Box mode, as specified in ``specs/blocres.md``
----------------------------------------------
Around each computed voxel ``v`` a cubic box of ``B`` voxels starting at ``v - B//2`` is cut from both
half maps (zeros outside the map), tapered towards ``A`` (the global mean of half 1; half 2 is rescaled
to half 1's mean and spread) with a Hann window, padded with ``A`` to ``P = B (pad + 1)``, and its FSC is
binned in shells of ``1 / (P u)`` with linear interpolation between neighbouring shells over the half
space ``kx < P//2``. FSC_0 := 1; values are clamped to [-1, 1]. The read-out takes the *last* shell
``i`` with FSC_i >= c > FSC_{i+1}, interpolates linearly in frequency, and clamps ``1 / s*`` to
``[hi, 200]`` Angstrom with ``hi = max(max_resolution_a, 2 / sqrt(sum 1/u_i^2))``.
:func:`local_fsc_reference` does exactly this, box by box (batched FFTs); it serves as the reference.

Fast path (:func:`local_fsc_fast`): every voxel at once
------------------------------------------------------
For each shell ``i`` both (mean-removed) half maps are band-passed on the whole-map Fourier grid with a
radial weight ``g_i`` (real-space band images ``b1_i``, ``b2_i``), then the local sums
``num = W * (b1 b2)``, ``d1 = W * b1^2``, ``d2 = W * b2^2`` are formed by FFT correlation with the
squared window ``W = w^2`` (the box's own placement, ``v - B//2`` .. ``v - B//2 + B - 1``), and
``FSC_i = num / sqrt(d1 d2)``. By Parseval this is the FSC of the windowed band-passed maps.

How it differs from the exact box FSC: the box method windows first and bins shells of the padded
box spectrum, so each of its shells sees the input spectrum blurred by the window's transform
``|H|^2`` (a few shells wide). The fast path band-passes first, so with a plain shell weight it would
be sharper in frequency. With ``matched_shells=True`` (default) ``g_i^2`` is set to the reference's
effective weight, ``W_i(k') = sum_k T_i(k) |H(k - k')|^2`` (``T_i`` the shell binning), computed once
from the window's transform and averaged over five directions; then both estimate the same expected
shell sums for any locally stationary signal and differ only by (i) the anisotropy of ``W_i`` ignored by
the radial average, (ii) sampling fluctuations of the finite box (the two are different estimators of
the same quantity), (iii) periodic wrap-around at the map edges (the reference sees zeros outside the
map; irrelevant with the default edge of ``B//2``), (iv) the global band-pass vs the box-limited FFT.
The agreement on test maps is measured in ``tests/methods/test_blocres.py``.

Half-bit threshold (not in the reference, selectable with ``cutoff="half_bit"``): van Heel & Schatz with
the number of independent coefficients of each shell, counted on the padded grid and divided by
``(P/B)^3`` for the oversampling of padding.

Shell mode (:func:`shell_fsc_profile`): concentric radial shells around an origin, FSC of the whole
(masked to the shell) maps; see the spec. Output is a 1-D profile (table and figure helpers below) and a
map that holds each voxel's shell value.

Mask handling in :func:`run`: with ``inputs.mask`` the estimate is returned inside the mask and inside
the edge. Without a mask, ``auto_mask=True`` builds one from the half-map average (Gaussian low pass to
``max(8 A, 4 u)``, threshold at the mean + 3 sigma of the region outside the inscribed sphere, taken to be
solvent, then dilated by ``B//4`` voxels); if that finds nothing, or with ``auto_mask=False``, every
voxel away from the edges is estimated. The mask used is returned in ``LocalResolution.mask``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time

import numpy as np
import scipy.fft
import torch
from scipy import ndimage

from locres.core.fourier import frequency_grid_per_a, lowpass_gaussian
from locres.errors import LocresError
from locres.methods import LocalResolution, MethodInputs
from locres.methods.fsc import global_resolution_a, half_bit_threshold

log = logging.getLogger(__name__)

NAME = "blocres"
INPUTS = "halves"
TAPERS = ("hann", "edge", "none")
MAX_RESOLUTION_CLAMP_A = 200.0
_DIRECTIONS = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 1], [1, 2, 3], [3, 1, 2]], dtype=np.float64)


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
    """Bool mask from the half-map average (see the module notes); None if nothing stands out."""
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


# --------------------------------------------------------------------------- shell mode
def shell_fsc_profile(half1: np.ndarray, half2: np.ndarray, voxel_size_a: float, width_vox: int,
                      step_vox: int = 1, cutoff=0.5, radii=None, origin=None, smooth: bool = False,
                      max_resolution_a: float = 0.0, device: str = "cpu") -> dict:
    """FSC resolution in concentric radial shells (Bsoft ``-shell``), e.g. across a capsid.

    For r = rmin, rmin + step, ... <= rmax (default 0 .. x/2) only the voxels at distance
    [max(0, r - W/2), r + W/2] from ``origin`` keep their values (others: the mean A); with ``smooth``
    the shell selection is box-averaged over 3x3x3 voxels (a soft edge). The FSC of the whole maps
    (no padding; shells of 1/(max(shape) u)) is read out as in box mode. Thin shells read too fine.

    Returns
    -------
    dict (JSON-serialisable): ``radius_vox``, ``radius_a``, ``resolution_a`` (None where >= 200 A or
    not measured), ``cutoff``, ``width_vox``, ``origin_zyx``.
    """
    cut = parse_cutoffs(cutoff)[0]
    h1, h2, a = _prepare_halves(half1, half2)
    shape = h1.shape
    u = float(voxel_size_a)
    nz, ny, nx = shape
    origin = (nz // 2, ny // 2, nx // 2) if origin is None else tuple(float(o) for o in origin)
    rmin, rmax = (0.0, nx / 2.0) if radii is None else (float(radii[0]), min(float(radii[1]), nx / 2.0))
    if not (0 <= rmin <= rmax) or width_vox < 1 or step_vox < 1:
        raise LocresError(f"bad shell settings: radii {rmin}..{rmax}, width {width_vox}, step {step_vox}")
    n_ref = max(shape)
    hi = max(float(max_resolution_a), 2.0 / math.sqrt(3.0 / u**2))
    maxrad = n_shells(n_ref, u, hi)
    freq = np.arange(maxrad) / (n_ref * u)
    i0, f = shell_binning(shape, maxrad, n_ref)
    z, y, x = np.ogrid[:nz, :ny, :nx]
    dist = np.sqrt((z - origin[0]) ** 2 + (y - origin[1]) ** 2 + (x - origin[2]) ** 2)
    dev = torch.device(device)
    d1 = torch.from_numpy(h1 - a).to(dev)
    d2 = torch.from_numpy(h2 - a).to(dev)
    counts = None
    radius, values = [], []
    with _cpu_threads_for(h1.size, str(device)):
        for r in np.arange(rmin, rmax + 1e-6, step_vox):
            sel = ((dist >= max(0.0, r - width_vox / 2.0)) & (dist <= r + width_vox / 2.0)).astype(np.float32)
            if smooth:
                sel = ndimage.uniform_filter(sel, 3, mode="constant")
            s = torch.from_numpy(sel).to(dev)
            q = []
            for d in (d1, d2):
                q.append(torch.fft.rfftn(d * s)[..., : nx // 2].reshape(1, -1))
            num = _bin((q[0] * q[1].conj()).real, i0, f, maxrad)[0].cpu().numpy()
            p1 = _bin(q[0].abs() ** 2, i0, f, maxrad)[0].cpu().numpy()
            p2 = _bin(q[1].abs() ** 2, i0, f, maxrad)[0].cpu().numpy()
            prod = p1 * p2
            fsc = np.clip(np.where(prod > 1e-30, num / np.sqrt(np.maximum(prod, 1e-30)), 0.0), -1.0, 1.0)
            fsc[0] = 1.0
            if cut == "half_bit":
                if counts is None:
                    counts = 2.0 * _bin(torch.ones(1, i0.numel()), i0, f, maxrad)[0].numpy()
                thr = half_bit_threshold(counts * float(sel.mean()))
            else:
                thr = np.full(maxrad, float(cut))
            res = 1.0 / max(float(cut_last_crossing(freq, fsc[None], thr)[0]), 1e-12)
            radius.append(float(r))
            values.append(None if res >= MAX_RESOLUTION_CLAMP_A or not sel.any() else round(res, 4))
    return {"radius_vox": radius, "radius_a": [round(r * u, 4) for r in radius], "resolution_a": values,
            "cutoff": cut, "width_vox": int(width_vox), "origin_zyx": [float(o) for o in origin]}


def shell_map(profile: dict, shape_zyx, voxel_size_a: float) -> np.ndarray:
    """(z, y, x) map of a shell profile: each voxel gets the value at its radius (linear in r), else 0."""
    nz, ny, nx = shape_zyx
    o = profile["origin_zyx"]
    z, y, x = np.ogrid[:nz, :ny, :nx]
    dist = np.sqrt((z - o[0]) ** 2 + (y - o[1]) ** 2 + (x - o[2]) ** 2)
    r = np.asarray(profile["radius_vox"], dtype=np.float64)
    v = np.array([np.nan if val is None else val for val in profile["resolution_a"]], dtype=np.float64)
    if r.size == 1:
        out = np.where(np.abs(dist - r[0]) <= profile["width_vox"] / 2.0, v[0], np.nan)
    else:
        out = np.interp(dist, r, v, left=np.nan, right=np.nan)
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


def format_shell_table(profile: dict) -> str:
    """The shell profile as a text table (radius in voxels and Angstrom, resolution in Angstrom)."""
    lines = [f"{'radius_vox':>10} {'radius_a':>10} {'resolution_a':>12}"]
    for rv, ra, res in zip(profile["radius_vox"], profile["radius_a"], profile["resolution_a"]):
        lines.append(f"{rv:10.1f} {ra:10.2f} {'-' if res is None else f'{res:.2f}':>12}")
    return "\n".join(lines)


def shell_profile_figure(profile: dict):
    """Matplotlib figure of resolution against radius (the caller saves it)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    res = [np.nan if v is None else v for v in profile["resolution_a"]]
    ax.plot(profile["radius_a"], res, "o-", ms=3)
    ax.set_xlabel("radius (A)")
    ax.set_ylabel(f"resolution (A) at FSC {profile['cutoff']}")
    ax.set_title(f"blocres shells, width {profile['width_vox']} voxels")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- run
def run(inputs: MethodInputs, box: int | None = None, cutoff=0.5, step: int = 1, mode: str = "box",
        pad: int = 1, taper: str = "hann", edge: int | None = None, max_resolution_a: float = 0.0,
        shell_width: int | None = None, radii=None, origin=None, smooth: bool = False,
        auto_mask: bool = True, matched_shells: bool = True, engine: str = "fast") -> LocalResolution:
    """blocres on two half maps (``method=blocres``); parameters as in ``configs/method/blocres.yaml``.

    ``resolution_a`` holds the first cutoff's estimate; further cutoffs go in ``extra_maps`` as
    ``cutoff_<c>``. ``engine="reference"`` runs the box-by-box reference (slow; for checks).
    """
    if not inputs.has_halves:
        raise LocresError("blocres needs two half maps: set input.half1 and input.half2")
    if mode not in ("box", "shell"):
        raise LocresError(f"unknown blocres mode '{mode}': choose box or shell")
    if engine not in ("fast", "reference"):
        raise LocresError(f"unknown blocres engine '{engine}': choose fast or reference")
    cut = parse_cutoffs(cutoff)
    step = int(step)
    if step < 1:
        raise LocresError(f"step must be a positive number of voxels, got {step}")
    u = float(inputs.voxel_size_a)
    shape = inputs.shape_zyx
    t0 = time.perf_counter()
    info: dict = {"mode": mode, "cutoffs": cut, "step": step, "taper": taper, "engine": engine}
    mask = None if inputs.mask is None else np.asarray(inputs.mask).astype(bool)
    if mask is not None and mask.shape != tuple(shape):
        raise LocresError(f"mask shape {mask.shape} does not match the half maps {tuple(shape)}: resample it")
    if box is None:
        box, global_res = default_box(inputs.half1, inputs.half2, u, mask)
        info["global_resolution_a"] = global_res
        info["box_rule"] = "round(6 x global 0.143 resolution / voxel size)"
    box = _check_box(box, shape)
    info["box"] = box
    mask_source = "input"
    if mask is None:
        mask = make_auto_mask(inputs.average_map(), u, box // 4) if auto_mask else None
        mask_source = "auto" if mask is not None else "none (everywhere away from the edges)"
        if mask is None:
            mask = np.ones(shape, dtype=bool)
    info["mask_source"] = mask_source
    if mode == "shell":
        width = int(shell_width) if shell_width is not None else box
        prof = shell_fsc_profile(inputs.half1, inputs.half2, u, width, step, cut[0], radii=radii,
                                 origin=origin, smooth=smooth, max_resolution_a=max_resolution_a)
        res = shell_map(prof, shape, u) * mask
        info.update({"shell_width": width, "shell_profile": prof})
        info["seconds"] = round(time.perf_counter() - t0, 3)
        return LocalResolution(res.astype(np.float32), info=info, mask=mask)
    edge = box // 2 if edge is None else int(edge)
    info.update({"pad": pad, "edge": edge, "max_resolution_a": max_resolution_a,
                 "matched_shells": matched_shells})
    valid = computed_nodes(shape, step, edge)
    node_mask = mask[::step, ::step, ::step]
    if step > 1:  # every node next to a masked voxel, for the interpolation
        node_mask = ndimage.binary_dilation(mask, iterations=step)[::step, ::step, ::step]
    valid &= node_mask
    if engine == "fast":
        nodes = local_fsc_fast(inputs.half1, inputs.half2, u, box, cut, pad, taper, max_resolution_a, step,
                               matched_shells, inputs.device,
                               nodes=valid if valid.mean() < 0.7 else None)  # gathering costs too
    else:
        pts = np.argwhere(valid) * step
        nodes = np.zeros((len(cut), *valid.shape), dtype=np.float32)
        if len(pts):
            nodes[(slice(None), *np.nonzero(valid))] = local_fsc_reference(
                inputs.half1, inputs.half2, u, box, pts, cut, pad, taper, max_resolution_a)
    in_edge = interpolate_nodes(np.ones(valid.shape), computed_nodes(shape, step, edge), shape, step) > 0
    region = mask & in_edge
    maps = [interpolate_nodes(nodes[j], valid, shape, step) * region for j in range(len(cut))]
    region &= maps[0] > 0
    info["voxels_estimated"] = int(region.sum())
    info["seconds"] = round(time.perf_counter() - t0, 3)
    extra = {f"cutoff_{c}": m.astype(np.float32) for c, m in zip(cut[1:], maps[1:])}
    return LocalResolution(maps[0].astype(np.float32), extra_maps=extra, info=info, mask=region)
