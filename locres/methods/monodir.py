"""MonoDir: local-directional resolution and anisotropy (Vilas et al., Nat Commun 2020).

The map's spectrum is cut into narrow double cones (15 degrees half angle) around a fixed set of directions
over the upper hemisphere; in each cone a MonoRes-like sweep (monogenic amplitude against noise drawn from
the solvent in a 45 degree real-space double cone around the same direction) gives a resolution per voxel
and direction. Per voxel, directions that disagree with their neighbours are dropped and the rest are
summarised: highest/lowest resolution, the degree of anisotropy (half the 17-83 % inter-percentile range,
Angstrom), radial and azimuthal (tangential) resolution, a preferred-direction histogram and radial
averages (``specs/monogenic.md`` section 2).

The reference is Xmipp's ``resolution_directional``; where it and ``specs/monogenic.md`` disagree the
reference wins. As the reference:

- the direction set is its fixed table of 81 (rot, tilt) pairs, 47 with ``fast``
  (:mod:`locres.methods.monodir_directions`);
- the sweep starts at the index nearest 18 A and steps as its ``resolution2eval_``: at least 1 A above 8 A
  and ``res_step_a`` below, the next index being the one *nearest* the resolution one step finer; the
  high- and low-pass edges (r +- max(5 %, step)) are snapped to frequency indices, at least one index from
  the band's own;
- the monogenic *amplitude* is tapered in real space near the box edge (a soft sphere from radius N/2 - 7
  to N/2, :func:`locres.methods.monogenic.edge_taper`) before its low pass;
- the noise is the solvent outside the mask, beyond the particle's (integer) radius, inside the radius
  limit (N/2, or the start of a masked-out cliff, found on floor-radius shells) and within
  ``volume_radius_px - 7`` (Scipion passes N/2 as the reference's ``--volumeRadius``; so do we by default);
  a box without that room is refused (one line saying the padding needed) unless ``allow_no_noise_room``;
- a voxel's direction starts at the box size (in A, the reference's initial value) and, after two failed
  steps in a row, takes the resolution two steps back (the start value if it never passed);
- outliers: neighbours are directions within 20 degrees (not folded through the origin), distances are
  between the resolution-scaled direction vectors; a direction is dropped when its mean distance exceeds
  the voxel's mean + z * std over all neighbour pairs, or when its summed distance is in (0, 1];
- radial/azimuthal: the mean over directions within 45 degrees of the voxel's radial line / beyond 70
  degrees of it, measured as the reference does, with the voxel's x and y coordinates exchanged (the
  reference's ``x*i + y*j`` pairs the direction's x with the voxel's row index); where no direction
  qualifies (and at the centre) the map holds the mean of the highest and lowest resolutions;
- the Riesz components and the cones number the Nyquist index of z and y +0.5
  (:func:`locres.methods.monogenic.reference_fftfreq`), and the outlier test's critical value is the
  reference's rational approximation of the normal quantile (1.64521 at 0.95,
  :func:`locres.methods.monogenic.reference_normal_quantile`): with both, every per-direction noise
  threshold equals the original's to its printed six digits and the outliers it drops are the same;
- highest/lowest are the 5 % / 95 % order statistics; preferred directions count the directions within
  0.1 A of the voxel's highest resolution; radial averages are over shells [k - 1, k + 1) voxels.

Departures from the reference, each deliberate:

- ``n_directions`` (not in the reference) gives a Fibonacci lattice of that many directions instead of the
  table (tests use few directions for speed).
- Any box shape works (frequencies per axis; the edge taper's N is the smallest edge).
- ``keep_never_passed=False`` (the default) leaves a direction in which a voxel never passed out of that
  voxel's summaries, and voxels with no direction left unestimated (counted in the info); ``True`` is the
  reference's behaviour (the start value counts as an estimate).
- ``true_radial=True`` uses the voxel's true radial line for the radial/azimuthal split.
- The main map (``resolution_a``) is the per-voxel median over the valid directions (the reference writes
  none); the z-score map of the reference is not produced.
- ``guard_px`` optionally keeps solvent next to the particle out of the noise (off by default).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from locres.errors import LocresError
from locres.methods import LocalResolution, MethodInputs
from locres.methods.monodir_directions import ROT_TILT_47, ROT_TILT_81
from locres.methods.monogenic import (
    Band,
    FourierGrid,
    centred_radius,
    check_resolution_range,
    edge_taper,
    lowpass_transfer,
    monogenic_amplitude,
    percentile_threshold,
    reference_normal_quantile,
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


def reference_directions(fast: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The reference's direction table: unit vectors (n, 3) (z, y, x) float64 and (rot, tilt) (n, 2) deg."""
    rt = np.array(ROT_TILT_47 if fast else ROT_TILT_81, dtype=np.float64)
    rot, tilt = np.deg2rad(rt[:, 0]), np.deg2rad(rt[:, 1])
    dirs = np.stack([np.cos(tilt), np.sin(tilt) * np.sin(rot), np.sin(tilt) * np.cos(rot)], axis=1)
    return dirs, rt


