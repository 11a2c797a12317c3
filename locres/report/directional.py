"""Pictures of directional resolution: the directional FSC (dfsc) and MonoDir's anisotropy beside it.

Pure writers: they take a method's ``info`` dict (and arrays), return PNG bytes, and never touch disk.

- :func:`plot_dfsc`: the histogram of directional resolutions, the resolution per cone direction on an
  equal-area projection of the hemisphere, and the mean directional FSC (with its spread) beside the
  global FSC and the threshold.
- :func:`plot_monodir_with_dfsc`: MonoDir's anisotropy histogram and per-direction median resolution
  (left) next to the dfsc's histogram, per-direction resolution and FSC curves (right), for
  ``method=all`` runs that had half maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from locres.report.plots import CMAP, _png, plt


def hemisphere_projection(rot_tilt_deg: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Lambert equal-area (x, y) of directions given as (rot, tilt) in degrees; tilt 0 at the centre.

    The radius is sqrt(2) sin(tilt / 2), so the tilt-90 equator lies on the unit circle and equal solid
    angles take equal areas. Directions with tilt > 90 degrees (not used: the maps are real, a direction
    and its opposite are one) are folded onto the upper hemisphere first.
    """
    rt = np.asarray(rot_tilt_deg, dtype=np.float64).reshape(-1, 2)
    rot, tilt = np.deg2rad(rt[:, 0]), np.deg2rad(rt[:, 1])
    flip = tilt > np.pi / 2
    tilt = np.where(flip, np.pi - tilt, tilt)
    rot = np.where(flip, rot + np.pi, rot)
    r = np.sqrt(2.0) * np.sin(tilt / 2.0)
    return r * np.cos(rot), r * np.sin(rot)


def _sphere_panel(ax, rot_tilt_deg, values_a, title: str, vmin=None, vmax=None):
    x, y = hemisphere_projection(rot_tilt_deg)
    v = np.asarray(values_a, dtype=np.float64)
    sc = ax.scatter(x, y, c=v, cmap=CMAP, s=28, vmin=vmin, vmax=vmax, edgecolors="none")
    ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="0.5", lw=0.8))
    for t in (30, 60):
        ax.add_patch(plt.Circle((0, 0), np.sqrt(2) * np.sin(np.deg2rad(t) / 2), fill=False, color="0.8",
                                lw=0.6, ls=":"))
    ax.set_aspect("equal")
    ax.set_xlim(-1.08, 1.08)
    ax.set_ylim(-1.08, 1.08)
    ax.set_axis_off()
    ax.text(0, 0, "z", ha="center", va="center", fontsize=7, color="0.3")
    ax.text(1.05, 0, "x", ha="left", va="center", fontsize=7, color="0.3")
    ax.text(0, 1.05, "y", ha="center", va="bottom", fontsize=7, color="0.3")
    ax.set_title(title, fontsize=8)
    plt.colorbar(sc, ax=ax, shrink=0.8, label="resolution (A)")


def _dfsc_histogram(ax, info: Mapping) -> None:
    hist = info["histogram"]
    edges = np.asarray(hist["edges_a"], dtype=np.float64)
    ax.stairs(hist["counts"], edges, fill=True, color="tab:blue", alpha=0.8)
    ax.axvline(info["global_resolution_a"], color="k", ls="--", lw=1)
    d = info["directional_resolution_a"]
    ax.text(0.97, 0.95, f"global {info['global_resolution_a']:.2f} A\n"
            f"directions {d['min']:.2f}-{d['max']:.2f} A\nsphericity {info['sphericity']:.3f}",
            transform=ax.transAxes, ha="right", va="top", fontsize=7.5)
    ax.set_xlabel(f"directional resolution at FSC {info['threshold']:g} (A)")
    ax.set_ylabel("directions")


def _dfsc_curves(ax, info: Mapping) -> None:
    f = np.asarray(info["freq_per_a"], dtype=np.float64)
    mean = np.asarray(info["fsc_mean"], dtype=np.float64)
    sd = np.asarray(info["fsc_sd"], dtype=np.float64)
    ax.fill_between(f, mean - sd, mean + sd, color="tab:orange", alpha=0.25, lw=0,
                    label="directional FSC, mean +- sd")
    ax.plot(f, mean, color="tab:orange", lw=1.5)
    g = np.asarray(info["fsc_global"], dtype=np.float64)
    ax.plot(f[1: len(g)], g[1:], color="k", lw=1.2, label="global FSC")  # shell 0: the mean, not a test
    ax.axhline(info["threshold"], color="0.4", ls=":", lw=1)
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlabel("spatial frequency (1/A)")
    ax.set_ylabel("FSC")
    ax.legend(fontsize=7, loc="lower left")


