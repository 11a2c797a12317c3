"""ChimeraX command scripts (.cxc) that colour a map's surface by a local-resolution map.

ChimeraX runs a .cxc with the script's own folder as the current directory, so the paths written
here are relative to the output folder: the folder can be moved together with the input map.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

PALETTE_COLOURS = ("blue", "cornflowerblue", "white", "gold", "red")  # fine -> coarse


def relative_path(target: str | os.PathLike, start_dir: str | os.PathLike) -> str:
    """``target`` relative to ``start_dir`` (POSIX separators); absolute when no relative path exists."""
    try:
        rel = os.path.relpath(Path(target).resolve(), Path(start_dir).resolve())
    except ValueError:  # different drives on Windows
        return Path(target).resolve().as_posix()
    return Path(rel).as_posix()


def surface_level(map_zyx: np.ndarray, mask: np.ndarray | None = None) -> float:
    """A contour level for the map: the value enclosing as many voxels as the mask holds.

    Without a mask, mean + 2 standard deviations.
    """
    data = np.asarray(map_zyx, dtype=np.float64)
    if mask is not None and np.any(mask):
        frac = float(np.count_nonzero(mask)) / data.size
        return float(np.quantile(data, 1.0 - frac))
    return float(data.mean() + 2.0 * data.std())


def palette_spec(lo_a: float, hi_a: float) -> str:
    """ChimeraX ``value,colour:value,colour...`` palette from ``lo_a`` (blue) to ``hi_a`` (red)."""
    values = np.linspace(lo_a, hi_a, len(PALETTE_COLOURS))
    return ":".join(f"{v:.2f},{c}" for v, c in zip(values, PALETTE_COLOURS))


def _quote(path: str) -> str:
    return f'"{path}"' if any(ch.isspace() for ch in path) else path


def chimerax_script(
    map_path: str,
    resolution_path: str,
    level: float,
    range_a: tuple[float, float],
    title: str = "local resolution",
) -> str:
    """Text of a .cxc that opens ``map_path`` (#1) and ``resolution_path`` (#2) and colours #1 by #2.

    Parameters
    ----------
    map_path, resolution_path : paths relative to the folder the script is saved in.
    level : contour level of the map surface (map units).
    range_a : (low, high) resolution in Angstrom spanned by the palette (blue -> red).
    """
    lo, hi = float(range_a[0]), float(range_a[1])
    if not hi > lo:
        hi = lo + 1.0
    mid = 0.5 * (lo + hi)
    lines = [
        f"# locres: {title}",
        "# Open in a fresh ChimeraX session (File > Open, or `open THIS.cxc`): the map becomes #1 and the",
        "# resolution map #2. Paths are relative to this file's folder.",
        f"open {_quote(map_path)}",
        f"open {_quote(resolution_path)}",
        "volume #2 hide",
        f"volume #1 style surface level {level:.6g}",
        f"color sample #1 map #2 palette {palette_spec(lo, hi)}",
        f"key {PALETTE_COLOURS[0]}:{lo:.1f} {PALETTE_COLOURS[1]}: {PALETTE_COLOURS[2]}:{mid:.1f} "
        f"{PALETTE_COLOURS[3]}: {PALETTE_COLOURS[4]}:{hi:.1f} pos 0.05,0.05 size 0.3,0.04",
        '2dlabels text "local resolution (A)" xpos 0.05 ypos 0.10 size 14',
        "view",
    ]
    return "\n".join(lines) + "\n"
