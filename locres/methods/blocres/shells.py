"""blocres shell mode: FSC in concentric radial shells around an origin (Bsoft ``-shell``)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

from locres.errors import LocresError
from locres.methods.blocres.common import (
    MAX_RESOLUTION_CLAMP_A,
    _bin,
    _cpu_threads_for,
    _prepare_halves,
    cut_last_crossing,
    n_shells,
    parse_cutoffs,
    shell_binning,
)
from locres.methods.fsc import half_bit_threshold


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
