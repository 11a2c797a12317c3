"""Real maps with fitted atomic models: methods against the local model-map FSC, B-factors, each other.

No truth is known on a real map, so weaker yardsticks: (1) the local model-map FSC
(:mod:`locres.methods.modelfsc`: the model simulated on the map's grid at a uniform B, local correlation
of the two maps falling below 0.5, inside the model's 2.5 A footprint): each method's MAE, bias (median
of estimate - modelfsc) and Spearman against it over the voxels both estimated; (2) each method against
the model's atomic B-factors, Spearman over atoms, sampling the local-resolution map at each atom
(nearest voxel, using the map geometry: voxel centre ``corner_xyz_a + index * voxel_size``) -- flexible,
high-B regions should read coarser; (3) every pair of methods, Spearman over the mask voxels both
estimated; (4) the median against the resolution the authors reported, where known; (5) every pair of
methods at equal coverage: both scored against the yardstick on the voxels both estimated (a method that
leaves the hard voxels out is not rewarded for it); (6) MAE and Spearman against the yardstick over the
voxels where it found a crossing: at its coarsest shell it gives only a bound (the map and model disagree
already at 20 A), which is what a partial model's ends read, where the map carries unmodelled neighbours
(EMD-5168's filament). The headline figures keep every voxel. Only single-map variants run (no half maps).
"""

from __future__ import annotations

import logging
import time

import numpy as np
from scipy import ndimage

from locres.bench.common import Variant, inputs_for, run_variant
from locres.bench.groundtruth import spearman
from locres.methods.modelfsc import default_max_resolution_a, local_model_map_fsc
from locres.simulate.density import model_map_in_frame

log = logging.getLogger(__name__)


