"""Pictures: a map's central slices coloured by local resolution, histograms, method comparisons.

Every function returns PNG bytes (matplotlib's Agg backend, no display needed); the caller writes them.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from locres.report.summary import estimated_voxels  # noqa: E402

CMAP = "rainbow"  # violet/blue = fine (low Angstrom), red = coarse; no near-black end to hide in the grey map
AXES = (("z", "XY plane (z = {})"), ("y", "XZ plane (y = {})"), ("x", "YZ plane (x = {})"))


def slice_centre(shape_zyx: tuple[int, int, int], mask: np.ndarray | None = None) -> tuple[int, int, int]:
    """Voxel (z, y, x) through which the three central slices pass: the mask's centroid, else the centre."""
    if mask is not None and np.any(mask):
        idx = np.argwhere(mask)
        return tuple(int(round(c)) for c in idx.mean(axis=0))
    return tuple(n // 2 for n in shape_zyx)


def _slices(vol: np.ndarray, centre: tuple[int, int, int]) -> list[np.ndarray]:
    z, y, x = centre
    return [vol[z], vol[:, y, :], vol[:, :, x]]


def colour_range(values: np.ndarray) -> tuple[float, float]:
    """Robust colour limits (2nd-98th percentile) of the estimated values, Angstrom."""
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, [2, 98]))
    if hi - lo < 1e-3:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _draw_slices(fig: Figure, axes, map_zyx, res_a, est, centre, vmin, vmax, label=None):
    gray = [s for s in _slices(map_zyx, centre)]
    g_lo, g_hi = np.percentile(map_zyx, [1, 99.5])
    im = None
    for k, (ax, g, r, e) in enumerate(zip(axes, gray, _slices(res_a, centre), _slices(est, centre))):
        ax.imshow(g, cmap="gray", vmin=g_lo, vmax=g_hi, origin="lower", interpolation="nearest")
        overlay = np.ma.masked_where(~e, r)
        im = ax.imshow(
            overlay, cmap=CMAP, vmin=vmin, vmax=vmax, origin="lower", alpha=0.75, interpolation="nearest"
        )
        title = AXES[k][1].format(centre[k])
        ax.set_title(f"{label}: {title}" if label else title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    return im


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plot_local_resolution(
    map_zyx: np.ndarray,
    resolution_a: np.ndarray,
    mask: np.ndarray | None = None,
    title: str = "",
    median_a: float | None = None,
) -> bytes:
    """Three orthogonal central slices of the map coloured by local resolution, and the histogram.

    Parameters
    ----------
    map_zyx : (z, y, x) density, shown in grey.
    resolution_a : (z, y, x) local resolution in Angstrom (0 = not estimated), overlaid in colour.
    mask : optional bool (z, y, x) restricting the overlay and the histogram.
    """
    est = estimated_voxels(resolution_a, mask)
    values = resolution_a[est]
    vmin, vmax = colour_range(values)
    centre = slice_centre(map_zyx.shape, est if est.any() else mask)
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8), gridspec_kw={"width_ratios": [1, 1, 1, 1.25]})
    im = _draw_slices(fig, axes[:3], map_zyx, resolution_a, est, centre, vmin, vmax)
    fig.colorbar(im, ax=axes[:3].tolist(), shrink=0.8, label="local resolution (A)")
    ax = axes[3]
    if values.size:
        ax.hist(values, bins=min(100, max(10, int(np.ptp(values) / 0.25) + 1)), color="tab:blue", alpha=0.8)
        med = float(np.median(values)) if median_a is None else median_a
        ax.axvline(med, color="k", ls="--", lw=1)
        ax.text(
            0.97,
            0.95,
            f"median {med:.2f} A\n{values.size} voxels",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
        )
    else:
        ax.text(0.5, 0.5, "no voxel estimated", transform=ax.transAxes, ha="center")
    ax.set_xlabel("local resolution (A)")
    ax.set_ylabel("voxels")
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


def plot_comparison(
    map_zyx: np.ndarray,
    results: Mapping[str, np.ndarray],
    mask: np.ndarray | None = None,
    notes: Sequence[str] = (),
) -> bytes:
    """Overlaid histograms of several methods (top) and their central slices side by side (one row each).

    All methods share one colour scale; ``mask`` (bool) restricts histograms and overlays when given.
    ``notes`` (e.g. the input advisories) are printed above everything, one line each.
    """
    names = list(results)
    ests = {n: estimated_voxels(results[n], mask) for n in names}
    all_values = np.concatenate([results[n][ests[n]] for n in names]) if names else np.zeros(0)
    vmin, vmax = colour_range(all_values)
    union = np.zeros(map_zyx.shape, bool)
    for e in ests.values():
        union |= e
    centre = slice_centre(map_zyx.shape, union if union.any() else mask)
    n = max(len(names), 1)
    notes = [textwrap.shorten(str(t), 170, placeholder=" ...") for t in notes]
    head_in = 0.18 * len(notes) + (0.2 if notes else 0.0)
    height = 3.2 * (n + 1) + head_in
    fig = plt.figure(figsize=(12, height))
    grid = fig.add_gridspec(n + 1, 3, hspace=0.35, top=1.0 - (head_in + 0.3) / height)
    if notes:
        fig.text(0.01, 1.0 - 0.1 / height, "input advisories:\n" + "\n".join(notes), va="top", ha="left",
                 fontsize=7.5, color="darkred")
    ax_h = fig.add_subplot(grid[0, :])
    if all_values.size:
        bins = np.linspace(min(all_values.min(), vmin), max(all_values.max(), vmax), 80)
        for name in names:
            v = results[name][ests[name]]
            if v.size:
                ax_h.hist(
                    v,
                    bins=bins,
                    histtype="step",
                    lw=1.5,
                    density=True,
                    label=f"{name} (median {np.median(v):.2f} A)",
                )
        ax_h.legend(fontsize=8)
    ax_h.set_xlabel("local resolution (A)")
    ax_h.set_ylabel("density")
    im = None
    for row, name in enumerate(names, start=1):
        axes = [fig.add_subplot(grid[row, k]) for k in range(3)]
        im = _draw_slices(fig, axes, map_zyx, results[name], ests[name], centre, vmin, vmax, label=name)
    if im is not None:
        fig.colorbar(im, ax=fig.axes[1:], shrink=0.6, label="local resolution (A)")
    return _png(fig)
