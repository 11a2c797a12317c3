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

The signal is also local in amount: a voxel at the molecule's thin periphery, or in a loop among
solvent, has less density around it than one in a packed core, so a local FSC there sees a lower SSNR
at the same filter. :func:`local_signal_fraction` measures that from the clean density: ``rho(x)``, the
clean density's power finer than 10 A (the atoms, not the molecular envelope) averaged in a Gaussian
window around x, against its mean over the molecule (the normalisation of ``P``); the local signal
spectrum is then ``rho(x) P(f) |H_x(f)|^2``. This keeps ``P``'s shape and scales its level, which is the
first-order effect (how much molecule the window holds); a window of 0 leaves ``rho = 1`` everywhere
(the first DeepRes 2 models' target, ``../shared/specs/fsc_target.md`` as written, which takes ``P``
over the whole molecule).

The filter is local in the same sense: a local FSC is measured in a window, and where the local filter
changes within it, the window holds the signal of every filter it covers. So the local signal spectrum
is taken over the same Gaussian window as ``rho`` (``transfer_window_a``, 5 A):
``S_x(f) = rho(x) P(f) (G * |H|^2)(x, f)``, the window-weighted mean of the transfers' power around x
(:func:`windowed_ladder_truth_a`). ``../shared/specs/fsc_target.md`` writes ``H_x``, the transfer at x
alone; the two agree wherever the filter is uniform over a window (a uniform field, a sharp cut with
enough signal still reads the cut), and differ beside a change of filter, where the voxel's own filter
is something no local FSC can see: next to a finer region a coarse voxel's window holds the finer
signal and reads finer. Without the window (``transfer_window_a = 0``, the models shipped before
2026-12-07) the validation phantoms' sharp-cut cases read 0.87 A finer than the truth even in the
noise-free expected local FSC (``locres.bench.truth_vs_local_fsc``): the target asked for the unmeasurable.

Blends are handled exactly on a ladder: voxel x sits at fractional position ``p(x)`` between rungs
``k = floor(p)`` and ``k + 1`` with weight ``t = p - k``, its transfer is ``(1 - t) H_k + t H_{k+1}``,
and :func:`crossing_table_a` tabulates the crossing of that blend on a fine grid of ``t`` for every
pair of rungs (and, with a local signal fraction, on a grid of ``rho``), so
:func:`truth_from_ladder_position_a` only interpolates a table.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from locres.core.fourier import (
    frequency_grid_per_a,
    raised_cosine_lowpass_transfer,
    resolution_at_threshold,
    resolution_at_threshold_rows,
    rfft_weights,
    shell_index,
    shell_sums,
    shell_width_per_a,
)
from locres.errors import LocresError

DEFAULT_THRESHOLD = 0.143
SIGNAL_FRACTIONS = np.geomspace(1.0 / 64.0, 16.0, 31)  # the rho grid of the tables; rho is clipped to it
SIGNAL_HIGHPASS_A = 10.0


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


def local_signal_fraction(
    clean: np.ndarray,
    mask: np.ndarray,
    voxel_size_a: float,
    window_sigma_a: float,
    highpass_a: float = SIGNAL_HIGHPASS_A,
    freq_grid_per_a: np.ndarray | None = None,
) -> np.ndarray:
    """How much signal the neighbourhood of every voxel holds, against the molecule's mean (``rho(x)``).

    Parameters
    ----------
    clean : (z, y, x) clean density (no noise, no filter).
    mask : bool, same shape: the molecule (the volume ``P`` is spread over).
    voxel_size_a : Angstrom.
    window_sigma_a : standard deviation (Angstrom) of the Gaussian window; 0 gives 1 everywhere.
    highpass_a : only detail finer than this counts (a raised-cosine high pass), so the molecular
        envelope's low-frequency power does not dominate.
    freq_grid_per_a : the rFFT frequency grid of ``clean`` (:func:`frequency_grid_per_a`), if the caller
        has it already.

    Returns
    -------
    (z, y, x) float32, clipped to the range of ``SIGNAL_FRACTIONS``: the windowed mean of the high-passed
    density squared, divided by its sum over the box per mask voxel (so a box-filling molecule reads 1).
    """
    if window_sigma_a <= 0:
        return np.ones(clean.shape, np.float32)
    m = np.asarray(mask, bool)
    if not m.any():
        raise LocresError("the molecular mask is empty: no local signal to measure")
    # single precision (scipy's FFT keeps it): rho only needs a few digits, and it is made for every map
    f = frequency_grid_per_a(clean.shape, voxel_size_a) if freq_grid_per_a is None else freq_grid_per_a
    high = 1.0 - raised_cosine_lowpass_transfer(f, highpass_a, voxel_size_a)
    c = sfft.irfftn(sfft.rfftn(np.asarray(clean, np.float32)) * high, s=clean.shape)
    power = c * c
    window = np.exp(-2.0 * (np.pi * window_sigma_a * f) ** 2).astype(np.float32)
    local = sfft.irfftn(sfft.rfftn(power) * window, s=clean.shape)
    mean = float(power.sum(dtype=np.float64)) / float(m.sum())
    if not mean > 0:
        raise LocresError("the clean density holds no detail finer than the high pass")
    return np.clip(local / mean, SIGNAL_FRACTIONS[0], SIGNAL_FRACTIONS[-1]).astype(np.float32)


