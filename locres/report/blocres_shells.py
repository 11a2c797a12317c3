"""Pure writers for blocres's shell (radial) mode: its profile as a text table and as a figure."""

from __future__ import annotations

import numpy as np


def format_shell_table(profile: dict) -> str:
    """The shell profile as a text table (radius in voxels and Angstrom, resolution in Angstrom)."""
    lines = [f"{'radius_vox':>10} {'radius_a':>10} {'resolution_a':>12}"]
    for rv, ra, res in zip(profile["radius_vox"], profile["radius_a"], profile["resolution_a"]):
        lines.append(f"{rv:10.1f} {ra:10.2f} {'-' if res is None else f'{res:.2f}':>12}")
    return "\n".join(lines)


def shell_profile_figure(profile: dict):
    """Matplotlib figure of resolution against radius (the caller saves it)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    res = [np.nan if v is None else v for v in profile["resolution_a"]]
    ax.plot(profile["radius_a"], res, "o-", ms=3)
    ax.set_xlabel("radius (A)")
    ax.set_ylabel(f"resolution (A) at FSC {profile['cutoff']}")
    ax.set_title(f"blocres shells, width {profile['width_vox']} voxels")
    fig.tight_layout()
    return fig
