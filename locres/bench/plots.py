"""Benchmark figures: predicted against true resolution, error maps, and the sharpening study."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int, ncols: int = 4) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return (n + ncols - 1) // ncols, ncols


def plot_pred_vs_true(pooled: dict, path: str | Path, range_a=(2.0, 15.0)) -> None:
    """A 2-D histogram of estimated against true resolution per variant (estimated mask voxels, pooled)."""
    plt = _plt()
    labels = [k for k, v in pooled.items() if v["pred"]]
    if not labels:
        return
    nr, nc = _grid(len(labels))
    fig, axes = plt.subplots(nr, nc, figsize=(3.2 * nc, 3.0 * nr), squeeze=False)
    edges = np.linspace(range_a[0], range_a[1], 60)
    for ax, label in zip(axes.flat, labels):
        p = np.concatenate(pooled[label]["pred"])
        t = np.concatenate(pooled[label]["truth"])
        ok = p > 0
        ax.hist2d(t[ok], np.clip(p[ok], edges[0], edges[-1]), bins=[edges, edges], cmap="viridis", cmin=1)
        ax.plot(range_a, range_a, "r--", lw=1)
        ax.set_title(f"{label} ({ok.mean():.0%} est.)", fontsize=9)
        ax.set_xlabel("true resolution (A)", fontsize=8)
        ax.set_ylabel("estimated (A)", fontsize=8)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_error_maps(slices: list[dict], path: str | Path, limit_a: float = 4.0) -> None:
    """Per case: the true resolution on the busiest z section, then estimate minus truth per variant."""
    plt = _plt()
    if not slices:
        return
    labels = sorted({k for s in slices for k in s["errors"]})
    ncols = 1 + len(labels)
    fig, axes = plt.subplots(len(slices), ncols, figsize=(2.6 * ncols, 2.6 * len(slices)), squeeze=False)
    for row, s in zip(axes, slices):
        im = row[0].imshow(s["truth"], cmap="turbo", origin="lower")
        row[0].set_title(f"truth (A)\n{s['name']}", fontsize=7)
        fig.colorbar(im, ax=row[0], fraction=0.046)
        for ax, label in zip(row[1:], labels):
            err = s["errors"].get(label)
            if err is None:
                ax.text(0.5, 0.5, "failed or not run", ha="center", transform=ax.transAxes, fontsize=7)
            else:
                im = ax.imshow(err, cmap="RdBu_r", vmin=-limit_a, vmax=limit_a, origin="lower")
            ax.set_title(f"{label}\nestimate - truth (A)", fontsize=7)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sharpening(study: dict, path: str | Path) -> None:
    """Median estimate in the mask against the sharpening B, one line per variant, truth dashed."""
    plt = _plt()
    bs = study["b_factors_a2"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, s in study["variants"].items():
        med = [np.nan if m is None else m for m in s["median_a"]]
        ax.plot(bs, med, "o-", label=label)
    ax.axhline(study["truth_median_a"], color="k", ls="--", lw=1, label="truth")
    ax.set_xlabel("sharpening B (A^2; > 0 sharpens)")
    ax.set_ylabel("median estimate in mask (A)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
