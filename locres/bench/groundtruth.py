"""Ground-truth benchmark: phantoms with known, spatially varying local resolution.

Each case simulates the density of a (test-split) atomic model at a voxel size, turns it into a phantom
whose true local resolution is known at every voxel (:func:`locres.simulate.phantom.make_phantom`),
optionally sharpens the noisy maps with a global B-factor (the truth does not change), and runs every
method variant on it: single-map variants get ``phantom.map``, half-map variants ``phantom.half1`` and
``phantom.half2``. Every variant gets the phantom's mask. Scores are taken over mask voxels and reported
per true-resolution bin.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from locres.bench.common import RunOutcome, Variant, inputs_for, run_variant
from locres.errors import LocresError

log = logging.getLogger(__name__)

RESOLUTION_BINS_A = ((2.0, 4.0), (4.0, 6.0), (6.0, 9.0), (9.0, 15.0))
GOAL_RANGE_A = (2.5, 12.0)
SYNTHETIC = "synthetic"  # models_dir / model path meaning "pseudo-atom phantoms, no atomic model"


# --------------------------------------------------------------------------------------------- metrics
def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D samples; NaN with fewer than 3 values or a constant one."""
    a, b = np.ravel(a), np.ravel(b)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def error_metrics(pred_a: np.ndarray, truth_a: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Scores of a local-resolution estimate against the truth over ``mask`` voxels.

    Parameters
    ----------
    pred_a, truth_a : arrays of one shape, Angstrom; ``pred_a`` holds 0 (or less) where not estimated.
    mask : bool array of that shape, or None for every voxel.

    Returns
    -------
    dict with ``mae_a`` (mean |pred - truth| over estimated voxels), ``bias_a`` (median of pred - truth),
    ``spearman``, ``coverage`` (estimated fraction of the mask), ``n_mask`` and ``n_estimated``.
    """
    pred_a, truth_a = np.asarray(pred_a, dtype=np.float64), np.asarray(truth_a, dtype=np.float64)
    if pred_a.shape != truth_a.shape:
        raise ValueError(f"prediction {pred_a.shape} and truth {truth_a.shape} differ in shape")
    sel = np.ones(pred_a.shape, bool) if mask is None else np.asarray(mask, bool)
    p_all, t_all = pred_a[sel], truth_a[sel]
    est = np.isfinite(p_all) & (p_all > 0)
    p, t = p_all[est], t_all[est]
    n_mask, n_est = int(p_all.size), int(est.sum())
    out = {"n_mask": n_mask, "n_estimated": n_est, "coverage": n_est / n_mask if n_mask else float("nan")}
    if n_est == 0:
        out.update(mae_a=float("nan"), bias_a=float("nan"), spearman=float("nan"))
        return out
    err = p - t
    out.update(mae_a=float(np.mean(np.abs(err))), bias_a=float(np.median(err)), spearman=spearman(p, t))
    return out


def bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}"


def binned_metrics(pred_a: np.ndarray, truth_a: np.ndarray, mask: np.ndarray | None = None,
                   bins_a=RESOLUTION_BINS_A, goal_range_a=GOAL_RANGE_A) -> dict:
    """:func:`error_metrics` per true-resolution bin (``lo <= truth < hi``), over all and the goal range."""
    truth_a = np.asarray(truth_a)
    base = np.ones(truth_a.shape, bool) if mask is None else np.asarray(mask, bool)
    out = {"all": error_metrics(pred_a, truth_a, base)}
    lo, hi = goal_range_a
    in_goal = base & (truth_a >= lo) & (truth_a <= hi)
    out[f"goal {bin_label(lo, hi)}"] = error_metrics(pred_a, truth_a, in_goal)
    for lo, hi in bins_a:
        out[bin_label(lo, hi)] = error_metrics(pred_a, truth_a, base & (truth_a >= lo) & (truth_a < hi))
    return out


def case_bin(truth_a: np.ndarray, mask: np.ndarray, bins_a=RESOLUTION_BINS_A) -> str | None:
    """The bin holding a case's median true resolution (to file its seconds and memory under)."""
    med = float(np.median(truth_a[mask])) if mask.any() else float("nan")
    for lo, hi in bins_a:
        if lo <= med < hi:
            return bin_label(lo, hi)
    return None


# ----------------------------------------------------------------------------------------------- cases
@dataclass
class CaseSpec:
    """One phantom: an atomic model at a voxel size, a true-resolution range, an SNR and a sharpening B."""

    entry: str
    model_path: str
    voxel_size_a: float
    resolution_range_a: tuple[float, float]
    snr: float = 2.0
    sharpen_b_a2: float = 0.0
    pattern: str = "radial"
    seed: int = 0
    max_box: int = 64
    padding_a: float = 8.0

    @property
    def name(self) -> str:
        lo, hi = self.resolution_range_a
        s = f"{self.entry}_v{self.voxel_size_a:g}_r{lo:g}-{hi:g}_snr{self.snr:g}"
        return s + (f"_B{self.sharpen_b_a2:+g}" if self.sharpen_b_a2 else "")


def hash_split(entry: str, fractions=(0.8, 0.1, 0.1)) -> str:
    """A fixed split by entry id (stand-in while ``locres.data.splits`` is absent)."""
    u = int(hashlib.sha1(entry.lower().encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def test_entries(models_dir: str | Path) -> tuple[list[tuple[str, Path]], str]:
    """(entry id, path) of the test-split models in ``models_dir`` and the split's source."""
    from locres.io.models import entry_id, is_model_file

    if str(models_dir) == SYNTHETIC:
        return [(SYNTHETIC, Path(SYNTHETIC))], "synthetic phantoms (no atomic model)"
    if not Path(models_dir).is_dir():
        raise LocresError(f"models folder not found: {models_dir}; set groundtruth.models_dir "
                          "(or shared_data)")
    files = sorted(p for p in Path(models_dir).iterdir() if is_model_file(p))
    if not files:
        raise LocresError(f"no atomic models in {models_dir}: set groundtruth.models_dir to a folder "
                          "of PDB/mmCIF files (or to 'synthetic')")
    split_of, source = None, "hash split (locres.data.splits absent)"
    try:
        from locres.data import splits as _splits

        for fn_name in ("split_of", "split_for_entry", "assign_split", "entry_split"):
            if hasattr(_splits, fn_name):
                split_of, source = getattr(_splits, fn_name), f"locres.data.splits.{fn_name}"
                break
    except ImportError:
        pass
    split_of = split_of or hash_split
    return [(entry_id(p), p) for p in files if str(split_of(entry_id(p))) == "test"], source


def _cropped_structure(structure, radius_a: float):
    """A copy of ``structure`` keeping residues whose centre is within ``radius_a`` of its densest atom."""
    xyz = np.array([cra.atom.pos.tolist() for cra in structure[0].all()])
    centre = xyz.mean(axis=0)
    centre = xyz[np.argmin(np.linalg.norm(xyz - centre, axis=1))]
    st = structure.clone()
    for chain in st[0]:
        for i in range(len(chain) - 1, -1, -1):
            res_xyz = np.array([a.pos.tolist() for a in chain[i]])
            if res_xyz.size == 0 or np.linalg.norm(res_xyz.mean(axis=0) - centre) > radius_a:
                del chain[i]
    st.remove_empty_chains()
    return st


def build_case(spec: CaseSpec):
    """Simulate the phantom of one case; returns ``(phantom, map, half1, half2)`` (sharpened if asked)."""
    from locres.core.fourier import sharpen
    from locres.io.models import read_structure
    from locres.simulate.density import model_extent_a, simulate_map_centered
    from locres.simulate.phantom import make_phantom, make_synthetic_phantom

    v = float(spec.voxel_size_a)
    lo, hi = spec.resolution_range_a
    if lo < 2.0 * v:
        raise LocresError(f"case {spec.name}: finest resolution {lo} A is beyond Nyquist (2 x {v} A)")
    if spec.model_path == SYNTHETIC:
        n = spec.max_box
        ph = make_synthetic_phantom((n, n, n), v, resolution_range_a=(lo, hi), pattern=spec.pattern,
                                    snr=spec.snr, seed=spec.seed)
    else:
        st = read_structure(spec.model_path)
        half_box_a = spec.max_box * v / 2
        st = _cropped_structure(st, max(half_box_a - spec.padding_a, 4.0))
        mn, mx = model_extent_a(st)
        n = int(np.ceil((float(np.max(mx - mn)) + 2 * spec.padding_a) / v))
        n = min(spec.max_box, n + n % 2)
        density = simulate_map_centered(st, v, shape_zyx=(n, n, n)).data
        ph = make_phantom(density, v, resolution_range_a=(lo, hi), pattern=spec.pattern, snr=spec.snr,
                          seed=spec.seed)
    maps = [ph.map, ph.half1, ph.half2]
    if spec.sharpen_b_a2:
        maps = [sharpen(m, v, spec.sharpen_b_a2) for m in maps]
    return ph, *maps


def cases_from_config(models: list[tuple[str, Path]], cases: list[dict] | None = None,
                      grid: dict | None = None, cross_models: bool = False, **common) -> list[CaseSpec]:
    """Case specs from an explicit list and/or a grid (voxel sizes x ranges x SNRs x sharpening B).

    Models are used in turn (case i gets model i mod n), or every model for every case with
    ``cross_models``. Grid points whose finest resolution is beyond Nyquist are left out.
    ``common`` holds CaseSpec fields shared by all cases (pattern, max_box, padding_a, seed).
    """
    if not models:
        raise LocresError("no test-split models to build phantoms from: list some in groundtruth.models")
    points = [dict(c) for c in cases or []]
    if grid:
        for v in grid["voxel_sizes_a"]:
            for rr in grid["resolution_ranges_a"]:
                for snr in grid["snrs"]:
                    for b in grid.get("sharpen_b_a2", [0.0]):
                        if rr[0] >= 2.0 * v:
                            points.append({"voxel_size_a": v, "resolution_range_a": rr, "snr": snr,
                                           "sharpen_b_a2": b})
    specs = []
    for i, p in enumerate(points):
        chosen = models if cross_models else [models[i % len(models)]]
        for entry, path in chosen:
            kw = {**common, **p}
            kw["resolution_range_a"] = tuple(float(x) for x in kw["resolution_range_a"])
            kw.setdefault("seed", 0)
            kw["seed"] = int(kw["seed"]) + i
            specs.append(CaseSpec(entry=entry, model_path=str(path), **kw))
    return specs


# --------------------------------------------------------------------------------------------- running
def run_groundtruth(specs: list[CaseSpec], variants: list[Variant], device: str = "cpu",
                    error_map_cases: int = 1) -> dict:
    """Run every variant on every case; returns per-case and pooled per-bin results.

    Failures (a method that is missing or raises) are recorded per case; the failed case's mask voxels
    then count as not estimated in the pooled coverage.
    """
    pooled = {v.label: {"pred": [], "truth": []} for v in variants}
    timing = {v.label: [] for v in variants}
    cases, slices = [], []
    for ci, spec in enumerate(specs):
        log.info("case %d/%d: %s", ci + 1, len(specs), spec.name)
        try:
            ph, single, h1, h2 = build_case(spec)
        except Exception as exc:
            log.warning("case %s could not be built: %s", spec.name, exc)
            cases.append({"spec": asdict(spec), "name": spec.name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        mask, truth = np.asarray(ph.mask, bool), np.asarray(ph.truth_a, np.float32)
        cbin = case_bin(truth, mask)
        entry = {"spec": asdict(spec), "name": spec.name, "shape_zyx": list(truth.shape),
                 "mask_voxels": int(mask.sum()), "truth_median_a": float(np.median(truth[mask])),
                 "bin": cbin, "methods": {}}
        zc = int(np.argmax(mask.sum(axis=(1, 2))))
        slice_entry = {"name": spec.name, "truth": np.where(mask[zc], truth[zc], np.nan), "errors": {}}
        for var in variants:
            if var.max_cases is not None and ci >= var.max_cases:
                entry["methods"][var.label] = {"input": var.input, "skipped": f"max_cases={var.max_cases}",
                                               "error": None}
                continue
            inputs = inputs_for(var, spec.voxel_size_a, single, h1, h2, mask, device)
            out: RunOutcome = run_variant(var, inputs)
            rec = {"input": var.input, "seconds": round(out.seconds, 3), "peak_mb": round(out.peak_mb, 1),
                   "error": out.error}
            pred = out.resolution_a if out.resolution_a is not None else np.zeros_like(truth)
            if out.error is None:
                rec["metrics"] = binned_metrics(pred, truth, mask)
                timing[var.label].append((cbin, out.seconds, out.peak_mb))
                slice_entry["errors"][var.label] = np.where(mask[zc] & (pred[zc] > 0), pred[zc] - truth[zc],
                                                            np.nan)
            entry["methods"][var.label] = rec
            pooled[var.label]["pred"].append(pred[mask])
            pooled[var.label]["truth"].append(truth[mask])
            log.info("  %-16s %s", var.label, out.error or
                     f"MAE {rec['metrics']['all']['mae_a']:.2f} A, {out.seconds:.1f} s, {out.peak_mb:.0f} MB")
        cases.append(entry)
        if len(slices) < error_map_cases:
            slices.append(slice_entry)
    summary = {}
    for var in variants:
        p, t = pooled[var.label]["pred"], pooled[var.label]["truth"]
        metrics = binned_metrics(np.concatenate(p), np.concatenate(t)) if p else {}
        rows = timing[var.label]
        per_bin_time = {}
        for lo, hi in RESOLUTION_BINS_A:
            sel = [(s, m) for b, s, m in rows if b == bin_label(lo, hi)]
            per_bin_time[bin_label(lo, hi)] = {
                "seconds_median": float(np.median([s for s, _ in sel])) if sel else None,
                "peak_mb_max": float(max(m for _, m in sel)) if sel else None, "n_cases": len(sel)}
        errors = sorted({c["methods"][var.label]["error"] for c in cases
                         if "methods" in c and c["methods"][var.label]["error"]})
        skipped = sum(1 for c in cases if "methods" in c and c["methods"][var.label].get("skipped"))
        summary[var.label] = {
            "method": var.method, "input": var.input, "params": dict(var.params), "output": var.output,
            "n_cases": len(p), "n_cases_ok": len(rows), "n_cases_skipped": skipped, "errors": errors,
            "metrics": metrics,
            "seconds_median": float(np.median([s for _, s, _ in rows])) if rows else None,
            "seconds_total": float(sum(s for _, s, _ in rows)),
            "peak_mb_max": float(max(m for _, _, m in rows)) if rows else None,
            "per_bin_time": per_bin_time,
        }
    return {"cases": cases, "summary": summary, "equal_coverage": equal_coverage(pooled, variants),
            "_pooled": pooled, "_slices": slices}


def equal_coverage(pooled: dict, variants: list[Variant]) -> dict:
    """Single-map against half-map variants of one method over the voxels both estimated.

    For every method with a ``map`` and a ``halves`` variant (the first single-map variant against each
    half-map one) that ran on the same cases (pooled mask
    voxels aligned, 0 = not estimated), the scores of each over their common voxels, so that a mode
    that estimates more (harder) voxels is not judged on a different set. Keyed
    ``"<single label> vs <halves label>"``.
    """
    by_method: dict[str, dict[str, list[str]]] = {}
    for v in variants:
        by_method.setdefault(v.method, {}).setdefault(v.input, []).append(v.label)
    pairs = [(a, b) for labels in by_method.values() for a in labels.get("map", [])[:1]
             for b in labels.get("halves", [])]
    out = {}
    for a, b in pairs:
        pa, pb = pooled[a]["pred"], pooled[b]["pred"]
        if not pa or len(pa) != len(pb) or any(x.shape != y.shape for x, y in zip(pa, pb)):
            continue
        pa, pb, t = np.concatenate(pa), np.concatenate(pb), np.concatenate(pooled[a]["truth"])
        common = (pa > 0) & (pb > 0) & np.isfinite(pa) & np.isfinite(pb)
        entry = {"single": a, "halves": b, "n_mask": int(t.size), "n_common": int(common.sum()),
                 "common_coverage": float(common.mean()) if t.size else float("nan"),
                 "only_single": int(((pa > 0) & ~common).sum()),
                 "only_halves": int(((pb > 0) & ~common).sum())}
        for key, p in (("single_metrics", pa), ("halves_metrics", pb)):
            entry[key] = error_metrics(np.where(common, p, 0.0), t, common)
        out[f"{a} vs {b}"] = entry
    return out
