"""Numbers that summarise a local-resolution map, the NAME.json payload and the terminal table."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PERCENTILES = (5, 25, 75, 95)


def estimated_voxels(resolution_a: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Bool (z, y, x): voxels with a finite, positive estimate (inside ``mask`` when one is given)."""
    res = np.asarray(resolution_a)
    est = np.isfinite(res) & (res > 0)
    if mask is not None:
        est &= np.asarray(mask, dtype=bool)
    return est


def resolution_stats(resolution_a: np.ndarray, mask: np.ndarray | None = None) -> dict[str, Any]:
    """Median, min, max, mean and percentiles 5/25/75/95 (Angstrom) over the estimated voxels.

    Parameters
    ----------
    resolution_a : (z, y, x) local resolution in Angstrom, 0 where not estimated.
    mask : optional bool (z, y, x); statistics are taken inside it.

    Returns
    -------
    dict with ``voxels_estimated`` and ``median_a``, ``min_a``, ``max_a``, ``mean_a``,
    ``percentiles_a`` (keys "5", "25", "75", "95"); the numbers are None when nothing was estimated.
    """
    values = np.asarray(resolution_a, dtype=np.float64)[estimated_voxels(resolution_a, mask)]
    out: dict[str, Any] = {"voxels_estimated": int(values.size)}
    if values.size == 0:
        out.update(
            median_a=None,
            min_a=None,
            max_a=None,
            mean_a=None,
            percentiles_a={str(p): None for p in PERCENTILES},
        )
        return out
    pct = np.percentile(values, PERCENTILES)
    out.update(
        median_a=float(np.median(values)),
        min_a=float(values.min()),
        max_a=float(values.max()),
        mean_a=float(values.mean()),
        percentiles_a={str(p): float(v) for p, v in zip(PERCENTILES, pct)},
    )
    return out


def histogram(
    resolution_a: np.ndarray, mask: np.ndarray | None = None, bin_a: float = 0.25
) -> dict[str, list]:
    """Histogram of the estimated values with ``bin_a``-wide bins: {"edges_a": [...], "counts": [...]}."""
    values = np.asarray(resolution_a, dtype=np.float64)[estimated_voxels(resolution_a, mask)]
    if values.size == 0:
        return {"edges_a": [], "counts": []}
    lo = math.floor(values.min() / bin_a) * bin_a
    hi = math.ceil(values.max() / bin_a) * bin_a
    if hi <= lo:
        hi = lo + bin_a
    n_bins = min(int(round((hi - lo) / bin_a)), 2000)
    counts, edges = np.histogram(values, bins=n_bins, range=(lo, hi))
    return {"edges_a": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}


def jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, paths and tuples inside ``obj`` into plain JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        if obj.size > 100_000:
            return f"<array {obj.shape} {obj.dtype}>"
        return jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    try:  # OmegaConf containers and other mappings that know how to become plain objects
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, (DictConfig, ListConfig)):
            return jsonable(OmegaConf.to_container(obj, resolve=True))
    except ImportError:  # pragma: no cover
        pass
    return str(obj)


def to_json_bytes(obj: Any) -> bytes:
    """Pretty JSON (UTF-8) of ``obj`` after :func:`jsonable`."""
    return (json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n").encode()


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def summary_table(summaries: Sequence[Mapping[str, Any]], skipped: Mapping[str, str] | None = None) -> str:
    """A plain-text table (one row per method) of the numbers in the NAME.json summaries."""
    header = ["method", "voxels", "median A", "p5 A", "p25 A", "p75 A", "p95 A", "min A", "max A", "s", "MiB"]
    rows = []
    for s in summaries:
        p = s.get("percentiles_a") or {}
        rows.append(
            [
                s["method"],
                _fmt(s.get("voxels_estimated")),
                _fmt(s.get("median_a")),
                _fmt(p.get("5")),
                _fmt(p.get("25")),
                _fmt(p.get("75")),
                _fmt(p.get("95")),
                _fmt(s.get("min_a")),
                _fmt(s.get("max_a")),
                _fmt(s.get("seconds"), 1),
                _fmt(s.get("peak_memory_mb"), 0),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        )
    for name, why in (skipped or {}).items():
        lines.append(f"{name}: skipped ({why})")
    return "\n".join(lines)
