"""MonoDir: local-directional resolution and anisotropy (Vilas et al., Nat Commun 2020).

The map's spectrum is cut into narrow double cones around a near-uniform set of directions over the
upper hemisphere; in each cone a MonoRes-like sweep (monogenic amplitude against noise drawn from the
solvent in the same direction) gives a resolution per voxel and direction. Per voxel, directions that
disagree with their neighbours are dropped, and the rest are summarised: highest/lowest resolution, the
degree of anisotropy (half the 17-83 % inter-percentile range, Angstrom), radial and azimuthal
(tangential) resolution, plus a preferred-direction histogram and radial averages
(``specs/monogenic.md`` section 2).

As the reference (Xmipp's ``resolution_directional``, which wins over ``specs/monogenic.md``): the
monogenic *amplitude* is tapered in real space near the box edge (a soft spherical mask from radius
N/2 - 7 to N/2, :func:`locres.methods.monogenic.edge_taper`) before its low pass (the spec's Fourier taper
over the top 7 frequency indices low-passed the data); the noise is the solvent in a 45 degree real-space
cone between the particle's radius and N/2 - 7; a box without that room is refused (one line saying how
much padding is needed) unless ``allow_no_noise_room``.

Departures from the reference, each deliberate:

- Directions are a Fibonacci lattice on the hemisphere (81, or 47 with ``fast``) instead of the fixed
  table; spacing is the same (about 16 degrees).
- The radial/azimuthal split uses the voxel's true radial vector (the reference swaps x and y there).
- Any box shape works (frequencies per axis; the edge taper's N is the smallest edge). An optional guard
  band (``guard_px``) keeps solvent next to the particle out of the noise; off by default, as the
  reference.
- A direction in which a voxel fails the first two sweep steps (it never passed) is left out of that
  voxel's summaries instead of holding the start value; voxels with no direction left are not estimated
  and counted (``keep_never_passed=True`` restores the reference's behaviour).
- The main map (``resolution_a``) is the per-voxel median over the valid directions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import norm as normal_dist

from locres.errors import LocresError
from locres.methods import LocalResolution, MethodInputs
from locres.methods.monogenic import (
    Band,
    FourierGrid,
    centred_radius,
    check_resolution_range,
    edge_taper,
    monogenic_amplitude,
    percentile_threshold,
    radius_limit,
    resolve_device,
    snap_index,
    sweep_step,
    threads_for_volume,
    to_spectrum,
)
from locres.methods.monores import automatic_mask, estimate_monores

NAME = "monodir"
INPUTS = "map"
EDGE_PX = 7.0  # the reference's N_smoothing: amplitude taper width and noise-shell margin (voxels)
log = logging.getLogger(__name__)


def hemisphere_directions(n: int) -> np.ndarray:
    """``n`` near-uniform unit vectors (z, y, x) with z >= 0 (a Fibonacci lattice), (n, 3) float32."""
    i = np.arange(n) + 0.5
    cos_t = 1.0 - i / n  # uniform in cos(tilt) over [0, 1]
    sin_t = np.sqrt(1.0 - cos_t**2)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    return np.stack([cos_t, sin_t * np.sin(phi), sin_t * np.cos(phi)], axis=1).astype(np.float32)


def directional_bands(voxel_size_a: float, n: int, max_resolution_a: float, min_resolution_a: float,
                      res_step_a: float) -> list[Band]:
    """Sweep bands from ``max_resolution_a`` toward ``min_resolution_a``, one index at a time at least.

    Steps are at least 1 A above 8 A and ``res_step_a`` below; the half width is max(5 % of r, step).
    """
    bands: list[Band] = []
    idx = max(1, snap_index(max_resolution_a, voxel_size_a, n))
    r_prev = None
    while True:
        f = idx / n
        if f > 0.49:
            break
        r = voxel_size_a / f
        if r < min_resolution_a - 1e-6:
            break
        min_step = 1.0 if r > 8.0 else res_step_a
        if r_prev is not None and r_prev - r < min_step:
            idx += 1
            continue
        d = max(0.05 * r, min_step)
        f_hp = min(voxel_size_a / (r + d), f - 1.0 / n)
        f_lp = min(max(voxel_size_a / max(r - d, 1e-6), f + 1.0 / n), 0.5)
        bands.append(Band(f, max(f_hp, 0.0), f_lp, r))
        r_prev = r
        idx += 1
    return bands


def _summaries(res: np.ndarray, dirs: np.ndarray, radial_unit: np.ndarray, z_crit: float) -> dict:
    """Per-voxel outlier removal and summaries of directional resolutions ``res`` (ndir, nvox)."""
    ndir = len(dirs)
    cos = dirs @ dirs.T
    pi, pj = np.nonzero(np.triu(np.abs(cos) > np.cos(np.deg2rad(20.0)), 1))
    sign = np.sign(cos[pi, pj]).astype(np.float32)
    valid = res > 0
    cross = 2 * sign[:, None] * cos[pi, pj, None] * res[pi] * res[pj]
    d = np.sqrt(np.maximum(res[pi] ** 2 + res[pj] ** 2 - cross, 0))
    pv = valid[pi] & valid[pj]
    npair = np.maximum(pv.sum(0), 1)
    mean = (d * pv).sum(0) / npair
    std = np.sqrt(np.maximum((d**2 * pv).sum(0) / npair - mean**2, 0))
    thr = mean + z_crit * std
    # mean distance of each direction to its neighbours
    sums = np.zeros_like(res)
    cnts = np.zeros_like(res)
    np.add.at(sums, pi, d * pv)
    np.add.at(sums, pj, d * pv)
    np.add.at(cnts, pi, pv.astype(np.float32))
    np.add.at(cnts, pj, pv.astype(np.float32))
    outlier = (cnts > 0) & (sums / np.maximum(cnts, 1) > thr[None])
    valid &= ~outlier
    n = valid.sum(0)
    q = np.sort(np.where(valid, res, np.inf), axis=0)

    def pick(p):
        k = np.clip((p * n).astype(int), 0, np.maximum(n - 1, 0))
        return np.take_along_axis(q, k[None], 0)[0]

    lowest, highest = pick(0.95), pick(0.05)
    with np.errstate(invalid="ignore"):  # voxels without a valid direction read inf - inf (dropped below)
        doa = 0.5 * (pick(0.83) - pick(0.17))
    cang = np.abs(dirs @ radial_unit.T)  # (ndir, nvox)
    rad_sel = valid & (cang >= np.cos(np.deg2rad(45.0)))
    azi_sel = valid & (cang <= np.cos(np.deg2rad(70.0)))
    radial = (res * rad_sel).sum(0) / np.maximum(rad_sel.sum(0), 1)
    azimuthal = (res * azi_sel).sum(0) / np.maximum(azi_sel.sum(0), 1)
    median = pick(0.5)
    preferred = (valid & (res <= highest[None] + 0.1)).sum(1)
    ok = n > 0
    out = {k: np.where(ok, v, 0.0).astype(np.float32) for k, v in
           dict(lowest=lowest, highest=highest, anisotropy=doa, radial=radial, azimuthal=azimuthal,
                median=median, mean_extremes=0.5 * (lowest + highest)).items()}
    out["radial"] = np.where(rad_sel.any(0), out["radial"], out["median"])
    out["azimuthal"] = np.where(azi_sel.any(0), out["azimuthal"], out["median"])
    out["preferred_counts"] = preferred.astype(int)
    out["n_valid"] = n
    out["outlier_fraction"] = float(outlier.sum() / max(ndir * res.shape[1], 1))
    return out


@dataclass
class NoiseRegion:
    """Solvent used as noise (bool (Z, Y, X)), the radii bounding it (voxels) and the guard band used."""

    solvent: np.ndarray
    rprot_px: float
    rlimit_px: float
    guard_px: int


def monodir_noise_region(volume: np.ndarray, mask: np.ndarray, voxel_size_a: float, max_resolution_a: float,
                         guard_px: int | None, allow_no_noise_room: bool) -> NoiseRegion:
    """Mask / noise stage: the solvent between the particle's radius and N/2 - 7 (the reference's).

    The reference refuses a map whose radius limit (N/2, or the radius where a masked-out cliff starts)
    minus its 7 px edge taper does not exceed the particle's radius; so do we (one line saying what box
    is needed), unless ``allow_no_noise_room``, which then shrinks the taper margin to what exists.
    """
    shape = volume.shape
    rprot, rlimit = radius_limit(volume, mask)
    rlimit = min(rlimit, float(min(shape) // 2))
    radius = centred_radius(shape)
    noise_outer = rlimit - EDGE_PX
    if noise_outer <= rprot and not allow_no_noise_room:
        need = int(2 * (np.floor(rprot) + EDGE_PX + 2))
        raise LocresError(f"MonoDir: no room for noise around the particle (it reaches {rprot:.0f} px from "
                          f"the centre; the noise shell must end {EDGE_PX:g} px inside the radius limit "
                          f"{rlimit:.0f} px): pad the map to at least {need} voxels per axis, or set "
                          "method.allow_no_noise_room=true to run anyway")
    if noise_outer <= rprot:
        noise_outer = float(min(shape) // 2)
    guard = 0 if guard_px is None else int(guard_px)
    outside = (~mask) & (radius > rprot) & (radius <= noise_outer)
    while guard > 0 and (outside & (radius > rprot + guard)).sum() < 2000:
        guard -= 1
    solvent = outside & (radius > rprot + guard)
    if solvent.sum() < 200:
        raise LocresError(f"MonoDir: only {int(solvent.sum())} solvent voxels for the noise around a "
                          f"particle of radius {rprot:.0f} px; pad the map or use a tighter mask")
    return NoiseRegion(solvent=solvent, rprot_px=rprot, rlimit_px=rlimit, guard_px=guard)


def direction_sweep(spec: torch.Tensor, grid: FourierGrid, bands: list[Band], cone: torch.Tensor,
                    taper: torch.Tensor, m_idx: torch.Tensor, noise: torch.Tensor, significance: float,
                    avg_noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sweep stage for one direction: (resolution per mask voxel in A, whether each voxel ever passed).

    ``cone`` is the Fourier double-cone weight, ``taper`` the real-space amplitude edge, ``noise`` the
    solvent voxels of this direction's real-space cone.
    """
    n_vox = int(m_idx.numel())
    dev = grid.device
    active = torch.ones(n_vox, dtype=torch.bool, device=dev)
    passed = torch.zeros(n_vox, dtype=torch.bool, device=dev)
    fails = torch.zeros(n_vox, dtype=torch.int8, device=dev)
    res = torch.zeros(n_vox, dtype=torch.float32, device=dev)
    visited: list[float] = []
    for band in bands:
        n_s = int(active.sum())
        if n_s / n_vox < 0.025:
            break
        amp = monogenic_amplitude(spec, grid, [band], weight=cone, amplitude_taper=taper)[0, 0]
        a_m = amp.reshape(-1)[m_idx]
        mean_s = float(a_m[active].mean())
        if mean_s < 0.001 * avg_noise:
            break
        thr = percentile_threshold(amp[noise], significance)
        r = band.resolution_a
        visited.append(r)
        r2 = visited[0] if len(visited) <= 2 else visited[-3]
        above = a_m > thr
        passed |= active & above
        active, res, fails = sweep_step(active, above, res, fails, r, r2)
    return res, passed


