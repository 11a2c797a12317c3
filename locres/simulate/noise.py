"""Noise and half maps with a chosen signal-to-noise ratio.

Conventions
-----------
- ``snr`` is the variance of the signal inside the mask divided by the variance of the noise of the
  (full) map: ``snr = var(signal[mask]) / sigma_map**2``.
- Half maps carry independent noise of variance ``2 sigma_map**2``, so their average (the full map)
  carries noise of variance ``sigma_map**2``: ``map = (half1 + half2) / 2`` exactly.
- White noise is i.i.d. Gaussian per voxel. Coloured noise is white noise shaped in Fourier space by
  an amplitude profile (a B-factor envelope and/or a low pass) and rescaled to the requested standard
  deviation, so its power spectrum is ``sigma_white**2 * N_voxels * |T(s)|**2`` per coefficient.
"""

from __future__ import annotations

import logging

import numpy as np

from locres.core.fourier import apply_fourier_filter, frequency_grid_per_a, raised_cosine_lowpass_transfer
from locres.errors import LocresError

log = logging.getLogger(__name__)

NOISE_KINDS = ("white", "coloured")


def noise_transfer(shape_zyx: tuple[int, int, int], voxel_size_a: float, b_factor_a2: float = 0.0,
                   lowpass_resolution_a: float | None = None) -> np.ndarray:
    """rFFT-shaped amplitude profile ``T(s)`` of coloured noise (1 everywhere gives white noise).

    Parameters
    ----------
    b_factor_a2 : envelope ``exp(-B s^2 / 4)``; B > 0 makes the noise redder (Angstrom^2).
    lowpass_resolution_a : optional raised-cosine cut-off (Angstrom).
    """
    freq = frequency_grid_per_a(shape_zyx, voxel_size_a)
    t = np.exp(-float(b_factor_a2) * freq**2 / 4.0)
    if lowpass_resolution_a is not None:
        t = t * raised_cosine_lowpass_transfer(freq, lowpass_resolution_a, voxel_size_a)
    return t.astype(np.float32)


def make_noise(shape_zyx: tuple[int, int, int], sigma: float, rng: np.random.Generator,
               transfer: np.ndarray | None = None) -> np.ndarray:
    """Gaussian noise of standard deviation ``sigma``, white or shaped by ``transfer`` (rFFT shape).

    Coloured noise is rescaled by its *expected* standard deviation (from ``transfer``), not the
    sample one, so its spectrum is known exactly: ``E|F(s)|^2 = N sigma^2 T(s)^2 / mean_full(T^2)``.
    """
    if not (np.isfinite(sigma) and sigma >= 0):
        raise LocresError(f"noise standard deviation must be a non-negative number, got {sigma}")
    white = rng.standard_normal(size=tuple(shape_zyx), dtype=np.float32)
    if transfer is None:
        return (white * np.float32(sigma)).astype(np.float32)
    gain = np.sqrt(mean_power_of_transfer(transfer, shape_zyx))
    if gain <= 0:
        raise LocresError("the coloured-noise profile is zero everywhere")
    shaped = apply_fourier_filter(white, transfer)
    return (shaped * (sigma / gain)).astype(np.float32)


def mean_power_of_transfer(transfer: np.ndarray, shape_zyx: tuple[int, int, int]) -> float:
    """Mean of ``T^2`` over the full FFT (the variance gain of shaping unit white noise by ``T``)."""
    nx = shape_zyx[-1]
    w = np.full(transfer.shape[-1], 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return float((transfer.astype(np.float64) ** 2 * w).sum() / np.prod(shape_zyx))


def noise_sigma_for_snr(signal: np.ndarray, snr: float, mask: np.ndarray | None = None) -> float:
    """Noise standard deviation that gives ``var(signal[mask]) / sigma^2 = snr``."""
    if not (np.isfinite(snr) and snr > 0):
        raise LocresError(f"snr must be a positive number, got {snr}")
    values = signal[mask] if mask is not None else signal
    if values.size == 0:
        raise LocresError("the mask is empty: cannot measure the signal variance for the SNR")
    var = float(np.var(values, dtype=np.float64))
    if var <= 0:
        raise LocresError("the signal is constant inside the mask: cannot set a noise level from an SNR")
    return float(np.sqrt(var / snr))


def add_noise(signal: np.ndarray, snr: float, rng: np.random.Generator, mask: np.ndarray | None = None,
              transfer: np.ndarray | None = None) -> np.ndarray:
    """``signal`` plus noise (white, or coloured by ``transfer``) at the given SNR, float32."""
    sigma = noise_sigma_for_snr(signal, snr, mask)
    return (signal + make_noise(signal.shape, sigma, rng, transfer)).astype(np.float32)


def make_half_maps(signal: np.ndarray, snr: float, rng: np.random.Generator, mask: np.ndarray | None = None,
                   transfer: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Two half maps with independent noise and their average.

    Each half gets noise of standard deviation ``sqrt(2) * sigma_map`` where ``sigma_map`` meets
    ``snr`` (see the module docstring), so the average has exactly the map's noise level.

    Returns
    -------
    full_map, half1, half2 : (z, y, x) float32, ``full_map = (half1 + half2) / 2``.
    sigma_half : noise standard deviation of each half map.
    """
    sigma_half = float(np.sqrt(2.0) * noise_sigma_for_snr(signal, snr, mask))
    half1 = (signal + make_noise(signal.shape, sigma_half, rng, transfer)).astype(np.float32)
    half2 = (signal + make_noise(signal.shape, sigma_half, rng, transfer)).astype(np.float32)
    full = (0.5 * (half1 + half2)).astype(np.float32)
    return full, half1, half2, sigma_half