def crossing_table_a(
    freq_per_a: np.ndarray,
    clean_power: np.ndarray,
    noise_power: np.ndarray,
    transfers: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    n_steps: int = 33,
    signal_fractions: np.ndarray | None = None,
) -> np.ndarray:
    """Expected-FSC crossing of every blend of neighbouring ladder rungs (and every signal fraction).

    Parameters
    ----------
    freq_per_a, clean_power, noise_power : (n_shells,) from :func:`shell_power_per_voxel`.
    transfers : (K, n_shells) radial transfer of each rung (amplitude, not power).
    n_steps : blend weights ``t = linspace(0, 1, n_steps)`` per pair of rungs.
    signal_fractions : optional (R,) values of ``rho`` (:func:`local_signal_fraction`), increasing.

    Returns
    -------
    (K - 1, n_steps) resolutions in Angstrom, or (K - 1, n_steps, R) with ``signal_fractions``; row k
    holds ``(1 - t) H_k + t H_{k+1}``. A one-rung ladder gives one row of its single value.
    """
    h = np.asarray(transfers, dtype=np.float64)
    if h.ndim != 2 or h.shape[1] != len(freq_per_a):
        raise LocresError(f"transfers must be (K, {len(freq_per_a)}), got {h.shape}")
    if len(h) == 1:
        h = np.concatenate([h, h])
    freq = np.asarray(freq_per_a, dtype=np.float64)
    rho = np.ones(1) if signal_fractions is None else np.asarray(signal_fractions, dtype=np.float64)
    noise = np.asarray(noise_power, dtype=np.float64)
    t = np.linspace(0.0, 1.0, n_steps)
    table = np.empty((len(h) - 1, n_steps, len(rho)))
    for k in range(len(h) - 1):
        blend = (1.0 - t[:, None]) * h[k] + t[:, None] * h[k + 1]  # (n_steps, n_shells)
        signal = rho[None, :, None] * (np.asarray(clean_power) * blend**2)[:, None, :]  # (n_steps, R, shells)
        fsc = expected_fsc(signal, np.broadcast_to(noise, signal.shape))
        crossings = resolution_at_threshold_rows(freq, fsc.reshape(-1, len(freq)), threshold)
        table[k] = crossings.reshape(n_steps, len(rho))
    return table[..., 0] if signal_fractions is None else table


def truth_from_ladder_position_a(
    position: np.ndarray,
    table_a: np.ndarray,
    signal_fraction: np.ndarray | None = None,
    signal_fractions: np.ndarray | None = None,
) -> np.ndarray:
    """Look up the truth (Angstrom) of every voxel from its fractional ladder position.

    ``position`` in [0, K - 1] (K rungs); ``table_a`` from :func:`crossing_table_a`. Interpolation is
    linear in frequency (1 / resolution) between the tabulated blend weights and, given the voxels'
    ``signal_fraction`` and the table's ``signal_fractions`` grid, linear in log rho between its values.
    """
    inv = 1.0 / np.asarray(table_a, dtype=np.float64)
    if signal_fraction is not None:
        grid = np.log(np.asarray(signal_fractions, dtype=np.float64))
        g = np.interp(np.log(np.asarray(signal_fraction, np.float64)), grid, np.arange(len(grid)))
        lo = np.minimum(np.floor(g).astype(np.int64), len(grid) - 2)
        w = g - lo
    elif inv.ndim == 3:
        raise LocresError("a table over signal fractions needs every voxel's signal_fraction")
    n_pairs, n_steps = inv.shape[:2]
    p = np.clip(np.asarray(position, dtype=np.float64), 0.0, float(n_pairs))
    k = np.minimum(np.floor(p).astype(np.int64), n_pairs - 1)
    u = (p - k) * (n_steps - 1)
    j = np.minimum(np.floor(u).astype(np.int64), n_steps - 2)
    frac = u - j

    def at(jj):
        if signal_fraction is None:
            return inv[k, jj]
        return (1.0 - w) * inv[k, jj, lo] + w * inv[k, jj, lo + 1]

    f = (1.0 - frac) * at(j) + frac * at(j + 1)
    return (1.0 / f).astype(np.float32)