def atoms_xyz_b(structure) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) x, y, z positions (Angstrom) and (n,) isotropic B-factors (A^2) of the first model."""
    xyz, b = [], []
    for cra in structure[0].all():
        xyz.append(cra.atom.pos.tolist())
        b.append(cra.atom.b_iso)
    return np.asarray(xyz, dtype=np.float64), np.asarray(b, dtype=np.float64)


def atom_voxel_indices(xyz_a: np.ndarray, corner_xyz_a: np.ndarray, voxel_size_xyz_a,
                       shape_zyx) -> np.ndarray:
    """(n, 3) nearest-voxel (z, y, x) indices of atoms, -1 rows for atoms outside the grid."""
    idx_xyz = np.rint((xyz_a - np.asarray(corner_xyz_a)) / np.asarray(voxel_size_xyz_a)).astype(int)
    idx = idx_xyz[:, ::-1]
    inside = np.all((idx >= 0) & (idx < np.asarray(shape_zyx)), axis=1)
    idx[~inside] = -1
    return idx


def sample_at_atoms(volume: np.ndarray, idx_zyx: np.ndarray) -> np.ndarray:
    """Values of ``volume`` at atom voxels (NaN for atoms outside the grid)."""
    out = np.full(len(idx_zyx), np.nan)
    ok = idx_zyx[:, 0] >= 0
    out[ok] = volume[idx_zyx[ok, 0], idx_zyx[ok, 1], idx_zyx[ok, 2]]
    return out


def model_mask(idx_zyx: np.ndarray, shape_zyx, voxel_size_a: float, radius_a: float = 3.0) -> np.ndarray:
    """Bool mask of voxels within about ``radius_a`` of an atom."""
    mask = np.zeros(shape_zyx, bool)
    ok = idx_zyx[:, 0] >= 0
    mask[idx_zyx[ok, 0], idx_zyx[ok, 1], idx_zyx[ok, 2]] = True
    r = max(1, int(round(radius_a / voxel_size_a)))
    zz, yy, xx = np.mgrid[-r:r + 1, -r:r + 1, -r:r + 1]
    return ndimage.binary_dilation(mask, structure=(zz**2 + yy**2 + xx**2) <= r * r)


def below_cap(reference_a: np.ndarray, cap_a: float) -> np.ndarray:
    """Where the model-map FSC found a crossing: below its coarsest shell ``cap_a`` (at it, only a bound)."""
    return reference_a < cap_a * (1 - 1e-4)


def model_fsc_reference(volume, structure, idx_zyx: np.ndarray, bfac: np.ndarray) -> tuple[np.ndarray, dict]:
    """The local model-map FSC of one real map (0 outside the footprint) and its summary."""
    t0 = time.perf_counter()
    model_map, footprint = model_map_in_frame(structure, volume.geometry)
    ref = local_model_map_fsc(volume.data, model_map, footprint, volume.voxel_size_a)
    at = sample_at_atoms(ref, idx_zyx)
    ok = np.isfinite(at) & (at > 0)
    vals = ref[footprint]
    cap_a = default_max_resolution_a(volume.data.shape, volume.voxel_size_a)
    rec = {"median_a": float(np.median(vals)), "p5_a": float(np.percentile(vals, 5)),
           "cap_a": cap_a, "at_cap_fraction": float(np.mean(~below_cap(vals, cap_a))),
           "p95_a": float(np.percentile(vals, 95)), "footprint_voxels": int(footprint.sum()),
           "spearman_bfactor": spearman(at[ok], bfac[ok]), "seconds": round(time.perf_counter() - t0, 2)}
    log.info("  %-16s median %.2f A (5-95 %% %.2f-%.2f), Spearman vs B %.2f, %.1f s", "modelfsc",
             rec["median_a"], rec["p5_a"], rec["p95_a"], rec["spearman_bfactor"], rec["seconds"])
    return ref, rec


def against_reference(estimate_a: np.ndarray, reference_a: np.ndarray, mask: np.ndarray,
                      cap_a: float | None = None) -> dict:
    """MAE, bias (median of estimate - reference) and Spearman over mask voxels both estimated; with
    ``cap_a`` (the yardstick's coarsest shell) also MAE and Spearman over those below the cap."""
    both = mask & (estimate_a > 0) & (reference_a > 0)
    if not both.any():
        return {"mae_vs_modelfsc_a": None, "bias_vs_modelfsc_a": None, "spearman_modelfsc": None,
                "n_vs_modelfsc": 0}
    d = estimate_a[both] - reference_a[both]
    rec = {"mae_vs_modelfsc_a": float(np.mean(np.abs(d))), "bias_vs_modelfsc_a": float(np.median(d)),
           "spearman_modelfsc": spearman(estimate_a[both], reference_a[both]),
           "n_vs_modelfsc": int(both.sum())}
    if cap_a is not None:
        crossed = both & below_cap(reference_a, cap_a)
        e, r = estimate_a[crossed], reference_a[crossed]
        rec["mae_vs_modelfsc_crossed_a"] = float(np.mean(np.abs(e - r))) if e.size else None
        rec["spearman_modelfsc_crossed"] = spearman(e, r) if e.size else None
    return rec


def compare_real_map(volume, structure, variants: list[Variant], mask: np.ndarray | None = None,
                     reported_resolution_a: float | None = None, device: str = "cpu") -> dict:
    """Run the single-map variants on one real map and compare them (see the module docstring).

    Parameters
    ----------
    volume : :class:`locres.core.maps.MapVolume` (its geometry places the atoms).
    structure : gemmi.Structure fitted to the map.
    mask : bool array on the map's grid; None builds one from the atoms (3 A around each).
    """
    geom = volume.geometry
    v = volume.voxel_size_a
    xyz, bfac = atoms_xyz_b(structure)
    idx = atom_voxel_indices(xyz, geom.corner_xyz_a, geom.voxel_size_xyz_a, volume.data.shape)
    source = "given"
    if mask is None:
        mask, source = model_mask(idx, volume.data.shape, v), "model (3 A around atoms)"
    mask = np.asarray(mask, bool)
    out = {"shape_zyx": list(volume.data.shape), "voxel_size_a": v, "mask_source": source,
           "mask_voxels": int(mask.sum()), "atoms": int(len(xyz)),
           "atoms_in_map": int((idx[:, 0] >= 0).sum()),
           "bfactor_range_a2": [float(bfac.min()), float(bfac.max())],
           "reported_resolution_a": reported_resolution_a, "variants": {}, "pairwise_spearman": {}}
    reference, out["modelfsc"] = model_fsc_reference(volume, structure, idx, bfac)
    maps = {}
    for var in variants:
        if var.input != "map":
            continue
        res = run_variant(var, inputs_for(var, v, volume.data, None, None, mask, device))
        rec = {"seconds": round(res.seconds, 2), "peak_mb": round(res.peak_mb, 1), "error": res.error}
        if res.error is None:
            r = res.resolution_a
            est = r[mask & (r > 0)]
            at = sample_at_atoms(r, idx)
            ok = np.isfinite(at) & (at > 0)
            rec.update(median_a=float(np.median(est)) if est.size else None,
                       coverage=float(est.size / max(1, mask.sum())), n_atoms=int(ok.sum()),
                       spearman_bfactor=spearman(at[ok], bfac[ok]),
                       **against_reference(r, reference, mask, out["modelfsc"]["cap_a"]))
            maps[var.label] = r
            log.info("  %-16s median %s A, vs modelfsc MAE %s A, Spearman %s; Spearman vs B %.2f, %.1f s",
                     var.label, f"{rec['median_a']:.2f}" if rec["median_a"] else "-",
                     _f(rec["mae_vs_modelfsc_a"]), _f(rec["spearman_modelfsc"]), rec["spearman_bfactor"],
                     res.seconds)
        else:
            log.info("  %-16s failed: %s", var.label, res.error)
        out["variants"][var.label] = rec
    out["paired_vs_modelfsc"] = []
    names = list(maps)
    for i, (a, ra) in enumerate(maps.items()):
        out["pairwise_spearman"][a] = {}
        for b, rb in maps.items():
            both = mask & (ra > 0) & (rb > 0)
            out["pairwise_spearman"][a][b] = spearman(ra[both], rb[both])
        for b in names[i + 1:]:  # equal coverage: both methods scored on the voxels both (and modelfsc) hold
            common = mask & (ra > 0) & (maps[b] > 0)
            pa, pb = against_reference(ra, reference, common), against_reference(maps[b], reference, common)
            out["paired_vs_modelfsc"].append({
                "a": a, "b": b, "voxels": pa["n_vs_modelfsc"], "mae_a": pa["mae_vs_modelfsc_a"],
                "mae_b": pb["mae_vs_modelfsc_a"], "spearman_a": pa["spearman_modelfsc"],
                "spearman_b": pb["spearman_modelfsc"]})
    return out


def _f(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def run_realmaps(entries: list[dict], variants: list[Variant], device: str = "cpu") -> dict:
    """Compare methods on each real map of ``entries`` (dicts with ``name``, ``map``, ``model``, and
    optional ``mask`` and ``reported_resolution_a``; paths already resolved). Missing files are skipped
    with a note."""
    from pathlib import Path

    from locres.core.maps import resample_onto
    from locres.io.maps import read_map
    from locres.io.models import read_structure

    result = {"maps": {}, "skipped": {}}
    for e in entries:
        name = e["name"]
        if not Path(e["map"]).exists() or not Path(e["model"]).exists():
            result["skipped"][name] = "map or model file not found"
            continue
        log.info("real map %s", name)
        vol = read_map(e["map"])
        st = read_structure(e["model"])
        mask = None
        if e.get("mask"):
            mask = resample_onto(read_map(e["mask"], role="mask"), vol.geometry, order=1) > 0.5
        result["maps"][name] = compare_real_map(vol, st, variants, mask, e.get("reported_resolution_a"),
                                                device)
    return result
