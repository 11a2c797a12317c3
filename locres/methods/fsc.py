"""Global Fourier shell correlation (FSC) between two half maps.

Pure numerics on (z, y, x) arrays plus ``voxel_size_a``; frequencies are in 1/Angstrom.

Shells and shell sums are :mod:`locres.core.fourier`'s (spherical in |s|, non-cubic boxes binned
correctly, rFFT coefficients weighted so sums equal those of the full transform).

Thresholds: 0.143 (Rosenthal & Henderson 2003), 0.5, and the half-bit curve of van Heel & Schatz (2005)
evaluated with the number of coefficients in each shell.

Masking: an FSC between masked half maps is inflated by the mask's own correlation. The
phase-randomisation correction (Chen et al. 2013) measures that inflation: beyond the frequency where
the unmasked FSC first drops below 0.8, the phases of both half maps are replaced by independent random
phases, the randomised maps are masked the same way, and their FSC (``fsc_rand``) is the part due to the
mask alone. The corrected curve is ``(fsc_masked - fsc_rand) / (1 - fsc_rand)`` beyond that frequency
and ``fsc_masked`` below it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from locres.core.fourier import (
    frequency_grid_per_a,
    resolution_at_threshold,
    shell_fsc_of_spectra,
    shell_width_per_a,
)
from locres.errors import LocresError

log = logging.getLogger(__name__)

THRESHOLDS = ("0.143", "0.5", "half_bit")


def half_bit_threshold(n_coeffs: np.ndarray) -> np.ndarray:
    """Half-bit information threshold of van Heel & Schatz (2005) for shells of ``n_coeffs`` coefficients."""
    n = np.maximum(np.asarray(n_coeffs, dtype=np.float64), 1.0)
    root = np.sqrt(n)
    return (0.2071 + 1.9102 / root) / (1.2071 + 0.9102 / root)


@dataclass
class FSCResult:
    """An FSC curve and its resolutions.

    Attributes
    ----------
    freq_per_a : (n_shells,) shell centre frequencies, 1/Angstrom (0 .. Nyquist).
    fsc : (n_shells,) the FSC (mask-corrected when a mask was given).
    n_coeffs : (n_shells,) number of Fourier coefficients (full transform) in each shell.
    resolution_a : resolution in Angstrom at each threshold ("0.143", "0.5", "half_bit").
    fsc_unmasked, fsc_masked, fsc_rand : the curves behind the mask correction (None without a mask).
    randomised_from_per_a : frequency beyond which phases were randomised (None without a mask).
    """

    freq_per_a: np.ndarray
    fsc: np.ndarray
    n_coeffs: np.ndarray
    voxel_size_a: float
    resolution_a: dict[str, float] = field(default_factory=dict)
    fsc_unmasked: np.ndarray | None = None
    fsc_masked: np.ndarray | None = None
    fsc_rand: np.ndarray | None = None
    randomised_from_per_a: float | None = None

    def to_dict(self) -> dict:
        """JSON-serialisable summary (curves as lists)."""
        out = {
            "voxel_size_a": self.voxel_size_a,
            "resolution_a": dict(self.resolution_a),
            "freq_per_a": self.freq_per_a.round(6).tolist(),
            "fsc": self.fsc.round(5).tolist(),
            "half_bit": half_bit_threshold(self.n_coeffs).round(5).tolist(),
        }
        for key in ("fsc_unmasked", "fsc_masked", "fsc_rand"):
            val = getattr(self, key)
            if val is not None:
                out[key] = np.asarray(val).round(5).tolist()
        if self.randomised_from_per_a is not None:
            out["randomised_from_per_a"] = float(self.randomised_from_per_a)
        return out


def _check_pair(half1: np.ndarray, half2: np.ndarray, voxel_size_a: float) -> None:
    if half1.ndim != 3 or half1.shape != half2.shape:
        raise LocresError(
            f"half maps must be 3-D arrays of the same shape, got {half1.shape} and {half2.shape}; "
            "resample one onto the other's grid first"
        )
    if not (voxel_size_a is not None and np.isfinite(voxel_size_a) and voxel_size_a > 0):
        raise LocresError(f"voxel size must be a positive number of Angstrom, got {voxel_size_a}")


def fsc_raw(half1: np.ndarray, half2: np.ndarray,
            voxel_size_a: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain shell-binned FSC (no mask handling).

    Returns
    -------
    freq_per_a, fsc, n_coeffs : (n_shells,) arrays; shells with no coefficient read 0.
    """
    _check_pair(half1, half2, voxel_size_a)
    f1 = np.fft.rfftn(np.asarray(half1, dtype=np.float64))
    f2 = np.fft.rfftn(np.asarray(half2, dtype=np.float64))
    fsc, n = shell_fsc_of_spectra(f1, f2, half1.shape, voxel_size_a)
    freq = np.arange(fsc.size) * shell_width_per_a(half1.shape, voxel_size_a)
    return freq, fsc, n


