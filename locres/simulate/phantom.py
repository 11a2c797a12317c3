"""Phantoms: maps whose local resolution is known at every voxel, with half maps.

Construction
------------
1. A sharp density (from an atomic model, or random pseudo-atoms for :func:`make_synthetic_phantom`).
2. A smooth ground-truth field ``truth_a(x)`` between the ends of ``resolution_range_a``
   (``pattern``: "radial" = finest at the molecule's centre, coarsening linearly with distance to the
   coarsest at its rim; "linear" = a gradient along x across the molecule; "blobs" = three smooth
   Gaussian regions of fine resolution in a coarser surround).
3. A ladder of raised-cosine low passes of the sharp density, evenly spaced in frequency 1/R from
   1/R_coarse to 1/R_fine (spacing at most 0.01 / Angstrom). Each voxel blends the two ladder maps
   whose frequencies bracket ``1 / truth_a(x)``, linearly in 1/R, so the local content at ``x`` stops
   at 1/truth_a(x): ``clean(x) = sum_i w_i(x) L_i(x)`` with hat weights ``w_i`` in 1/R.
4. Noise (see :mod:`locres.simulate.noise`): ``snr = var(clean[mask]) / sigma_map^2``; the half maps
   carry independent noise of variance ``2 sigma_map^2`` and ``map = (half1 + half2) / 2``.

Global FSC of the half maps
---------------------------
With independent noise the expected half-map FSC in a shell is ``S(s) / (S(s) + N(s))``, where ``S``
is the shell power of ``clean`` and ``N`` the (known) shell power of one half map's noise
(``N = n_coeffs(s) * N_voxels * sigma_half^2`` for white noise). Since ``clean`` has no power beyond
1/R_fine, the FSC drops to ~0 there; between 1/R_coarse and 1/R_fine only the part of the molecule
whose truth is finer than 1/s contributes, so the FSC falls through that band. The phantom's global
resolution ``info["global_resolution_a"]`` is defined as the 0.143 crossing of this expected curve;
the measured FSC of ``half1``/``half2`` crosses 0.143 at it within the shell-to-shell sampling noise
(a few percent for 64^3 boxes). For the default ``snr=2`` it lies inside ``resolution_range_a``
(e.g. 5.1 A for the default 64^3 radial synthetic phantom, range 3-8 A). With white noise,
``info["global_resolution_masked_a"]`` is the same prediction for the FSC of the halves masked by
``mask`` (finer, since the noise outside the molecule is gone).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from locres.core.fourier import (
    frequency_grid_per_a,
    raised_cosine_lowpass_transfer,
    resolution_at_threshold,
    rfft_weights,
    shell_index,
    shell_sums,
    shell_width_per_a,
)
from locres.errors import LocresError
from locres.simulate.noise import make_half_maps, mean_power_of_transfer, noise_transfer

log = logging.getLogger(__name__)

PATTERNS = ("radial", "linear", "blobs")
LADDER_STEP_PER_A = 0.01


@dataclass
class Phantom:
    """A map with known local resolution. Arrays are (z, y, x) float32 unless stated.

    Attributes
    ----------
    clean : noise-free, locally filtered density.
    map : clean + noise (the half-map average), for single-map methods.
    half1, half2 : clean + independent noise (variance twice the map's).
    truth_a : true local resolution in Angstrom at every voxel (defined over the whole box).
    mask : bool, where the molecule is.
    voxel_size_a : voxel size in Angstrom.
    info : pattern, range, ladder, noise level and ``global_resolution_a`` (the expected 0.143 crossing).
    """

    clean: np.ndarray
    map: np.ndarray
    half1: np.ndarray
    half2: np.ndarray
    truth_a: np.ndarray
    mask: np.ndarray
    voxel_size_a: float
    info: dict = field(default_factory=dict)


def _check_range(resolution_range_a, voxel_size_a: float) -> tuple[float, float]:
    if not (np.isfinite(voxel_size_a) and voxel_size_a > 0):
        raise LocresError(f"voxel size must be a positive number of Angstrom, got {voxel_size_a}")
    lo, hi = sorted(float(r) for r in resolution_range_a)
    if lo < 2.0 * voxel_size_a:
        raise LocresError(
            f"the finest phantom resolution {lo} A is beyond Nyquist (2 x {voxel_size_a} A); "
            "raise resolution_range_a or use a smaller voxel size"
        )
    if hi <= lo:
        raise LocresError(f"resolution_range_a must span a range, got {resolution_range_a}")
    return lo, hi


def molecule_mask(density: np.ndarray, voxel_size_a: float, resolution_a: float = 8.0,
                  fraction: float = 0.08, dilate_a: float = 2.0) -> np.ndarray:
    """Bool envelope of a density: Gaussian-blurred to ``resolution_a``, thresholded at ``fraction`` of its
    maximum, holes filled, then dilated by ``dilate_a`` Angstrom.

    Like :func:`locres.core.masks.envelope_mask` but blurred in real space with zero padding (sigma
    ``0.25 resolution_a`` and a wider phantom envelope); kept as is because the benchmark's phantoms and
    their recorded figures are defined by it."""
    sigma_vox = 0.25 * resolution_a / voxel_size_a
    smooth = ndimage.gaussian_filter(density.astype(np.float32), sigma_vox, mode="constant")
    peak = float(smooth.max())
    if not peak > 0:
        raise LocresError("the density is empty (no positive values): cannot build a phantom from it")
    mask = ndimage.binary_fill_holes(smooth > fraction * peak)
    n_dil = int(round(dilate_a / voxel_size_a))
    if n_dil > 0:
        mask = ndimage.binary_dilation(mask, ndimage.generate_binary_structure(3, 1), iterations=n_dil)
    return mask


def truth_field(mask: np.ndarray, lo_a: float, hi_a: float, pattern: str,
                rng: np.random.Generator) -> np.ndarray:
    """Smooth local-resolution field (Angstrom) over the box, spanning [lo_a, hi_a] across ``mask``."""
    if pattern not in PATTERNS:
        raise LocresError(f"unknown phantom pattern '{pattern}': choose one of {', '.join(PATTERNS)}")
    if not mask.any():
        raise LocresError("the phantom mask is empty")
    grids = np.indices(mask.shape, dtype=np.float32)  # (3, z, y, x), voxels
    pts = np.argwhere(mask).astype(np.float32)
    if pattern == "radial":
        centre = pts.mean(axis=0)
        r = np.sqrt(sum((grids[a] - centre[a]) ** 2 for a in range(3)))
        t = r / max(float(r[mask].max()), 1e-6)
    elif pattern == "linear":
        x0, x1 = float(pts[:, 2].min()), float(pts[:, 2].max())
        t = (grids[2] - x0) / max(x1 - x0, 1e-6)
    else:
        extent = float(np.mean(pts.max(axis=0) - pts.min(axis=0)))
        sigma = max(0.22 * extent, 1.0)
        centres = pts[rng.choice(len(pts), size=3, replace=False)]
        g = np.zeros(mask.shape, dtype=np.float32)
        for c in centres:
            d2 = sum((grids[a] - c[a]) ** 2 for a in range(3))
            g += np.exp(-d2 / (2 * sigma**2))
        g_lo, g_hi = float(g[mask].min()), float(g[mask].max())
        t = 1.0 - (g - g_lo) / max(g_hi - g_lo, 1e-6)
    t = np.clip(t, 0.0, 1.0)
    return (lo_a + (hi_a - lo_a) * t).astype(np.float32)


def blend_ladder(density: np.ndarray, voxel_size_a: float,
                 truth_a: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Locally low-passed density: each voxel interpolates, in 1/R, between the two raised-cosine
    low passes of ``density`` whose cut-offs bracket ``1 / truth_a`` there.

    Returns
    -------
    clean : (z, y, x) float32.
    ladder_a : resolutions (Angstrom) of the ladder, coarse to fine.
    """
    f_lo = 1.0 / float(truth_a.max())
    f_hi = 1.0 / float(truth_a.min())
    n_levels = max(2, int(np.ceil((f_hi - f_lo) / LADDER_STEP_PER_A)) + 1)
    freqs = np.linspace(f_lo, f_hi, n_levels)
    spec = np.fft.rfftn(density.astype(np.float32))
    s_grid = frequency_grid_per_a(density.shape, voxel_size_a)
    # fractional ladder position of every voxel
    pos = np.clip((1.0 / truth_a - f_lo) / max(f_hi - f_lo, 1e-12) * (n_levels - 1), 0, n_levels - 1)
    clean = np.zeros(density.shape, dtype=np.float32)
    for i, f in enumerate(freqs):
        w = np.clip(1.0 - np.abs(pos - i), 0.0, None)
        if not np.any(w > 0):
            continue
        h = raised_cosine_lowpass_transfer(s_grid, 1.0 / f, voxel_size_a)
        level = np.fft.irfftn(spec * h, s=density.shape).astype(np.float32)
        clean += w * level
    return clean, [float(1.0 / f) for f in freqs]


def expected_fsc(clean: np.ndarray, voxel_size_a: float, sigma_half: float,
                 transfer: np.ndarray | None = None,
                 mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Expected half-map FSC ``S / (S + N)`` per shell for halves = ``clean`` + independent noise.

    With a (hard or soft) ``mask`` and white noise, the masked noise is still white with
    ``sum(mask^2)`` voxels' worth of power, and ``S`` is the shell power of ``clean * mask``.

    Returns ``(freq_per_a, fsc)`` on the shells of :mod:`locres.methods.fsc`.
    """
    if mask is not None and transfer is not None:
        raise LocresError("the masked expected FSC is only defined for white noise")
    idx, n_shells = shell_index(clean.shape, voxel_size_a)
    w = rfft_weights(clean.shape)
    m = 1.0 if mask is None else np.asarray(mask, dtype=np.float64)
    spec = np.fft.rfftn(clean.astype(np.float64) * m)
    signal = shell_sums(np.abs(spec) ** 2, idx, n_shells, w)
    n_vox = float(np.prod(clean.shape)) if mask is None else float(np.sum(m**2))
    if transfer is None:
        per_coeff = np.ones(idx.shape)
    else:
        per_coeff = transfer.astype(np.float64) ** 2 / mean_power_of_transfer(transfer, clean.shape)
    noise = n_vox * sigma_half**2 * shell_sums(per_coeff, idx, n_shells, w)
    total = signal + noise
    fsc = np.divide(signal, total, out=np.zeros_like(total), where=total > 0)
    freq = np.arange(n_shells) * shell_width_per_a(clean.shape, voxel_size_a)
    return freq, fsc


def make_phantom(density: np.ndarray, voxel_size_a: float, resolution_range_a=(3.0, 8.0), pattern="radial",
                 snr=2.0, seed=0, noise_b_factor_a2: float = 0.0, mask: np.ndarray | None = None) -> Phantom:
    """Phantom with known local resolution from a sharp density (e.g. simulated from an atomic model).

    Parameters
    ----------
    density : (z, y, x) sharp density, resolved at least to the finest resolution asked for.
    voxel_size_a : voxel size in Angstrom.
    resolution_range_a : (finest, coarsest) local resolution in Angstrom; finest >= 2 voxel sizes.
    pattern : "radial", "linear" or "blobs" (see the module docstring).
    snr : var(clean inside mask) / var(noise of ``map``).
    seed : seed for the noise and the blob centres.
    noise_b_factor_a2 : 0 gives white noise; B > 0 colours it with the envelope exp(-B s^2 / 4).
    mask : where the molecule is; by default :func:`molecule_mask` of ``density``.

    Returns
    -------
    Phantom (see the module docstring for the FSC relationship and ``info["global_resolution_a"]``).
    """
    density = np.asarray(density, dtype=np.float32)
    if density.ndim != 3:
        raise LocresError(f"the phantom density must be a 3-D array, got shape {density.shape}")
    if not np.all(np.isfinite(density)):
        raise LocresError("the phantom density holds NaN or Inf values")
    lo, hi = _check_range(resolution_range_a, float(voxel_size_a))
    rng = np.random.default_rng(seed)
    if mask is None:
        mask = molecule_mask(density, voxel_size_a, resolution_a=hi)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != density.shape or not mask.any():
        raise LocresError("the phantom mask is empty or does not match the density's shape")
    truth = truth_field(mask, lo, hi, pattern, rng)
    clean, ladder = blend_ladder(density, voxel_size_a, truth)
    transfer = None
    if noise_b_factor_a2:
        transfer = noise_transfer(density.shape, voxel_size_a, b_factor_a2=noise_b_factor_a2)
    full, half1, half2, sigma_half = make_half_maps(clean, snr, rng, mask=mask, transfer=transfer)
    freq, fsc_exp = expected_fsc(clean, voxel_size_a, sigma_half, transfer)
    info = {
        "pattern": pattern,
        "resolution_range_a": [lo, hi],
        "snr": float(snr),
        "seed": int(seed),
        "ladder_a": ladder,
        "noise_sigma_map": sigma_half / np.sqrt(2.0),
        "noise_sigma_half": sigma_half,
        "noise_b_factor_a2": float(noise_b_factor_a2),
        "global_resolution_a": resolution_at_threshold(freq, fsc_exp, 0.143),
        "median_truth_in_mask_a": float(np.median(truth[mask])),
    }
    if transfer is None:
        freq, fsc_m = expected_fsc(clean, voxel_size_a, sigma_half, mask=mask)
        info["global_resolution_masked_a"] = resolution_at_threshold(freq, fsc_m, 0.143)
    log.debug("phantom %s %s: global resolution %.2f A", pattern, density.shape, info["global_resolution_a"])
    return Phantom(clean=clean, map=full, half1=half1, half2=half2, truth_a=truth, mask=mask,
                   voxel_size_a=float(voxel_size_a), info=info)


def synthetic_density(shape_zyx: tuple[int, int, int], voxel_size_a: float, rng: np.random.Generator,
                      atom_fwhm_a: float = 1.5, fill: float = 0.33, atoms_per_a3: float = 1.0 / 11.0,
                      chain_length: int = 150, step_a: float = 1.5) -> np.ndarray:
    """Sharp density of random pseudo-atoms packed as random-walk chains in an ellipsoid.

    Atoms are Gaussians of full width ``atom_fwhm_a`` (at least half a voxel in sigma, against
    aliasing), placed along random walks with ``step_a`` steps that stay inside an ellipsoid whose
    semi-axes are about ``fill`` of the box, at protein-like atom density. Rendered exactly in Fourier
    space (trilinear splatting with its transfer divided out). Returns (z, y, x) float32.
    """
    shape = np.asarray(shape_zyx, dtype=np.int64)
    v = float(voxel_size_a)
    semi = fill * shape * v * rng.uniform(0.85, 1.0, size=3)  # Angstrom, z y x
    centre = (shape // 2) * v
    n_atoms = int(4.0 / 3.0 * np.pi * np.prod(semi) * atoms_per_a3)
    n_chains = max(1, n_atoms // chain_length)

    def inside(p):
        return (((p - centre) / semi) ** 2).sum(axis=-1) < 1.0

    u = rng.normal(size=(n_chains, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    pos = centre + u * semi * rng.uniform(0, 1, size=(n_chains, 1)) ** (1 / 3)
    atoms = [pos]
    direction = rng.normal(size=(n_chains, 3))
    for _ in range(chain_length - 1):
        direction = direction + 0.8 * rng.normal(size=(n_chains, 3))  # some persistence
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        new = pos + step_a * direction
        out = ~inside(new)
        if out.any():  # turn back towards the centre
            towards = centre - pos[out]
            towards /= np.maximum(np.linalg.norm(towards, axis=1, keepdims=True), 1e-6)
            direction[out] = towards
            new[out] = pos[out] + step_a * towards
        pos = new
        atoms.append(pos)
    xyz = np.concatenate(atoms) / v  # voxel coordinates, z y x
    base = np.floor(xyz).astype(np.int64)
    frac = xyz - base
    grid = np.zeros(int(np.prod(shape)), dtype=np.float64)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                idx = (base + (dz, dy, dx)) % shape
                wt = (np.where(dz, frac[:, 0], 1 - frac[:, 0]) * np.where(dy, frac[:, 1], 1 - frac[:, 1])
                      * np.where(dx, frac[:, 2], 1 - frac[:, 2]))
                flat = (idx[:, 0] * shape[1] + idx[:, 1]) * shape[2] + idx[:, 2]
                grid += np.bincount(flat, weights=wt, minlength=grid.size)
    grid = grid.reshape(tuple(shape))
    sigma_a = max(atom_fwhm_a / 2.3548, 0.5 * v)
    fz = np.fft.fftfreq(shape[0])[:, None, None]
    fy = np.fft.fftfreq(shape[1])[None, :, None]
    fx = np.fft.rfftfreq(shape[2])[None, None, :]
    splat = (np.sinc(fz) ** 2) * (np.sinc(fy) ** 2) * (np.sinc(fx) ** 2)
    s2 = (fz**2 + fy**2 + fx**2) / v**2
    transfer = np.exp(-2.0 * np.pi**2 * sigma_a**2 * s2) / np.maximum(splat, 1e-3)
    density = np.fft.irfftn(np.fft.rfftn(grid) * transfer, s=tuple(shape))
    return density.astype(np.float32)


def make_synthetic_phantom(shape_zyx=(64, 64, 64), voxel_size_a=1.0, resolution_range_a=(3.0, 8.0),
                           pattern="radial", snr=2.0, seed=0, noise_b_factor_a2: float = 0.0) -> Phantom:
    """Phantom from :func:`synthetic_density` (no atomic model needed; well under a second for 64^3).

    Same parameters and result as :func:`make_phantom`; ``shape_zyx`` may be non-cubic.
    """
    shape = tuple(int(n) for n in shape_zyx)
    if len(shape) != 3 or min(shape) < 8:
        raise LocresError(f"phantom shape must be three sizes of at least 8 voxels, got {shape_zyx}")
    _check_range(resolution_range_a, float(voxel_size_a))
    rng = np.random.default_rng([int(seed), 7919])
    density = synthetic_density(shape, float(voxel_size_a), rng)
    return make_phantom(density, voxel_size_a, resolution_range_a, pattern, snr, seed, noise_b_factor_a2)