def windowed_ladder_truth_a(
    position: np.ndarray,
    mask: np.ndarray,
    freq_per_a: np.ndarray,
    clean_power: np.ndarray,
    noise_power: np.ndarray,
    transfers: np.ndarray,
    window_sigma_a: float,
    voxel_size_a: float,
    signal_fraction: np.ndarray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    chunk_voxels: int = 131072,
) -> np.ndarray:
    """The truth with the local signal spectrum taken over a Gaussian window, not at the voxel alone.

    A local FSC is measured in a window, and where the local filter changes within it the window holds
    the signal of every filter it covers: its expected signal power at f is the window-weighted mean of
    ``|H_y(f)|^2`` over the voxels y in it. On a ladder, voxel y's transfer is ``sum_r w_r(y) H_r`` (at
    most two neighbouring rungs), so ``|H_y|^2 = sum_{r,s} w_r(y) w_s(y) H_r H_s`` and the window's mean
    is ``sum_{r,s} (G * w_r w_s)(x) H_r H_s``: 2K - 1 smoothed weight products. The truth at x is then the
    first crossing of ``rho(x) P(f) sum(...) / (rho(x) P(f) sum(...) + N(f))`` below ``threshold``.
    A window of 0 or a uniform field gives :func:`truth_from_ladder_position_a`'s value (without its
    table's interpolation); next to a coarser region a voxel reads finer, and next to a finer one
    coarser, as every local FSC does.

    Parameters
    ----------
    position : (z, y, x) fractional ladder position in [0, K - 1].
    mask : bool, same shape: the voxels to compute (others get the finest shell's resolution).
    freq_per_a, clean_power, noise_power : (n_shells,) from :func:`shell_power_per_voxel`.
    transfers : (K, n_shells) radial transfer of each rung (amplitude).
    window_sigma_a : standard deviation (Angstrom) of the Gaussian window.
    signal_fraction : optional (z, y, x) ``rho`` (:func:`local_signal_fraction`).

    Returns
    -------
    (z, y, x) float32 resolution in Angstrom.
    """
    h = np.asarray(transfers, dtype=np.float64)
    freq = np.asarray(freq_per_a, dtype=np.float64)
    if h.ndim != 2 or h.shape[1] != len(freq):
        raise LocresError(f"transfers must be (K, {len(freq)}), got {h.shape}")
    pos = np.asarray(position, dtype=np.float32)
    m = np.asarray(mask, bool)
    k = len(h)
    weights = [np.clip(1.0 - np.abs(pos - r), 0.0, None) for r in range(k)]
    pairs = [(r, r, 1.0) for r in range(k)] + [(r, r + 1, 2.0) for r in range(k - 1)]
    if window_sigma_a > 0:
        f3 = frequency_grid_per_a(pos.shape, voxel_size_a)
        window = np.exp(-2.0 * (np.pi * window_sigma_a * f3) ** 2).astype(np.float32)
    coeffs, basis = [], []
    for r, s, factor in pairs:
        prod = factor * weights[r] * weights[s]
        if not prod.any():
            continue
        if window_sigma_a > 0:
            prod = sfft.irfftn(sfft.rfftn(prod) * window, s=pos.shape)
        coeffs.append(np.maximum(prod[m], 0.0))
        basis.append(h[r] * h[s])
    ratio = np.asarray(clean_power, np.float64) / np.maximum(np.asarray(noise_power, np.float64), 1e-300)
    basis = np.stack(basis) * ratio[None, :]  # (pairs, shells): the SSNR each pair contributes
    coeffs = np.stack(coeffs, axis=1)  # (mask voxels, pairs)
    rho = np.ones(len(coeffs)) if signal_fraction is None else np.asarray(signal_fraction, np.float64)[m]
    out = np.full(pos.shape, 1.0 / freq[-1], np.float32)
    values = np.empty(len(coeffs))
    for i in range(0, len(coeffs), chunk_voxels):
        ssnr = rho[i:i + chunk_voxels, None] * (coeffs[i:i + chunk_voxels] @ basis)
        values[i:i + chunk_voxels] = resolution_at_threshold_rows(freq, ssnr / (1.0 + ssnr), threshold)
    out[m] = values
    return out