def randomise_phases_beyond(volume: np.ndarray, voxel_size_a: float, freq_per_a: float,
                            rng: np.random.Generator) -> np.ndarray:
    """Copy of ``volume`` whose Fourier phases beyond ``freq_per_a`` (1/Angstrom) are uniformly random."""
    spec = np.fft.rfftn(np.asarray(volume, dtype=np.float64))
    freq = frequency_grid_per_a(volume.shape, voxel_size_a)
    sel = freq > freq_per_a
    phases = rng.uniform(0.0, 2.0 * np.pi, size=int(sel.sum()))
    spec[sel] = np.abs(spec[sel]) * np.exp(1j * phases)
    return np.fft.irfftn(spec, s=volume.shape).astype(np.float32)


def _resolutions(freq: np.ndarray, fsc: np.ndarray, n: np.ndarray) -> dict[str, float]:
    return {
        "0.143": resolution_at_threshold(freq, fsc, 0.143),
        "0.5": resolution_at_threshold(freq, fsc, 0.5),
        "half_bit": resolution_at_threshold(freq, fsc, half_bit_threshold(n)),
    }


def fsc_curve(half1: np.ndarray, half2: np.ndarray, voxel_size_a: float, mask: np.ndarray | None = None,
              randomise_below: float = 0.8, seed: int = 0) -> FSCResult:
    """Global FSC between two half maps, optionally masked with the phase-randomisation correction.

    Parameters
    ----------
    half1, half2 : (z, y, x) half maps on the same grid.
    voxel_size_a : voxel size in Angstrom.
    mask : optional (z, y, x) bool or soft [0, 1] mask applied to both halves.
    randomise_below : phases are randomised beyond the first shell where the unmasked FSC < this.
    seed : seed of the random phases.

    Returns
    -------
    FSCResult with the curve and the 0.143, 0.5 and half-bit resolutions.
    """
    freq, fsc_u, n = fsc_raw(half1, half2, voxel_size_a)
    if mask is None:
        return FSCResult(freq, fsc_u, n, float(voxel_size_a), _resolutions(freq, fsc_u, n))
    m = np.asarray(mask, dtype=np.float32)
    if m.shape != half1.shape:
        raise LocresError(f"mask shape {m.shape} does not match the half maps {half1.shape}")
    if not np.any(m > 0):
        raise LocresError("the mask is empty: give a mask that covers the molecule")
    _, fsc_m, _ = fsc_raw(half1 * m, half2 * m, voxel_size_a)
    below = np.nonzero(fsc_u[1:] < randomise_below)[0]
    if below.size == 0:  # correlated to Nyquist: nothing to randomise
        log.info("unmasked FSC stays above %.2f up to Nyquist; no phase randomisation", randomise_below)
        return FSCResult(freq, fsc_m, n, float(voxel_size_a), _resolutions(freq, fsc_m, n), fsc_u, fsc_m,
                         np.zeros_like(fsc_m), None)
    i_rand = int(below[0]) + 1
    f_rand = float(freq[i_rand] - 0.5 * (freq[1] - freq[0]))  # lower edge of that shell
    rng = np.random.default_rng(seed)
    r1 = randomise_phases_beyond(half1, voxel_size_a, f_rand, rng)
    r2 = randomise_phases_beyond(half2, voxel_size_a, f_rand, rng)
    _, fsc_r, _ = fsc_raw(r1 * m, r2 * m, voxel_size_a)
    fsc_t = fsc_m.copy()
    beyond = np.arange(freq.size) >= i_rand
    denom = 1.0 - fsc_r[beyond]
    fsc_t[beyond] = np.where(denom > 1e-6, (fsc_m[beyond] - fsc_r[beyond]) / np.maximum(denom, 1e-6), 0.0)
    return FSCResult(freq, fsc_t, n, float(voxel_size_a), _resolutions(freq, fsc_t, n), fsc_u, fsc_m, fsc_r,
                     f_rand)


def global_resolution_a(half1: np.ndarray, half2: np.ndarray, voxel_size_a: float,
                        mask: np.ndarray | None = None, threshold: str = "0.143") -> float:
    """Global resolution (Angstrom) at ``threshold`` ("0.143", "0.5" or "half_bit")."""
    if threshold not in THRESHOLDS:
        raise LocresError(f"unknown FSC threshold '{threshold}': choose one of {', '.join(THRESHOLDS)}")
    return fsc_curve(half1, half2, voxel_size_a, mask=mask).resolution_a[threshold]