def plot_dfsc(info: Mapping, title: str = "dfsc: directional FSC") -> bytes:
    """Histogram of directional resolutions, resolution per direction, mean directional and global FSC.

    Parameters
    ----------
    info : dict
        ``LocalResolution.info`` of :func:`locres.methods.dfsc.estimate_dfsc` (histogram, global and
        directional resolutions, ``directions_rot_tilt_deg``, ``resolution_per_direction_a``,
        ``freq_per_a``, ``fsc_mean``, ``fsc_sd``, ``fsc_global``, threshold, sphericity).
    """
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.0), gridspec_kw={"width_ratios": [1, 1.05, 1.2]})
    _dfsc_histogram(axes[0], info)
    _sphere_panel(axes[1], info["directions_rot_tilt_deg"], info["resolution_per_direction_a"],
                  "resolution per cone direction (equal-area, z at the centre)")
    _dfsc_curves(axes[2], info)
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def monodir_dfsc_summary(monodir_info: Mapping, dfsc_info: Mapping) -> dict:
    """The numbers the side-by-side figure shows, for ``monodir.json`` (key ``dfsc``)."""
    d = dfsc_info["directional_resolution_a"]
    per_dir = [v for v in monodir_info.get("direction_median_resolution_a", []) if v > 0]
    return {
        "global_resolution_a": dfsc_info["global_resolution_a"],
        "sphericity": dfsc_info["sphericity"],
        "directional_resolution_a": dict(d),
        "directional_spread_a": float(d["max"] - d["min"]),
        "monodir_median_anisotropy_a": monodir_info.get("median_anisotropy_a"),
        "monodir_direction_median_spread_a": float(max(per_dir) - min(per_dir)) if per_dir else None,
        "figure": "monodir_dfsc.png",
    }


def plot_monodir_with_dfsc(monodir_info: Mapping, anisotropy_a: np.ndarray, dfsc_info: Mapping) -> bytes:
    """MonoDir's anisotropy (left) beside the directional FSC (right), one figure.

    Parameters
    ----------
    monodir_info : dict
        MonoDir's ``info`` (``directions_rot_tilt_deg``, ``direction_median_resolution_a``,
        ``median_anisotropy_a``).
    anisotropy_a : (N,) float
        MonoDir's per-voxel anisotropy (lowest minus highest directional resolution, Angstrom) over the
        voxels it estimated.
    dfsc_info : dict
        dfsc's ``info`` (see :func:`plot_dfsc`).
    """
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.0))
    ax = axes[0, 0]
    a = np.asarray(anisotropy_a, dtype=np.float64).ravel()
    if a.size:
        ax.hist(a, bins=min(80, max(10, int(np.ptp(a) / 0.25) + 1)), color="tab:green", alpha=0.8)
        med = monodir_info.get("median_anisotropy_a")
        med = float(np.median(a)) if med is None else float(med)
        ax.axvline(med, color="k", ls="--", lw=1)
        ax.text(0.97, 0.95, f"median {med:.2f} A\n{a.size} voxels", transform=ax.transAxes, ha="right",
                va="top", fontsize=7.5)
    else:
        ax.text(0.5, 0.5, "no voxel estimated", transform=ax.transAxes, ha="center")
    ax.set_xlabel("MonoDir anisotropy per voxel: lowest - highest (A)")
    ax.set_ylabel("voxels")
    ax.set_title("MonoDir (local, monogenic)", fontsize=9)
    per_dir = np.asarray(monodir_info.get("direction_median_resolution_a", []), dtype=np.float64)
    dfsc_dirs = np.asarray(dfsc_info["resolution_per_direction_a"], dtype=np.float64)
    both = np.concatenate([per_dir[per_dir > 0], dfsc_dirs])
    lo, hi = (float(np.min(both)), float(np.max(both))) if both.size else (0.0, 1.0)
    if per_dir.size:
        ok = per_dir > 0
        _sphere_panel(axes[0, 1], np.asarray(monodir_info["directions_rot_tilt_deg"])[ok], per_dir[ok],
                      "MonoDir: median resolution per direction", lo, hi)
    else:
        axes[0, 1].set_axis_off()
    ax = axes[0, 2]
    if per_dir.size:
        tilt = np.asarray(monodir_info["directions_rot_tilt_deg"], dtype=np.float64)[:, 1]
        ok = per_dir > 0
        ax.scatter(tilt[ok], per_dir[ok], s=12, color="tab:green", label="MonoDir median per direction")
    ax.scatter(np.asarray(dfsc_info["directions_rot_tilt_deg"])[:, 1], dfsc_dirs, s=8, color="tab:orange",
               label="dfsc per cone")
    ax.set_xlabel("tilt from z (degrees)")
    ax.set_ylabel("resolution (A)")
    ax.legend(fontsize=7)
    ax.set_title("resolution against elevation", fontsize=9)
    _dfsc_histogram(axes[1, 0], dfsc_info)
    axes[1, 0].set_title("directional FSC (global, half maps)", fontsize=9)
    _sphere_panel(axes[1, 1], dfsc_info["directions_rot_tilt_deg"], dfsc_dirs,
                  "dfsc: resolution per cone direction", lo, hi)
    _dfsc_curves(axes[1, 2], dfsc_info)
    fig.suptitle("MonoDir anisotropy beside the directional (conical) FSC", fontsize=10)
    fig.tight_layout()
    return _png(fig)
