"""The learned models' target: where the *expected* local half-map FSC falls below a threshold.

Pure numerics (``../shared/specs/fsc_target.md``). Two half maps ``h = s + n`` with independent noise
of equal power: in a shell of frequency f, with signal power ``S(f)`` and noise power ``N(f)`` per half
map, both per unit volume, the expected FSC is ``S / (S + N)``. Locally, at voxel x, the simulator
knows what it did to the signal there, a transfer ``H_x(f)`` (a raised-cosine cut, a B-factor envelope,
or a blend of two neighbouring rungs of a ladder of them), so ``S_x(f) = P(f) |H_x(f)|^2`` with ``P``
the clean density's power spectrum per unit of molecular volume. The truth at x is ``1 / f*``, the
first frequency (scanning up from the lowest non-zero shell) at which ``S_x / (S_x + N) < t``;
Nyquist when it never does.

A global isotropic filter multiplies S and N alike, so it is left out on purpose: a sharpened or
blurred map keeps the truth of the unfiltered one.

Blends are handled exactly on a ladder: voxel x sits at fractional position ``p(x)`` between rungs
``k = floor(p)`` and ``k + 1`` with weight ``t = p - k``, its transfer is ``(1 - t) H_k + t H_{k+1}``,
and :func:`crossing_table_a` tabulates the crossing of that blend on a fine grid of ``t`` for every
pair of rungs, so :func:`truth_from_ladder_position_a` only interpolates a table.
"""

from __future__ import annotations

import numpy as np

from locres.core.fourier import (
    resolution_at_threshold,
    rfft_weights,
    shell_index,
    shell_sums,
    shell_width_per_a,
)
from locres.errors import LocresError

DEFAULT_THRESHOLD = 0.143


def shell_power_per_voxel(
    volume: np.ndarray, voxel_size_a: float, n_voxels: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrum of ``volume`` per shell and per voxel of volume ``n_voxels``.

    Parameters
    ----------
    volume : (z, y, x) array (e.g. the clean density times the molecular mask).
    voxel_size_a : Angstrom.
    n_voxels : the volume the power is spread over (the mask's voxel count for a masked density);
        defaults to the whole box.

    Returns
    -------
    freq_per_a : (n_shells,) shell centres in 1/Angstrom (0 to Nyquist).
    power : (n_shells,) mean ``|F|^2`` over the shell's coefficients divided by ``n_voxels``; for white
        noise of variance s^2 this is s^2 in every shell.
    """
    vol = np.asarray(volume, dtype=np.float64)
    idx, n_shells = shell_index(vol.shape, voxel_size_a)
    w = rfft_weights(vol.shape)
    spec = np.abs(np.fft.rfftn(vol)) ** 2
    counts = shell_sums(np.ones(idx.shape), idx, n_shells, w)
    power = shell_sums(spec, idx, n_shells, w) / np.maximum(counts, 1.0)
    n = float(n_voxels) if n_voxels is not None else float(vol.size)
    if not n > 0:
        raise LocresError("the signal volume is empty: cannot compute its power spectrum")
    freq = np.arange(n_shells) * shell_width_per_a(vol.shape, voxel_size_a)
    return freq, power / n


def expected_fsc(signal_power: np.ndarray, noise_power: np.ndarray) -> np.ndarray:
    """``S / (S + N)`` per shell (0 where both vanish)."""
    s = np.asarray(signal_power, dtype=np.float64)
    total = s + np.asarray(noise_power, dtype=np.float64)
    return np.divide(s, total, out=np.zeros_like(total), where=total > 0)


def fsc_crossing_a(
    freq_per_a: np.ndarray,
    signal_power: np.ndarray,
    noise_power: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
) -> float:
    """Resolution (Angstrom) where the expected FSC first falls below ``threshold`` (Nyquist if never)."""
    return resolution_at_threshold(freq_per_a, expected_fsc(signal_power, noise_power), threshold)


def crossing_table_a(
    freq_per_a: np.ndarray,
    clean_power: np.ndarray,
    noise_power: np.ndarray,
    transfers: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    n_steps: int = 33,
) -> np.ndarray:
    """Expected-FSC crossing of every blend of neighbouring ladder rungs.

    Parameters
    ----------
    freq_per_a, clean_power, noise_power : (n_shells,) from :func:`shell_power_per_voxel`.
    transfers : (K, n_shells) radial transfer of each rung (amplitude, not power).
    n_steps : blend weights ``t = linspace(0, 1, n_steps)`` per pair of rungs.

    Returns
    -------
    (K - 1, n_steps) resolutions in Angstrom; row k holds ``(1 - t) H_k + t H_{k+1}``. A one-rung ladder
    gives a (1, n_steps) table of its single value.
    """
    h = np.asarray(transfers, dtype=np.float64)
    if h.ndim != 2 or h.shape[1] != len(freq_per_a):
        raise LocresError(f"transfers must be (K, {len(freq_per_a)}), got {h.shape}")
    if len(h) == 1:
        h = np.concatenate([h, h])
    t = np.linspace(0.0, 1.0, n_steps)
    table = np.empty((len(h) - 1, n_steps))
    for k in range(len(h) - 1):
        for j, tj in enumerate(t):
            blend = (1.0 - tj) * h[k] + tj * h[k + 1]
            table[k, j] = fsc_crossing_a(freq_per_a, clean_power * blend**2, noise_power, threshold)
    return table


def truth_from_ladder_position_a(position: np.ndarray, table_a: np.ndarray) -> np.ndarray:
    """Look up the truth (Angstrom) of every voxel from its fractional ladder position.

    ``position`` in [0, K - 1] (K rungs); ``table_a`` from :func:`crossing_table_a`. Interpolation is
    linear in frequency (1 / resolution) between the tabulated blend weights.
    """
    n_pairs, n_steps = table_a.shape
    p = np.clip(np.asarray(position, dtype=np.float64), 0.0, float(n_pairs))
    k = np.minimum(np.floor(p).astype(np.int64), n_pairs - 1)
    u = (p - k) * (n_steps - 1)
    j = np.minimum(np.floor(u).astype(np.int64), n_steps - 2)
    frac = u - j
    inv = 1.0 / table_a
    f = (1.0 - frac) * inv[k, j] + frac * inv[k, j + 1]
    return (1.0 / f).astype(np.float32)