def estimate_monodir(volume: np.ndarray, voxel_size_a: float, mask: np.ndarray | None = None,
                     significance: float = 0.95, fast: bool = False, n_directions: int | None = None,
                     cone_angle_deg: float = 15.0, noise_cone_deg: float = 45.0,
                     min_resolution_a: float | None = None, max_resolution_a: float = 18.0,
                     res_step_a: float = 0.5, guard_px: int | None = None, run_monores: bool = True,
                     keep_never_passed: bool = False, allow_no_noise_room: bool = False,
                     device: str = "cpu") -> LocalResolution:
    """MonoDir on one map (Angstrom maps on the input grid, 0 where not estimated).

    Parameters
    ----------
    volume : (Z, Y, X) float32
        The map (any box shape, with solvent around the particle for the noise estimate).
    voxel_size_a : float
    mask : (Z, Y, X) bool, optional
        Molecule mask (None -> :func:`locres.methods.monores.automatic_mask`).
    significance : float
    fast : bool
        47 directions instead of 81 (``n_directions`` overrides both).
    cone_angle_deg, noise_cone_deg : float
        Half angles of the Fourier double cone and of the real-space noise cone.
    min_resolution_a, max_resolution_a, res_step_a : float
        Sweep range (Nyquist .. 18 A) and step below 8 A.
    guard_px : int, optional
        Solvent this close to the particle's radius is not used as noise (None/0: none, as the reference).
    run_monores : bool
        Also run MonoRes (step 0.25 A, Nyquist .. 18 A) and return it as the ``monores`` extra map.
    keep_never_passed : bool
        True: a direction in which a voxel fails the first two steps holds the start value (as the
        reference); False: that direction is left out of the voxel's summaries.
    allow_no_noise_room : bool
        Run on a box the reference refuses (no shell of noise between the particle and N/2 - 7).
    """
    if volume.ndim != 3:
        raise LocresError(f"MonoDir needs a 3-D map, got shape {volume.shape}")
    shape = volume.shape
    dev = resolve_device(device)
    min_res = 2.0 * voxel_size_a if min_resolution_a is None else float(min_resolution_a)
    check_resolution_range(min_res, float(max_resolution_a), voxel_size_a, "MonoDir")
    volume = volume.astype(np.float32)
    auto = mask is None
    mask = automatic_mask(volume, voxel_size_a) if auto else mask.astype(bool)
    if not mask.any():
        raise LocresError("the mask is empty: give a mask that covers the molecule")
    region = monodir_noise_region(volume, mask, voxel_size_a, float(max_resolution_a), guard_px,
                                  allow_no_noise_room)
    z_crit = float(normal_dist.ppf(significance))
    ndir = int(n_directions or (47 if fast else 81))
    dirs = hemisphere_directions(ndir)
    grid = FourierGrid(shape, dev)
    spec = to_spectrum(volume[None], dev)
    n = max(shape)
    taper = torch.from_numpy(edge_taper(shape, EDGE_PX)).to(dev)
    # reference noise level at 18 A (isotropic, hard high pass)
    f18 = snap_index(18.0, voxel_size_a, n) / n
    a_ref = monogenic_amplitude(spec, grid, [Band(f18, f18 - 1e-6, min(f18 + 0.01, 0.5), 18.0)])[0, 0]
    avg_noise = float(a_ref[torch.from_numpy(~mask).to(dev)].mean()) / 9.0
    del a_ref
    bands = directional_bands(voxel_size_a, n, float(max_resolution_a), min_res, res_step_a)
    if not bands:
        raise LocresError("MonoDir: the resolution range holds no frequency of this box: widen it")
    m_idx = torch.from_numpy(np.flatnonzero(mask.ravel())).to(dev)
    radius = centred_radius(shape)
    pos = np.stack(np.nonzero(np.ones(shape, bool)), axis=-1).reshape(*shape, 3).astype(np.float32)
    pos -= np.array([s // 2 for s in shape], np.float32)
    unit = pos / np.maximum(radius, 1e-6)[..., None]
    res_dir = torch.zeros((ndir, int(m_idx.numel())), dtype=torch.float32, device=dev)
    never = torch.zeros_like(res_dir, dtype=torch.bool)
    cos_cone = float(np.cos(np.deg2rad(cone_angle_deg)))
    norm_safe = grid.norm.clamp_min(1e-12)
    for k, d in enumerate(dirs):
        proj = (grid.component(0) * float(d[0]) + grid.component(1) * float(d[1])
                + grid.component(2) * float(d[2])).abs() / norm_safe
        noise_sel = region.solvent & (np.abs(unit @ d) >= np.cos(np.deg2rad(noise_cone_deg)))
        if noise_sel.sum() < 50:
            noise_sel = region.solvent
        res, passed = direction_sweep(spec, grid, bands, (proj >= cos_cone).float(), taper, m_idx,
                                      torch.from_numpy(noise_sel).to(dev), significance, avg_noise)
        never[k] = (res > 0) & ~passed
        res_dir[k] = res if keep_never_passed else torch.where(passed, res, torch.zeros_like(res))
        log.debug("MonoDir direction %d/%d: median %.2f A", k + 1, ndir, float(res.median()))
    rd = res_dir.cpu().numpy()
    s = _summaries(rd, dirs, unit.reshape(-1, 3)[np.flatnonzero(mask.ravel())], z_crit)
    return _assemble(s, rd, never.cpu().numpy(), dirs, mask, radius, bands, region, dict(
        n_directions=ndir, cone_angle_deg=cone_angle_deg, noise_cone_deg=noise_cone_deg,
        significance=significance, min_resolution_a=min_res, max_resolution_a=float(max_resolution_a),
        res_step_a=res_step_a, automatic_mask=auto, keep_never_passed=bool(keep_never_passed),
        allow_no_noise_room=bool(allow_no_noise_room)),
        run_monores and dict(volume=volume, voxel_size_a=voxel_size_a, device=str(dev)))


def _assemble(s: dict, rd: np.ndarray, never: np.ndarray, dirs: np.ndarray, mask: np.ndarray,
              radius: np.ndarray, bands: list[Band], region: NoiseRegion, info: dict,
              monores_args: dict | bool) -> LocalResolution:
    """Post-processing stage: maps on the grid, optional MonoRes, radial averages and the info dict."""
    estimated = mask.copy()
    estimated[mask] = s["n_valid"] > 0

    def to_map(v):
        out = np.zeros(mask.shape, np.float32)
        out[mask] = v
        return np.where(estimated, out, 0.0).astype(np.float32)

    extra = {k: to_map(s[k]) for k in ("radial", "azimuthal", "anisotropy", "highest", "lowest")}
    if monores_args:
        mr = estimate_monores(monores_args["volume"], monores_args["voxel_size_a"], mask=mask,
                              min_resolution_a=info["min_resolution_a"],
                              max_resolution_a=max(info["max_resolution_a"], info["min_resolution_a"] + 0.5),
                              step_a=0.25, significance=info["significance"], device=monores_args["device"])
        extra["monores"] = mr.resolution_a
    shell = np.rint(radius[estimated]).astype(int)
    counts = np.bincount(shell)
    curves = {"radius_px": np.flatnonzero(counts).tolist()}
    for key in ("radial", "azimuthal", "highest", "lowest") + (("monores",) if monores_args else ()):
        avg = np.bincount(shell, weights=extra[key][estimated]) / np.maximum(counts, 1)
        curves[key + "_a"] = avg[counts > 0].round(4).tolist()
    tilt = np.degrees(np.arccos(np.clip(dirs[:, 0], -1, 1)))
    rot = np.degrees(np.arctan2(dirs[:, 1], dirs[:, 2]))
    med = s["median"][s["n_valid"] > 0]
    info.update({
        "protein_radius_px": region.rprot_px, "radius_limit_px": region.rlimit_px,
        "sweep_resolutions_a": [round(b.resolution_a, 3) for b in bands],
        "directions_rot_tilt_deg": np.c_[rot, tilt].round(2).tolist(),
        "preferred_direction_counts": s["preferred_counts"].tolist(),
        "outlier_fraction": s["outlier_fraction"],
        "median_anisotropy_a": float(np.median(s["anisotropy"][s["n_valid"] > 0])) if med.size else None,
        "noise_guard_px": region.guard_px,
        "never_passed_fraction": float(never.mean()), "never_passed_voxels": int((~estimated[mask]).sum()),
        "direction_median_resolution_a": [float(np.median(r[r > 0])) if (r > 0).any() else 0.0 for r in rd],
        "median_a": float(np.median(med)) if med.size else None,
        "radial_averages": curves,
    })
    log.info("MonoDir: %d directions, median %s A, %.1f %% of direction estimates never passed",
             len(dirs), info["median_a"], 100 * info["never_passed_fraction"])
    return LocalResolution(resolution_a=to_map(s["median"]), extra_maps=extra, info=info, mask=estimated)


def radial_average_figure(info: dict):
    """A matplotlib Figure of the radial-average curves in ``info["radial_averages"]`` (no file I/O)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    curves = info["radial_averages"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, vals in curves.items():
        if key != "radius_px":
            ax.plot(curves["radius_px"], vals, label=key.removesuffix("_a"))
    ax.set_xlabel("radius (voxels)")
    ax.set_ylabel("resolution (A)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def run(inputs: MethodInputs, **params) -> LocalResolution:
    """Adapter for ``infer.py``: one map (the half-map average when halves are given) and a mask."""
    params = {k: v for k, v in params.items() if k != "name"}
    with threads_for_volume(inputs.shape_zyx, inputs.device):
        return estimate_monodir(inputs.average_map(), inputs.voxel_size_a, mask=inputs.mask,
                                device=inputs.device, **params)
