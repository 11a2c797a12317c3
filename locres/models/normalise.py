"""The one normalisation applied to whole maps before boxes are cut, at training and inference alike.

A map and the same map multiplied by any positive factor, shifted by any constant, or with its
contrast inverted give the same standardised map (up to float rounding). No absolute density
threshold is involved anywhere.
"""

from __future__ import annotations

import logging

import numpy as np

from locres.errors import LocresError

log = logging.getLogger(__name__)

_SCALE_PERCENTILE = 99.0
_MIN_SOLVENT_FRACTION = 0.01


def robust_centre_scale(volume: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """Robust background level and density scale of a map.

    Parameters
    ----------
    volume : (z, y, x) array
        The map, any units.
    mask : (z, y, x) bool array, optional
        Where the molecule is. When given (and at least 1 % of the map lies outside it) the centre is
        the median of the solvent outside the mask; otherwise the median of the whole map (the solvent
        level for a map that is mostly solvent).

    Returns
    -------
    centre, scale : float
        ``scale`` is the 99th percentile of ``|volume - centre|`` over the whole map (falls back to
        the maximum when that is zero, e.g. a mostly-zero masked map).
    """
    v = np.asarray(volume)
    if v.ndim != 3 or v.size == 0:
        raise LocresError(f"expected a non-empty 3D map, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise LocresError("the map contains NaN or infinite values: fix or re-export the map")
    solvent = None
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != v.shape:
            raise LocresError(f"mask shape {m.shape} differs from the map's {v.shape}")
        if (~m).sum() >= _MIN_SOLVENT_FRACTION * v.size:
            solvent = v[~m]
    centre = float(np.median(solvent if solvent is not None else v))
    dev = np.abs(v.astype(np.float64) - centre)
    scale = float(np.percentile(dev, _SCALE_PERCENTILE))
    if not scale > 0:
        scale = float(dev.max())
    if not scale > 0:
        raise LocresError("the map is constant: there is nothing to estimate")
    return centre, scale


def density_sign(volume: np.ndarray, centre: float, mask: np.ndarray | None = None) -> float:
    """+1 when density is brighter than the background, -1 for inverted contrast.

    With a mask: the sign of the mean of ``volume - centre`` inside it. Without: the sign of the
    third central moment about ``centre`` (a molecule in solvent makes a heavy tail on its side).
    """
    d = np.asarray(volume, dtype=np.float64) - centre
    if mask is not None and np.any(mask):
        s = float(d[np.asarray(mask, dtype=bool)].mean())
    else:
        s = float(np.mean(d**3))
    return -1.0 if s < 0 else 1.0


def standardise_map(volume: np.ndarray, mask: np.ndarray | None = None, fix_sign: bool = True) -> np.ndarray:
    """Subtract the robust background level, divide by the robust density scale, make density positive.

    Parameters
    ----------
    volume : (z, y, x) array
        The map (any units, any offset).
    mask : (z, y, x) bool array, optional
        Where the molecule is (see :func:`robust_centre_scale`).
    fix_sign : bool
        Flip maps whose density is darker than the background (see :func:`density_sign`).

    Returns
    -------
    (z, y, x) float32
        ``sign * (volume - centre) / scale``: background near 0, strong density near 1.
    """
    centre, scale = robust_centre_scale(volume, mask)
    sign = density_sign(volume, centre, mask) if fix_sign else 1.0
    if sign < 0:
        log.info("map contrast looks inverted (density below background): flipping its sign")
    out = (np.asarray(volume, dtype=np.float64) - centre) * (sign / scale)
    return out.astype(np.float32)

