"""Sharpening check: DeepRes on a sharpened map and on its unsharpened original.

DeepRes was trained on noise-free density low-passed to known resolutions, so it reads how a map
*looks*: B-factor sharpening makes a map read finer, blurring makes it read coarser, and
over-sharpening (amplified noise) makes large parts of the map read at the finest resolution the
model knows. The verdict compares the two histograms:

* **over-sharpened** when the sharpened map reads finer than ``global_resolution_a`` (e.g. the FSC
  resolution) by more than ``tolerance_a`` at the median, or -- without a global resolution -- when
  it piles up at the finest value the model gives (at least ``floor_fraction`` of the voxels within
  ``tolerance_a`` of the lowest value seen in either map, ``floor_fraction`` more than in the original)
  while reading finer than the original;
* **under-sharpened** when the sharpened map does not read finer than the original by more than
  ``tolerance_a`` at the median (sharpening gained nothing, or blurred), or reads coarser than
  ``global_resolution_a`` + ``tolerance_a`` when that is given;
* **ok** otherwise.

Run it as ``python infer.py method=deepres input.map=SHARP.mrc input.reference_map=ORIG.mrc
[input.mask=MASK.mrc] [sharpening.global_resolution_a=3.2]``: it writes ``sharpening.json`` and
``sharpening.png`` beside the usual DeepRes outputs of the sharpened map (``deepres.*``) and of the
original (``deepres_reference.*``).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from locres.report.summary import estimated_voxels, resolution_stats


def sharpening_check(
    resolution_sharp_a: np.ndarray,
    resolution_orig_a: np.ndarray,
    mask: np.ndarray | None = None,
    global_resolution_a: float | None = None,
    tolerance_a: float = 0.3,
    floor_fraction: float = 0.25,
) -> dict[str, Any]:
    """Compare local resolution of a sharpened map and of its original; say over/under-sharpened or ok.

    Parameters
    ----------
    resolution_sharp_a, resolution_orig_a : (z, y, x) local resolution (Angstrom, 0 = not estimated) of
        the sharpened map and of the unsharpened original, on one grid.
    mask : optional bool (z, y, x); otherwise voxels both maps estimated.
    global_resolution_a : optional global (FSC) resolution the sharpened map should read at.
    tolerance_a : how far (Angstrom) medians may differ before it counts.
    floor_fraction : fraction of voxels at the finest value that signals amplified noise.

    Returns
    -------
    dict: ``verdict`` ("over-sharpened", "under-sharpened" or "ok"), ``reason``, the medians, the
    median shift (sharpened - original, negative = reads finer), the fractions at the floor, stats.
    """
    common = estimated_voxels(resolution_sharp_a, mask) & estimated_voxels(resolution_orig_a, mask)
    if not common.any():
        raise ValueError("no voxel estimated in both maps")
    s = np.asarray(resolution_sharp_a, dtype=np.float64)[common]
    o = np.asarray(resolution_orig_a, dtype=np.float64)[common]
    med_s, med_o = float(np.median(s)), float(np.median(o))
    shift = med_s - med_o
    floor = float(min(s.min(), o.min()))
    frac_s = float(np.mean(s <= floor + tolerance_a))
    frac_o = float(np.mean(o <= floor + tolerance_a))
    piled = frac_s >= floor_fraction and frac_s - frac_o >= floor_fraction and shift < -tolerance_a
    if global_resolution_a is not None and med_s < global_resolution_a - tolerance_a:
        verdict = "over-sharpened"
        reason = (
            f"the sharpened map reads {med_s:.2f} A at the median, finer than the global resolution "
            f"{global_resolution_a:.2f} A"
        )
    elif global_resolution_a is None and piled:
        verdict = "over-sharpened"
        reason = (
            f"{100 * frac_s:.0f}% of the sharpened map reads at the finest value ({floor:.2f} A) "
            f"against {100 * frac_o:.0f}% of the original: amplified noise"
        )
    elif shift > -tolerance_a:
        verdict = "under-sharpened"
        reason = (
            f"the sharpened map reads {med_s:.2f} A at the median, not finer than the original "
            f"({med_o:.2f} A)"
        )
    elif global_resolution_a is not None and med_s > global_resolution_a + tolerance_a:
        verdict = "under-sharpened"
        reason = (
            f"the sharpened map reads {med_s:.2f} A at the median, coarser than the global "
            f"resolution {global_resolution_a:.2f} A"
        )
    else:
        verdict = "ok"
        reason = (
            f"the sharpened map reads {-shift:.2f} A finer than the original without piling up at the floor"
        )
    return {
        "verdict": verdict,
        "reason": reason,
        "median_sharpened_a": med_s,
        "median_original_a": med_o,
        "median_shift_a": shift,
        "floor_a": floor,
        "fraction_at_floor_sharpened": frac_s,
        "fraction_at_floor_original": frac_o,
        "global_resolution_a": global_resolution_a,
        "tolerance_a": tolerance_a,
        "voxels": int(common.sum()),
        "sharpened": resolution_stats(resolution_sharp_a, common),
        "original": resolution_stats(resolution_orig_a, common),
    }


def plot_sharpening(
    resolution_sharp_a: np.ndarray, resolution_orig_a: np.ndarray, check: dict, mask: np.ndarray | None = None
) -> bytes:
    """Overlaid histograms of the two maps with their medians and the verdict (PNG bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    common = estimated_voxels(resolution_sharp_a, mask) & estimated_voxels(resolution_orig_a, mask)
    s, o = resolution_sharp_a[common], resolution_orig_a[common]
    lo, hi = float(min(s.min(), o.min())), float(max(s.max(), o.max()))
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 60)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(o, bins=bins, alpha=0.55, label=f"original (median {np.median(o):.2f} A)", color="tab:gray")
    ax.hist(s, bins=bins, alpha=0.55, label=f"sharpened (median {np.median(s):.2f} A)", color="tab:blue")
    ax.axvline(np.median(o), color="k", ls=":")
    ax.axvline(np.median(s), color="tab:blue", ls="--")
    if check.get("global_resolution_a"):
        ax.axvline(check["global_resolution_a"], color="tab:red", lw=1, label="global resolution")
    ax.set_xlabel("DeepRes local resolution (A)")
    ax.set_ylabel("voxels")
    ax.set_title(f"sharpening check: {check['verdict']}", fontsize=10)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
