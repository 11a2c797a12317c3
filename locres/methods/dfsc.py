"""Directional (conical) FSC: the global 3D FSC of Tan et al. (Nat Methods 2017) beside MonoDir.

The half maps' spectra are compared in double cones (half angle 20 degrees by default) around a
near-uniform set of directions over the hemisphere (a cone and its opposite are one: the maps are real).
In each cone the FSC is taken shell by shell; the resolution per direction is where that curve first
falls below the threshold (0.143 by default, interpolated between shells). From these come

- a histogram of directional resolutions and their mean FSC curve (beside the ordinary, global FSC);
- the **3D FSC volume**: at every Fourier voxel, the FSC of the cone whose axis is nearest to it, at
  that voxel's shell (centred: the zero frequency at index N//2 on every axis; 0 beyond Nyquist), on
  the half maps' grid;
- the **sphericity** of the surface traced by the directional threshold frequencies:
  pi^(1/3) (6 V)^(2/3) / A, with V and A of the star-shaped polyhedron whose vertices are the
  directions (and their opposites) scaled by their threshold frequency. 1 for an isotropic map, less
  as it grows anisotropic. Tan et al. measure the same ratio on the 3D FSC volume thresholded at 0.5;
  the polyhedron needs no surface mesher and reads the chosen threshold.

Shells are spherical in physical frequency (1/A; see :mod:`locres.methods.fsc`), so non-cubic boxes are
binned correctly; every rFFT coefficient counts as the full-FFT coefficients it stands for. A mask is
applied with a soft (Gaussian, 2 voxel) edge; no mask-inflation correction is made (the cones have too
few coefficients for phase randomisation to be stable).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import ConvexHull

from locres.core.fourier import resolution_at_threshold, rfft_weights, shell_index, shell_width_per_a
from locres.errors import LocresError
from locres.methods import LocalResolution, MethodInputs
from locres.methods.fsc import fsc_raw
from locres.methods.monodir import hemisphere_directions
from locres.methods.monogenic import resolve_device, threads_for_volume

NAME = "dfsc"
INPUTS = "halves"
MIN_EDGE_PX = 32
log = logging.getLogger(__name__)


@dataclass
class DirectionalFSC:
    """Directional FSC curves.

    Attributes
    ----------
    directions : (D, 3) float32
        Cone axes, unit vectors (z, y, x), z >= 0.
    freq_per_a : (S,) float64
        Shell centres, 1/Angstrom (0 .. Nyquist).
    fsc : (D, S) float64
        FSC in each cone and shell (0 where a shell holds no coefficient of the cone).
    n_coeffs : (D, S) float64
        Full-FFT coefficients in each cone and shell.
    nearest : (Z, Y, X//2+1) int16
        Index of the cone axis nearest to each rFFT coefficient (-1 at DC and beyond Nyquist).
    shells : (Z, Y, X//2+1) int64
        Shell of each rFFT coefficient (S beyond Nyquist).
    """

    directions: np.ndarray
    freq_per_a: np.ndarray
    fsc: np.ndarray
    n_coeffs: np.ndarray
    nearest: np.ndarray
    shells: np.ndarray


def check_halves(half1: np.ndarray, half2: np.ndarray, mask: np.ndarray | None) -> None:
    """One-line errors for half maps of different grids, a box too small for the cones, an empty mask."""
    if half1.ndim != 3 or half1.shape != half2.shape:
        raise LocresError(f"dfsc: half maps must be 3-D and on one grid, got shapes {half1.shape} and "
                          f"{half2.shape}; resample one onto the other first")
    if min(half1.shape) < MIN_EDGE_PX:
        raise LocresError(f"dfsc: a {'x'.join(map(str, half1.shape))} box is too small for the cones (each "
                          f"axis needs at least {MIN_EDGE_PX} voxels, {MIN_EDGE_PX // 2} Fourier shells); "
                          f"pad the half maps to {MIN_EDGE_PX} or more per axis")
    if mask is not None:
        if mask.shape != half1.shape:
            raise LocresError(f"dfsc: the mask's shape {mask.shape} differs from the half maps' "
                              f"{half1.shape}; resample it onto their grid")
        if not np.asarray(mask, bool).any():
            raise LocresError("dfsc: the mask leaves nothing of the half maps; give a mask that covers the "
                              "molecule, or none")


def soft_mask(mask: np.ndarray, edge_px: float = 2.0) -> np.ndarray:
    """A bool mask with a Gaussian edge of std ``edge_px`` voxels, 1 inside, float32 (Z, Y, X)."""
    m = np.asarray(mask, bool)
    soft = ndimage.gaussian_filter(m.astype(np.float32), edge_px)
    return np.maximum(soft / max(float(soft.max()), 1e-12), m).astype(np.float32)


def _unit_frequencies(shape: tuple[int, int, int], voxel_size_a: float) -> np.ndarray:
    """(3, Z, Y, X//2+1) float32: the physical frequency direction of every rFFT coefficient (0 at DC)."""
    fz = np.fft.fftfreq(shape[0], d=voxel_size_a)[:, None, None]
    fy = np.fft.fftfreq(shape[1], d=voxel_size_a)[None, :, None]
    fx = np.fft.rfftfreq(shape[2], d=voxel_size_a)[None, None, :]
    norm = np.sqrt(fz**2 + fy**2 + fx**2)
    inv = np.where(norm > 0, 1.0 / np.maximum(norm, 1e-30), 0.0)
    return np.stack([np.broadcast_to(c * inv, norm.shape) for c in (fz, fy, fx)]).astype(np.float32)


def directional_fsc(half1: np.ndarray, half2: np.ndarray, voxel_size_a: float,
                    n_directions: int = 250, cone_half_angle_deg: float = 20.0,
                    device: str = "cpu") -> DirectionalFSC:
    """FSC in double cones around ``n_directions`` hemisphere directions (masking is the caller's).

    Parameters
    ----------
    half1, half2 : (Z, Y, X) float32
        Half maps on one grid.
    voxel_size_a : float
        Voxel size in Angstrom.
    n_directions : int
        Cone axes (a Fibonacci lattice on the hemisphere).
    cone_half_angle_deg : float
        Half angle of each double cone, degrees.
    device : str
        "cpu", "cuda" or "auto".
    """
    dev = resolve_device(device)
    shape = tuple(half1.shape)
    f1 = torch.fft.rfftn(torch.tensor(half1, dtype=torch.float32, device=dev))
    f2 = torch.fft.rfftn(torch.tensor(half2, dtype=torch.float32, device=dev))
    shells, n_shells = shell_index(shape, voxel_size_a)
    w = torch.as_tensor(np.broadcast_to(rfft_weights(shape), shells.shape).copy(), dtype=torch.float32,
                        device=dev)
    keep = torch.as_tensor((shells >= 1) & (shells < n_shells), device=dev).reshape(-1)
    kidx = torch.nonzero(keep).squeeze(1)
    vals = torch.stack([(f1 * f2.conj()).real * w, f1.abs() ** 2 * w, f2.abs() ** 2 * w, w]
                       ).reshape(4, -1)[:, kidx].T.contiguous().double()  # (M, 4)
    del f1, f2
    sh = torch.as_tensor(shells, device=dev).reshape(-1)[kidx]
    unit = torch.as_tensor(_unit_frequencies(shape, voxel_size_a), device=dev).reshape(3, -1)[:, kidx]
    dirs = hemisphere_directions(int(n_directions))
    cos_cone = float(np.cos(np.deg2rad(cone_half_angle_deg)))
    sums, arg = cone_shell_sums(unit, sh, vals, dirs, cos_cone, n_shells)
    s = sums.cpu().numpy()
    den = np.sqrt(s[..., 1] * s[..., 2])
    fsc = np.divide(s[..., 0], den, out=np.zeros_like(den), where=den > 0)
    fsc[:, 0] = 1.0
    nearest = np.full(shells.size, -1, np.int16)
    nearest[kidx.cpu().numpy()] = arg.cpu().numpy()
    freq = np.arange(n_shells) * shell_width_per_a(shape, voxel_size_a)
    return DirectionalFSC(directions=dirs, freq_per_a=freq, fsc=fsc, n_coeffs=s[..., 3],
                          nearest=nearest.reshape(shells.shape), shells=shells)


def cone_shell_sums(unit: torch.Tensor, shells: torch.Tensor, vals: torch.Tensor, dirs: np.ndarray,
                    cos_cone: float, n_shells: int, chunk: int = 1 << 16
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per cone and shell sums of ``vals`` over the coefficients in each double cone, and the nearest axis.

    Parameters
    ----------
    unit : (3, M) float32
        Unit frequency direction (z, y, x) of each coefficient.
    shells : (M,) int64
        Shell of each coefficient (0 .. n_shells - 1).
    vals : (M, 4) float64
        What is summed (cross power, two powers, count weight).
    dirs : (D, 3)
        Cone axes.
    cos_cone : float
        Cosine of the cone half angle; a coefficient is in a cone when |cos(angle to the axis)| >= it.

    Returns
    -------
    sums : (D, n_shells, 4) float64
    nearest : (M,) int16, the axis with the largest |cos| (the first of equals).

    The coefficients are taken in shell order, a block at a time: the cosines of a block against every
    axis are one (block x 3) x (3 x D) product, and each shell's sums one (D x block) x (block x 4)
    product of the cone memberships with ``vals``, instead of a pass over all coefficients per axis.
    """
    dev = unit.device
    d = torch.as_tensor(np.asarray(dirs, np.float32), device=dev)  # (D, 3)
    order = torch.argsort(shells, stable=True)
    sh_sorted = shells[order]
    bounds = torch.searchsorted(sh_sorted, torch.arange(n_shells + 1, device=dev)).tolist()
    sums = torch.zeros((len(dirs), n_shells, 4), dtype=torch.float64, device=dev)
    nearest = torch.zeros(shells.numel(), dtype=torch.int16, device=dev)
    for s in range(n_shells):
        for a in range(bounds[s], bounds[s + 1], chunk):
            b = min(a + chunk, bounds[s + 1])
            idx = order[a:b]
            c = (unit[:, idx].T @ d.T).abs_()  # (block, D)
            nearest[idx] = torch.argmax(c, dim=1).to(torch.int16)
            inside = (c >= cos_cone).to(torch.float64)
            sums[:, s] += inside.T @ vals[idx]
    return sums, nearest


def fsc_volume(d: DirectionalFSC, shape_zyx: tuple[int, int, int]) -> np.ndarray:
    """The 3D FSC volume on the full grid, centred (zero frequency at index N//2), float32 (Z, Y, X)."""
    n_shells = d.fsc.shape[1]
    half = np.zeros(d.nearest.shape, np.float32)
    ok = d.nearest >= 0
    half[ok] = d.fsc[d.nearest[ok], d.shells[ok]]
    half[(d.shells == 0)] = 1.0
    half[d.shells >= n_shells] = 0.0
    nz, ny, nx = shape_zyx
    full = np.zeros(shape_zyx, np.float32)
    full[..., : nx // 2 + 1] = half
    # negative x frequencies: the value at -u (the cone is a double cone, the shell |u|)
    kx = np.arange(nx // 2 + 1, nx)
    full[..., kx] = half[(-np.arange(nz)) % nz][:, (-np.arange(ny)) % ny][..., (nx - kx)]
    return np.fft.fftshift(full)


def sphericity(directions: np.ndarray, freq_per_a: np.ndarray) -> float:
    """pi^(1/3) (6 V)^(2/3) / A of the polyhedron: ``directions`` and opposites scaled by ``freq_per_a``."""
    unit = np.concatenate([directions, -directions]).astype(np.float64)
    radius = np.concatenate([freq_per_a, freq_per_a]).astype(np.float64)
    tri = ConvexHull(unit).simplices
    p = unit * radius[:, None]
    a, b, c = p[tri[:, 0]], p[tri[:, 1]], p[tri[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum()
    vol = np.abs(np.einsum("ij,ij->i", a, np.cross(b, c))).sum() / 6.0  # hull facets are not oriented
    return float(np.pi ** (1 / 3) * (6 * vol) ** (2 / 3) / area) if area > 0 else 0.0


def estimate_dfsc(half1: np.ndarray, half2: np.ndarray, voxel_size_a: float, mask: np.ndarray | None = None,
                  threshold: float = 0.143, n_directions: int = 250, cone_half_angle_deg: float = 20.0,
                  histogram_bins: int = 20, min_coeffs: int = 20, device: str = "cpu") -> LocalResolution:
    """Directional FSC of two half maps.

    Parameters
    ----------
    half1, half2 : (Z, Y, X) float32
        Half maps on one grid (each axis at least 32 voxels).
    voxel_size_a : float
        Voxel size in Angstrom.
    mask : (Z, Y, X) bool, optional
        Applied to both with a soft edge.
    threshold : float
        FSC threshold for the directional resolutions.
    n_directions, cone_half_angle_deg : int, float
        Cone axes on the hemisphere and their half angle (degrees).
    histogram_bins : int
        Bins of the histogram of directional resolutions.
    min_coeffs : int
        A cone's shell with fewer Fourier coefficients is not tested against the threshold (the first
        shells hold one or two per cone, whose FSC is noise).

    Returns
    -------
    LocalResolution
        ``resolution_a``: the global resolution (ordinary FSC at ``threshold``) over the mask (the whole
        box without one); ``extra_maps["3dfsc"]``: the 3D FSC volume; ``info``: the curves, resolution per
        direction, sphericity, histogram.
    """
    check_halves(half1, half2, mask)
    h1 = np.asarray(half1, np.float32)
    h2 = np.asarray(half2, np.float32)
    if mask is not None:
        m = soft_mask(mask)
        h1, h2 = h1 * m, h2 * m
    d = directional_fsc(h1, h2, voxel_size_a, n_directions, cone_half_angle_deg, device)
    # shells where a cone holds fewer than min_coeffs coefficients (the innermost) are not tested
    searched = np.where(d.n_coeffs >= min_coeffs, d.fsc, 1.0)
    res_dir = np.array([resolution_at_threshold(d.freq_per_a, c, threshold) for c in searched])
    freq_dir = 1.0 / res_dir
    sph = sphericity(d.directions, freq_dir)
    freq, fsc_global, _ = fsc_raw(h1, h2, voxel_size_a)
    global_a = resolution_at_threshold(freq, fsc_global, threshold)
    counts, edges = np.histogram(res_dir, bins=int(histogram_bins))
    tilt = np.degrees(np.arccos(np.clip(d.directions[:, 0], -1, 1)))
    rot = np.degrees(np.arctan2(d.directions[:, 1], d.directions[:, 2]))
    ok = d.n_coeffs > 0
    mean_fsc = np.where(ok.any(0), (d.fsc * ok).sum(0) / np.maximum(ok.sum(0), 1), 0.0)
    mean_fsc[0] = 1.0
    sd_fsc = np.sqrt(np.maximum((d.fsc**2 * ok).sum(0) / np.maximum(ok.sum(0), 1) - mean_fsc**2, 0.0))
    info = {
        "threshold": threshold, "n_directions": int(n_directions), "cone_half_angle_deg": cone_half_angle_deg,
        "masked": mask is not None, "global_resolution_a": global_a, "sphericity": sph,
        "directional_resolution_a": {"min": float(res_dir.min()), "max": float(res_dir.max()),
                                     "median": float(np.median(res_dir)), "mean": float(res_dir.mean())},
        "freq_per_a": d.freq_per_a.round(6).tolist(), "fsc_global": fsc_global.round(5).tolist(),
        "fsc_mean": mean_fsc.round(5).tolist(), "fsc_sd": sd_fsc.round(5).tolist(),
        "directions_rot_tilt_deg": np.c_[rot, tilt].round(2).tolist(),
        "resolution_per_direction_a": res_dir.round(4).tolist(),
        "histogram": {"edges_a": edges.round(4).tolist(), "counts": counts.tolist()},
    }
    out_mask = np.ones(h1.shape, bool) if mask is None else np.asarray(mask, bool)
    res = np.where(out_mask, global_a, 0.0).astype(np.float32)
    log.info("dfsc: global %.2f A, directional %.2f..%.2f A, sphericity %.3f", global_a, res_dir.min(),
             res_dir.max(), sph)
    return LocalResolution(resolution_a=res, extra_maps={"3dfsc": fsc_volume(d, h1.shape)}, info=info,
                           mask=out_mask)


def run(inputs: MethodInputs, **params) -> LocalResolution:
    """Adapter for ``infer.py``: two half maps, mask optional."""
    params = {k: v for k, v in params.items() if k != "name"}
    if not inputs.has_halves:
        raise LocresError("dfsc needs two half maps: set input.half1 and input.half2")
    with threads_for_volume(inputs.shape_zyx, inputs.device):
        return estimate_dfsc(inputs.half1, inputs.half2, inputs.voxel_size_a, mask=inputs.mask,
                             device=inputs.device, **params)
