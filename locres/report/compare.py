"""Comparison of several local-resolution maps of the same input (compare.json)."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats

from locres.report.summary import estimated_voxels, resolution_stats


def common_mask(results: Mapping[str, np.ndarray], mask: np.ndarray | None = None) -> np.ndarray:
    """Bool (z, y, x): voxels every method estimated (and inside ``mask`` when given)."""
    names = list(results)
    if not names:
        raise ValueError("no maps to compare")
    out = estimated_voxels(results[names[0]], mask)
    for name in names[1:]:
        out &= estimated_voxels(results[name], mask)
    return out


def _correlations(a: np.ndarray, b: np.ndarray) -> tuple[float | None, float | None]:
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None, None  # correlation undefined for constant maps
    pearson = float(np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1])
    spearman = float(stats.spearmanr(a, b).statistic)
    return pearson, spearman


def compare_maps(results: Mapping[str, np.ndarray], mask: np.ndarray | None = None) -> dict[str, Any]:
    """Per-method statistics and pairwise agreement inside the common mask.

    Parameters
    ----------
    results : method name -> (z, y, x) local resolution in Angstrom (0 = not estimated), one grid.
    mask : optional bool (z, y, x); the comparison is restricted to it.

    Returns
    -------
    dict with ``common_voxels``, ``methods`` (name -> stats over its own estimated voxels and over the
    common voxels) and ``pairs`` (list of {a, b, pearson, spearman, median_difference_a,
    mean_abs_difference_a}). Correlations are None when a map is constant on the common voxels.
    """
    common = common_mask(results, mask)
    out: dict[str, Any] = {"common_voxels": int(common.sum()), "methods": {}, "pairs": []}
    for name, res in results.items():
        out["methods"][name] = {"own": resolution_stats(res, mask), "common": resolution_stats(res, common)}
    for a, b in combinations(results, 2):
        va, vb = results[a][common], results[b][common]
        pearson, spearman = _correlations(va, vb)
        diff = (va.astype(np.float64) - vb) if va.size else np.zeros(0)
        out["pairs"].append(
            {
                "a": a,
                "b": b,
                "pearson": pearson,
                "spearman": spearman,
                "median_difference_a": float(np.median(diff)) if diff.size else None,
                "mean_abs_difference_a": float(np.abs(diff).mean()) if diff.size else None,
            }
        )
    return out
