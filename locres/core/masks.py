"""Molecular masks: pure array functions shared by the simulators and the methods.

Two kinds of "automatic mask" exist in locres and they mean different things:

- :func:`envelope_mask` is the envelope of a **noise-free** density (a simulated map): blur to a
  resolution and keep what exceeds a fraction of the maximum. Used by the training-data simulator.
- the methods' automatic masks (``methods/deepres.py``, ``methods/monores.py``) make a mask from a
  **noisy experimental** map, where a threshold must first be found above the noise; each method keeps
  its own threshold rule (they reproduce different published tools), and they share the clean-up
  :func:`tidy_mask` (largest components, holes filled, dilation).

Never touches disk.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from locres.core.fourier import lowpass_gaussian


def envelope_mask(density: np.ndarray, voxel_size_a: float, resolution_a: float,
                  fraction: float) -> np.ndarray:
    """Bool (z, y, x) envelope of a noise-free density.

    Parameters
    ----------
    density : (z, y, x) array, non-negative where the molecule is.
    voxel_size_a : Angstrom per voxel.
    resolution_a : Gaussian low pass (amplitude exp(-1) at 1/resolution_a, :func:`lowpass_gaussian`).
    fraction : threshold as a fraction of the blurred map's maximum.

    Returns
    -------
    (z, y, x) bool; all False when the density has no positive maximum (the caller decides).
    """
    smooth = lowpass_gaussian(density, voxel_size_a, resolution_a)
    top = float(smooth.max())
    if not top > 0:
        return np.zeros(density.shape, dtype=bool)
    return smooth > fraction * top


def tidy_mask(mask: np.ndarray, min_component_fraction: float = 0.05, dilate_vox: int = 0) -> np.ndarray:
    """Drop small specks, fill holes and dilate a thresholded mask.

    Parameters
    ----------
    mask : (z, y, x) bool, a thresholded map.
    min_component_fraction : connected components smaller than this fraction of the largest are dropped.
    dilate_vox : binary dilation by this many voxels (6-connected steps).

    Returns
    -------
    (z, y, x) bool; all False when ``mask`` is empty.
    """
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= min_component_fraction * sizes.max()) + 1
    out = ndimage.binary_fill_holes(np.isin(labels, keep))
    if dilate_vox > 0:
        out = ndimage.binary_dilation(out, iterations=int(dilate_vox))
    return out