def _digital_frequency(idx: int, n: int) -> float:
    """Frequency (cycles/voxel) of FFT index ``idx`` on an n-point axis (negative above n/2)."""
    return (idx if idx <= n // 2 else idx - n) / n


def _nearest_index(f: float, n: int) -> int:
    idx = int(np.floor(n * f + 0.5)) if f >= 0 else -int(np.floor(-n * f + 0.5))
    return idx + n if idx < 0 else idx


def directional_bands(voxel_size_a: float, n: int, max_resolution_a: float, min_resolution_a: float,
                      res_step_a: float) -> list[Band]:
    """The reference's sweep bands from the index nearest ``max_resolution_a`` toward Nyquist.

    A candidate index less than the minimum step (1 A above 8 A, ``res_step_a`` below) from the last
    resolution is replaced by the index nearest (last - step); the band edges r +- max(0.05 r, step) are
    snapped to indices at least one away from the band's. Stops past 0.49 cycles/voxel, or (not in the
    reference, whose floor is 1 A) before a band finer than ``min_resolution_a``.
    """
    bands: list[Band] = []
    idx = max(1, snap_index(max_resolution_a, voxel_size_a, n))
    last_res, last_idx = 0.0, -1
    while len(bands) < 4 * n:
        f = _digital_frequency(idx, n)
        if f <= 0:
            break
        res = voxel_size_a / f
        min_step = 1.0 if res > 8.0 else res_step_a
        if abs(res - last_res) < min_step:
            if last_res - min_step <= 0:
                break
            idx = _nearest_index(voxel_size_a / (last_res - min_step), n)
            f = _digital_frequency(idx, n)
            if idx == last_idx:
                idx += 1
                continue
        if f > 0.49 or f <= 0:
            break
        res = voxel_size_a / f
        last_res = res
        d = min_step if 0.05 * res < min_step else 0.05 * res
        f_h, f_l = voxel_size_a / (res + d), voxel_size_a / (res - d)
        f_h = 0.5 if (f_h > 0.5 or f_h < 0) else f_h
        f_l = 0.5 if (f_l > 0.5 or f_l < 0) else f_l
        i_h, i_l = _nearest_index(f_h, n), _nearest_index(f_l, n)
        i_h = idx - 1 if i_h == idx else i_h
        i_l = idx + 1 if i_l == idx else i_l
        if res < min_resolution_a - 1e-6:
            break
        bands.append(Band(f, _digital_frequency(i_h, n), _digital_frequency(i_l, n), res))
        last_idx = idx
        idx += 1
    return bands


def remove_outliers(res: np.ndarray, dirs: np.ndarray, z_crit: float, chunk: int = 40000) -> np.ndarray:
    """The reference's per-voxel outlier test; ``res`` (ndir, nvox), <= 0 = absent. Returns the outlier mask.

    Neighbours are directions less than 20 degrees apart (the plain angle, not folded); the distance of a
    pair is |r_i d_i - r_j d_j|. A direction is an outlier when its mean distance to its neighbours exceeds
    the voxel's mean + ``z_crit`` std over all neighbour pairs, or when its summed distance is in (0, 1].
    """
    cos = np.clip(dirs @ dirs.T, -1.0, 1.0)
    pi, pj = np.nonzero(np.triu(np.degrees(np.arccos(cos)) < 20.0, 1))
    incidence = np.zeros((len(dirs), len(pi)))
    incidence[pi, np.arange(len(pi))] = 1.0
    incidence[pj, np.arange(len(pi))] = 1.0
    out = np.zeros(res.shape, bool)
    for a in range(0, res.shape[1], chunk):
        r = res[:, a:a + chunk].astype(np.float64)
        ri, rj = r[pi], r[pj]
        pv = (ri > 0) & (rj > 0)
        d = np.sqrt(np.maximum(ri**2 + rj**2 - 2 * cos[pi, pj, None] * ri * rj, 0.0)) * pv
        npair = pv.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = d.sum(0) / npair
            thr = mean + z_crit * np.sqrt((d**2).sum(0) / npair - mean**2)
        sums = incidence @ d  # per direction, the sum over its neighbour pairs
        cnts = incidence @ pv.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            far = sums / np.maximum(cnts, 1) > thr[None]  # NaN thresholds (no pairs) flag nothing
        out[:, a:a + chunk] = (sums > 0) & (far | (sums <= 1.0))
    return out


def _summaries(res: np.ndarray, dirs: np.ndarray, radial_vec: np.ndarray, z_crit: float) -> dict:
    """Outlier removal and per-voxel summaries of directional resolutions ``res`` (ndir, nvox).

    ``radial_vec`` (nvox, 3) is the vector the radial/azimuthal split measures against (zero at the centre).
    """
    ndir = len(dirs)
    valid = res > 0
    outlier = remove_outliers(res, dirs, z_crit) & valid
    valid &= ~outlier
    n = valid.sum(0)
    q = np.sort(np.where(valid, res, np.inf), axis=0)

    def pick(p):
        k = np.clip(np.floor(p * n).astype(int), 0, np.maximum(n - 1, 0))
        return np.take_along_axis(q, k[None], 0)[0]

    with np.errstate(invalid="ignore"):  # voxels without a valid direction read inf - inf (dropped below)
        lowest, highest = pick(0.95), pick(0.05)
        doa = 0.5 * (pick(0.83) - pick(0.17))
        mean_ext = 0.5 * (lowest + highest)
    rn = np.linalg.norm(radial_vec, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cang = np.abs(dirs @ (radial_vec / rn[:, None]).T)  # (ndir, nvox); NaN at the centre
        ang = np.arccos(np.clip(cang, 0.0, 1.0))
        rad_sel = valid & (ang <= np.deg2rad(45.0))
        azi_sel = valid & (ang >= np.deg2rad(70.0))
    radial = np.where(rad_sel.any(0), (res * rad_sel).sum(0) / np.maximum(rad_sel.sum(0), 1), mean_ext)
    azimuthal = np.where(azi_sel.any(0), (res * azi_sel).sum(0) / np.maximum(azi_sel.sum(0), 1), mean_ext)
    median = pick(0.5)
    preferred = (valid & (np.abs(res - highest[None]) < 0.1)).sum(1)
    ok = n > 0
    out = {k: np.where(ok, v, 0.0).astype(np.float32) for k, v in
           dict(lowest=lowest, highest=highest, anisotropy=doa, radial=radial, azimuthal=azimuthal,
                median=median, mean_extremes=mean_ext).items()}
    out["preferred_counts"] = preferred.astype(int)
    out["n_valid"] = n
    out["outlier_fraction"] = float(outlier.sum() / max(ndir * res.shape[1], 1))
    return out


class NoiseConeGeometry:
    """The real-space double cone around a direction that MonoDir draws its noise from, tested as the
    reference does, in double precision: the angle between the voxel's vector from the box centre (N/2
    exactly) and the direction, ``acos((y dy + x dx + z dz) / r)``, below the cone angle or above pi minus
    it. Voxels exactly on the cone (e.g. (3, 3, 0) for a 45 degree cone around z, common on an integer
    grid) fall on the side the reference's rounding puts them; a float32 dot product put 136 of them per
    axis direction on the other side of a 112^3 box."""

    def __init__(self, shape: tuple[int, ...]):
        self.uz, self.uy, self.ux = [(np.arange(s, dtype=np.float64) - s * 0.5).reshape(
            [-1 if a == b else 1 for b in range(3)]) for a, s in enumerate(shape)]
        with np.errstate(divide="ignore"):
            self.inv_radius = 1.0 / np.sqrt(self.ux**2 + self.uy**2 + self.uz**2)  # inf at the centre

    def double_cone(self, rot_deg: float, tilt_deg: float, cone_deg: float) -> np.ndarray:
        """bool (Z, Y, X): inside the double cone of half angle ``cone_deg`` around (rot, tilt)."""
        rot, tilt = rot_deg * np.pi / 180, tilt_deg * np.pi / 180
        x_dir, y_dir, z_dir = np.sin(tilt) * np.cos(rot), np.sin(tilt) * np.sin(rot), np.cos(tilt)
        cone = np.pi * cone_deg / 180
        with np.errstate(invalid="ignore"):  # the centre reads NaN and lies in no cone
            angle = np.arccos((self.uy * y_dir + self.ux * x_dir + self.uz * z_dir) * self.inv_radius)
        return (angle < cone) | (angle > np.pi - cone)


@dataclass
class NoiseRegion:
    """Solvent used as noise (bool (Z, Y, X)), the radii bounding it (voxels) and the guard band used."""

    solvent: np.ndarray
    rprot_px: float
    rlimit_px: float
    guard_px: int


def cliff_radius(volume: np.ndarray, rprot_px: int) -> int:
    """The reference's radius limit: N/2, or one less than the first floor-radius shell (walking out from
    the particle's radius) whose variance falls below 1 % of the previous shell's (a map masked to zero
    outside a sphere)."""
    zz, yy, xx = [np.arange(s) - s // 2 for s in volume.shape]
    r2 = zz[:, None, None] ** 2 + yy[None, :, None] ** 2 + xx[None, None, :] ** 2
    shell = np.floor(np.sqrt(r2)).astype(np.int64).ravel()  # exact: sqrt of a perfect square is exact
    limit = volume.shape[2] // 2
    m = limit + 1
    sel = shell < m
    v = volume.astype(np.float64).ravel()[sel]
    cnt = np.bincount(shell[sel], minlength=m)
    s1 = np.bincount(shell[sel], weights=v, minlength=m)
    s2 = np.bincount(shell[sel], weights=v * v, minlength=m)
    last = 1e-38
    for rad in range(int(rprot_px), limit):
        if cnt[rad] == 0:
            continue
        mean = s1[rad] / cnt[rad]
        var = s2[rad] / cnt[rad] - mean * mean
        if var / last < 0.01:
            return rad - 1
        last = var
    return limit


def monodir_noise_region(volume: np.ndarray, mask: np.ndarray, voxel_size_a: float, max_resolution_a: float,
                         guard_px: int | None, allow_no_noise_room: bool,
                         volume_radius_px: float | None = None) -> NoiseRegion:
    """Mask / noise stage, as the reference: the solvent beyond the particle's radius, inside the radius
    limit and within ``volume_radius_px`` - 7 (default N/2 - 7); the directional cone is applied later.

    The reference refuses a map whose radius limit minus its 7 px edge taper does not exceed the
    particle's radius; so do we (one line saying what box is needed), unless ``allow_no_noise_room``, which
    then takes the noise from all the solvent beyond the particle.
    """
    shape = volume.shape
    zz, yy, xx = [np.arange(s) - s // 2 for s in shape]
    r2 = zz[:, None, None] ** 2 + yy[None, :, None] ** 2 + xx[None, None, :] ** 2
    rprot = int(np.sqrt(r2[mask].max())) if mask.any() else 0
    rlimit = cliff_radius(volume, rprot)
    big_r = float(min(shape)) / 2 if volume_radius_px is None else float(volume_radius_px)
    # the noise test's radius is measured from N/2 exactly (the reference's k - N*0.5)
    cz, cy, cx = [np.arange(s) - 0.5 * s for s in shape]
    rad = np.sqrt(cz[:, None, None] ** 2 + cy[None, :, None] ** 2 + cx[None, None, :] ** 2)
    if rlimit - EDGE_PX <= rprot and not allow_no_noise_room:
        need = int(2 * (rprot + EDGE_PX + 2))
        raise LocresError(f"MonoDir: no room for noise around the particle (it reaches {rprot} px from "
                          f"the centre; the noise shell must end {EDGE_PX:g} px inside the radius limit "
                          f"{rlimit} px): pad the map to at least {need} voxels per axis, or set "
                          "method.allow_no_noise_room=true to run anyway")
    inside = (r2 < rlimit**2) & (np.sqrt(r2) <= big_r - EDGE_PX)
    outside = (~mask) & inside & (rad > rprot)
    if allow_no_noise_room and outside.sum() < 2000:
        outside = (~mask) & (rad > rprot)
    guard = 0 if guard_px is None else int(guard_px)
    while guard > 0 and (outside & (rad > rprot + guard)).sum() < 2000:
        guard -= 1
    solvent = outside & (rad > rprot + guard)
    if solvent.sum() < 200:
        raise LocresError(f"MonoDir: only {int(solvent.sum())} solvent voxels for the noise around a "
                          f"particle of radius {rprot} px; pad the map or use a tighter mask")
    return NoiseRegion(solvent=solvent, rprot_px=float(rprot), rlimit_px=float(rlimit), guard_px=guard)


def direction_sweep(spec: torch.Tensor, grid: FourierGrid, bands: list[Band], cone: torch.Tensor,
                    taper: torch.Tensor, m_idx: torch.Tensor, noise: torch.Tensor, significance: float,
                    avg_noise: float, start_value_a: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sweep stage for one direction: (resolution per mask voxel in A, whether each voxel ever passed).

    ``cone`` is the Fourier double-cone weight, ``taper`` the real-space amplitude edge, ``noise`` the
    solvent voxels of this direction's real-space cone; every voxel starts at ``start_value_a``.
    """
    n_vox = int(m_idx.numel())
    dev = grid.device
    active = torch.ones(n_vox, dtype=torch.bool, device=dev)
    passed = torch.zeros(n_vox, dtype=torch.bool, device=dev)
    fails = torch.zeros(n_vox, dtype=torch.int8, device=dev)
    res = torch.full((n_vox,), float(start_value_a), dtype=torch.float32, device=dev)
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


def _reference_noise_level(spec: torch.Tensor, grid: FourierGrid, voxel_size_a: float, n: int,
                           region: np.ndarray) -> float:
    """The reference's AvgNoise: amplitude of the hard high pass at the index nearest 18 A, low-passed
    (raised cosine, 0.01 wide), averaged over the solvent inside the radius limit, over 9."""
    idx = snap_index(18.0, voxel_size_a, n)
    f = idx / n
    hp = (grid.norm > f).float()
    shape = grid.shape
    amp = torch.fft.irfftn(spec[0] * hp, s=shape) ** 2
    for k in range(3):
        amp += torch.fft.irfftn(spec[0] * hp * (-1j * grid.riesz[k]), s=shape) ** 2
    amp = amp.sqrt_()
    amp = torch.fft.irfftn(torch.fft.rfftn(amp) * lowpass_transfer(grid.norm.clone(), f, f + 0.01), s=shape)
    return float(amp[torch.from_numpy(region).to(grid.device)].mean()) / 9.0


def estimate_monodir(volume: np.ndarray, voxel_size_a: float, mask: np.ndarray | None = None,
                     significance: float = 0.95, fast: bool = False, n_directions: int | None = None,
                     cone_angle_deg: float = 15.0, noise_cone_deg: float = 45.0,
                     min_resolution_a: float | None = None, max_resolution_a: float = 18.0,
                     res_step_a: float = 0.5, guard_px: int | None = None, run_monores: bool = True,
                     keep_never_passed: bool = False, allow_no_noise_room: bool = False,
                     volume_radius_px: float | None = None, true_radial: bool = False,
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
        The reference's 47 directions instead of its 81.
    n_directions : int, optional
        A Fibonacci lattice of this many directions instead of the reference's table.
    cone_angle_deg, noise_cone_deg : float
        Half angles of the Fourier double cone and of the real-space noise cone.
    min_resolution_a, max_resolution_a, res_step_a : float
        Sweep range (Nyquist .. 18 A) and step below 8 A.
    guard_px : int, optional
        Solvent this close to the particle's radius is not used as noise (None/0: none, as the reference).
    run_monores : bool
        Also run MonoRes (step 0.25 A, Nyquist .. 18 A) and return it as the ``monores`` extra map.
    keep_never_passed : bool
        True: a direction in which a voxel never passes holds the start value (as the reference);
        False: that direction is left out of the voxel's summaries.
    allow_no_noise_room : bool
        Run on a box the reference refuses (no shell of noise between the particle and N/2 - 7).
    volume_radius_px : float, optional
        The reference's ``--volumeRadius`` (noise only within it minus 7 px); None: N/2, as Scipion passes.
    true_radial : bool
        Split radial/azimuthal on the voxel's true radial line (the reference exchanges x and y there).
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
                                  allow_no_noise_room, volume_radius_px)
    z_crit = reference_normal_quantile(significance)
    if n_directions:
        dirs = hemisphere_directions(int(n_directions)).astype(np.float64)
        rot_tilt = np.c_[np.degrees(np.arctan2(dirs[:, 1], dirs[:, 2])), np.degrees(np.arccos(dirs[:, 0]))]
    else:
        dirs, rot_tilt = reference_directions(fast)
    ndir = len(dirs)
    grid = FourierGrid(shape, dev)
    spec = to_spectrum(volume[None], dev)
    n = max(shape)
    taper = torch.from_numpy(edge_taper(shape, EDGE_PX)).to(dev)
    avg_noise = _reference_noise_level(spec, grid, voxel_size_a, n, (~mask) & (centred_radius(shape)
                                                                             < region.rlimit_px))
    bands = directional_bands(voxel_size_a, n, float(max_resolution_a), min_res, res_step_a)
    if not bands:
        raise LocresError("MonoDir: the resolution range holds no frequency of this box: widen it")
    m_flat = np.flatnonzero(mask.ravel())
    m_idx = torch.from_numpy(m_flat).to(dev)
    radius = centred_radius(shape)
    cone_geometry = NoiseConeGeometry(shape)
    res_dir = torch.zeros((ndir, int(m_idx.numel())), dtype=torch.float32, device=dev)
    never = torch.zeros_like(res_dir, dtype=torch.bool)
    cos_cone = float(np.cos(np.deg2rad(cone_angle_deg)))
    norm_safe = grid.norm.clamp_min(1e-12)
    for k, d in enumerate(dirs):
        proj = (grid.component(0) * float(d[0]) + grid.component(1) * float(d[1])
                + grid.component(2) * float(d[2])).abs() / norm_safe
        noise_sel = region.solvent & cone_geometry.double_cone(*rot_tilt[k], noise_cone_deg)
        if noise_sel.sum() < 50:
            noise_sel = region.solvent
        res, passed = direction_sweep(spec, grid, bands, (proj >= cos_cone).float(), taper, m_idx,
                                      torch.from_numpy(noise_sel).to(dev), significance, avg_noise,
                                      float(n))
        never[k] = ~passed
        res_dir[k] = res if keep_never_passed else torch.where(passed, res, torch.zeros_like(res))
        log.debug("MonoDir direction %d/%d: median %.2f A", k + 1, ndir, float(res.median()))
    rd = res_dir.cpu().numpy()
    # the vector the radial split is measured against, (z, y, x) from the box centre N//2
    zz, yy, xx = [np.arange(s, dtype=np.float64) - s // 2 for s in shape]
    p = np.stack(np.meshgrid(zz, yy, xx, indexing="ij"), axis=-1).reshape(-1, 3)[m_flat]
    if not true_radial:
        p = p[:, [0, 2, 1]]  # the reference pairs the direction's x with the voxel's y (and y with x)
    s = _summaries(rd, dirs, p, z_crit)
    return _assemble(s, rd, never.cpu().numpy(), rot_tilt, mask, radius, bands, region, dict(
        n_directions=ndir, cone_angle_deg=cone_angle_deg, noise_cone_deg=noise_cone_deg,
        significance=significance, min_resolution_a=min_res, max_resolution_a=float(max_resolution_a),
        res_step_a=res_step_a, automatic_mask=auto, keep_never_passed=bool(keep_never_passed),
        allow_no_noise_room=bool(allow_no_noise_room), true_radial=bool(true_radial),
        volume_radius_px=volume_radius_px),
        run_monores and dict(volume=volume, voxel_size_a=voxel_size_a, device=str(dev)))


def radial_averages(maps: dict[str, np.ndarray], support: np.ndarray) -> dict[str, list]:
    """The reference's radial averages: mean of each map over ``support`` voxels at radius in [k-1, k+1)
    from the box centre, for k = 1 .. N/2 - 1 (shells overlap); shells where every mean is 0 are left out."""
    radius = centred_radius(support.shape)[support]
    vals = {k: v[support].astype(np.float64) for k, v in maps.items()}
    curves: dict[str, list] = {"radius_px": []}
    for key in maps:
        curves[key + "_a"] = []
    for kk in range(1, min(support.shape) // 2):
        sel = (radius >= kk - 1) & (radius < kk + 1)
        if not sel.any():
            continue
        means = {key: float(v[sel].mean()) for key, v in vals.items()}
        if not any(m > 0 for m in means.values()):
            continue
        curves["radius_px"].append(kk)
        for key, m in means.items():
            curves[key + "_a"].append(round(m, 4))
    return curves


def _assemble(s: dict, rd: np.ndarray, never: np.ndarray, rot_tilt: np.ndarray, mask: np.ndarray,
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
    extra["mean_extremes"] = to_map(s["mean_extremes"])
    if monores_args:
        mr = estimate_monores(monores_args["volume"], monores_args["voxel_size_a"], mask=mask,
                              min_resolution_a=info["min_resolution_a"],
                              max_resolution_a=max(info["max_resolution_a"], info["min_resolution_a"] + 0.5),
                              step_a=0.25, significance=info["significance"], device=monores_args["device"])
        extra["monores"] = mr.resolution_a
    keys = ("radial", "azimuthal", "highest", "lowest") + (("monores",) if monores_args else ())
    curves = radial_averages({k: extra[k] for k in keys}, estimated)
    rt = np.asarray(rot_tilt, np.float64).copy()
    flip = rt[:, 1] < 0  # reported as the reference's preferred-direction file: tilt >= 0
    rt[flip, 1] *= -1
    rt[flip, 0] += 180.0
    med = s["median"][s["n_valid"] > 0]
    info.update({
        "protein_radius_px": region.rprot_px, "radius_limit_px": region.rlimit_px,
        "sweep_resolutions_a": [round(b.resolution_a, 3) for b in bands],
        "directions_rot_tilt_deg": rt.round(4).tolist(),
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
             len(rt), info["median_a"], 100 * info["never_passed_fraction"])
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
