"""Fourier grids, shells and filters on (z, y, x) maps: pure numerics every layer may use.

Frequencies are in 1/Angstrom unless a name says otherwise. Shells are spherical in physical frequency
|s|, so non-cubic boxes are binned correctly: the shell width is ``1 / (max(shape) * voxel_size_a)``, the
finest frequency spacing of the box, and shells run from 0 to Nyquist ``1 / (2 voxel_size_a)``. Shell
sums run over the half space of the real FFT with each coefficient weighted by how many full-FFT
coefficients it stands for (2 for interior x columns).
"""

from __future__ import annotations

import numpy as np

from locres.errors import LocresError


def frequency_grid_per_a(shape_zyx: tuple[int, ...], voxel_size_a: float, rfft: bool = True) -> np.ndarray:
    """|s| (1/Angstrom) for every Fourier coefficient of an unshifted (r)FFT of ``shape_zyx``."""
    nz, ny, nx = shape_zyx
    fz = np.fft.fftfreq(nz, d=voxel_size_a).astype(np.float32)
    fy = np.fft.fftfreq(ny, d=voxel_size_a).astype(np.float32)
    fx = (np.fft.rfftfreq if rfft else np.fft.fftfreq)(nx, d=voxel_size_a).astype(np.float32)
    return np.sqrt(fz[:, None, None] ** 2 + fy[None, :, None] ** 2 + fx[None, None, :] ** 2)


def rfft_weights(shape_zyx: tuple[int, ...]) -> np.ndarray:
    """(nx//2+1,) weights: how many full-FFT coefficients each rFFT x column stands for."""
    nx = shape_zyx[-1]
    w = np.full(nx // 2 + 1, 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return w


def shell_width_per_a(shape_zyx: tuple[int, ...], voxel_size_a: float) -> float:
    """Shell width in 1/Angstrom: the finest frequency spacing of the box."""
    return 1.0 / (max(shape_zyx) * float(voxel_size_a))


def shell_index(shape_zyx: tuple[int, ...], voxel_size_a: float) -> tuple[np.ndarray, int]:
    """Shell number of every rFFT coefficient and the number of shells up to Nyquist.

    Returns
    -------
    index : int array of the rFFT shape; shell ``i`` holds |s| in ``[(i - 0.5) w, (i + 0.5) w)``,
        coefficients beyond Nyquist get ``n_shells`` (ignored).
    n_shells : shells 0 .. Nyquist inclusive.
    """
    width = shell_width_per_a(shape_zyx, voxel_size_a)
    freq = frequency_grid_per_a(tuple(shape_zyx), voxel_size_a)
    n_shells = int(np.floor(0.5 / voxel_size_a / width + 0.5)) + 1
    idx = np.floor(freq / width + 0.5).astype(np.int64)
    idx[idx >= n_shells] = n_shells
    return idx, n_shells


def shell_sums(values: np.ndarray, index: np.ndarray, n_shells: int, weights: np.ndarray) -> np.ndarray:
    """Weighted sum of an rFFT-shaped real array over each shell, shape (n_shells,)."""
    w = np.broadcast_to(weights, values.shape)
    return np.bincount(index.ravel(), weights=(values * w).ravel(), minlength=n_shells + 1)[:n_shells]


def shell_fsc_of_spectra(spec1: np.ndarray, spec2: np.ndarray, shape_zyx: tuple[int, ...],
                         voxel_size_a: float) -> tuple[np.ndarray, np.ndarray]:
    """Shell FSC of two rFFT spectra of ``shape_zyx``: (fsc, coefficients per shell), shells to Nyquist.

    Shells with no power read 0. The one FSC sum of the project (:func:`locres.methods.fsc.fsc_raw`, the
    training maps' figure-of-merit weighting).
    """
    idx, n_shells = shell_index(tuple(shape_zyx), voxel_size_a)
    w = rfft_weights(tuple(shape_zyx))
    cross = shell_sums((spec1 * np.conj(spec2)).real, idx, n_shells, w)
    p1 = shell_sums(np.abs(spec1) ** 2, idx, n_shells, w)
    p2 = shell_sums(np.abs(spec2) ** 2, idx, n_shells, w)
    n = shell_sums(np.ones(idx.shape), idx, n_shells, w)
    denom = np.sqrt(p1 * p2)
    return np.divide(cross, denom, out=np.zeros_like(cross), where=denom > 0), n


def resolution_at_threshold(freq_per_a: np.ndarray, fsc: np.ndarray, threshold: float | np.ndarray) -> float:
    """Resolution (Angstrom) where ``fsc`` first falls below ``threshold``, interpolated between shells.

    The DC shell is skipped. A curve that never falls below the threshold gives the Nyquist
    resolution (the last shell); one below it from the first shell gives 1 / (first shell frequency).
    ``threshold`` is a number or a per-shell array (half-bit).
    """
    curve = np.asarray(fsc, dtype=np.float64)
    return float(resolution_at_threshold_rows(freq_per_a, curve[None], threshold)[0])


def resolution_at_threshold_rows(
    freq_per_a: np.ndarray, fsc_rows: np.ndarray, threshold: float | np.ndarray
) -> np.ndarray:
    """:func:`resolution_at_threshold` of every row of ``fsc_rows`` (rows, shells) at once, Angstrom."""
    freq = np.asarray(freq_per_a, dtype=np.float64)
    curves = np.asarray(fsc_rows, dtype=np.float64)
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), curves.shape)
    below = curves[:, 1:] < thr[:, 1:]
    any_below = below.any(axis=1)
    i = np.argmax(below, axis=1) + 1
    rows = np.arange(len(curves))
    d0 = curves[rows, i - 1] - thr[rows, i - 1]
    d1 = curves[rows, i] - thr[rows, i]
    t = np.divide(d0, d0 - d1, out=np.zeros_like(d0), where=d0 != d1)
    f = np.where(i == 1, freq[1], freq[i - 1] + t * (freq[i] - freq[i - 1]))
    return np.where(any_below, 1.0 / f, 1.0 / freq[-1])


def apply_fourier_filter(volume: np.ndarray, transfer: np.ndarray) -> np.ndarray:
    """Multiply the rFFT of ``volume`` by ``transfer`` (same shape as the rFFT) and return float32."""
    spectrum = np.fft.rfftn(volume.astype(np.float32))
    return np.fft.irfftn(spectrum * transfer, s=volume.shape).astype(np.float32)


def raised_cosine_lowpass_transfer(freq_per_a: np.ndarray, resolution_a: float, voxel_size_a: float,
                                   width_digital: float = 0.02) -> np.ndarray:
    """Raised-cosine low pass that reaches 0 exactly at 1/``resolution_a``.

    The fall-off is ``width_digital`` wide in digital frequency (cycles/voxel), as in the DeepRes
    reference, and lies entirely *below* the cutoff, so no power remains beyond 1/resolution.
    """
    if not resolution_a > 0:
        raise LocresError(f"resolution must be positive, got {resolution_a} A")
    f_cut = voxel_size_a / resolution_a  # digital
    f = freq_per_a * voxel_size_a
    f_start = max(f_cut - width_digital, 0.0)
    t = np.clip((f - f_start) / max(f_cut - f_start, 1e-12), 0.0, 1.0)
    h = 0.5 * (1.0 + np.cos(np.pi * t))
    h[f >= f_cut] = 0.0
    return h.astype(np.float32)


def lowpass_raised_cosine(volume: np.ndarray, voxel_size_a: float, resolution_a: float,
                          width_digital: float = 0.02) -> np.ndarray:
    """Low-pass ``volume`` to ``resolution_a`` (no power beyond 1/resolution_a)."""
    freq = frequency_grid_per_a(volume.shape, voxel_size_a)
    return apply_fourier_filter(volume, raised_cosine_lowpass_transfer(freq, resolution_a, voxel_size_a,
                                                                       width_digital))


def butterworth_lowpass_transfer(freq_per_a: np.ndarray, resolution_a: float, order: float = 8) -> np.ndarray:
    """Butterworth amplitude transfer ``1 / sqrt(1 + (f R)^(2 n))``: half power at 1/``resolution_a``.

    Unlike :func:`raised_cosine_lowpass_transfer` it never reaches 0: power falls by ``(f R)^(2 n)``
    beyond the cut, the soft roll-off of many deposited maps.
    """
    if not resolution_a > 0:
        raise LocresError(f"resolution must be positive, got {resolution_a} A")
    x = np.asarray(freq_per_a, dtype=np.float64) * resolution_a
    return (1.0 / np.sqrt(1.0 + x ** (2.0 * order))).astype(np.float32)


def butterworth_floor_resolution_a(resolution_a: float, order: float, power_floor: float) -> float:
    """Resolution (A) beyond which the Butterworth's power transfer stays below ``power_floor``."""
    return float(resolution_a / (1.0 / power_floor - 1.0) ** (1.0 / (2.0 * order)))


def lowpass_butterworth(volume: np.ndarray, voxel_size_a: float, resolution_a: float,
                        order: int = 8) -> np.ndarray:
    """Butterworth low pass with its half-power point at 1/``resolution_a``."""
    freq = frequency_grid_per_a(volume.shape, voxel_size_a)
    return apply_fourier_filter(volume, butterworth_lowpass_transfer(freq, resolution_a, order))


def apply_bfactor(volume: np.ndarray, voxel_size_a: float, b_factor_a2: float) -> np.ndarray:
    """Multiply amplitudes by exp(-B s^2 / 4): B > 0 blurs, B < 0 sharpens (s in 1/Angstrom)."""
    freq = frequency_grid_per_a(volume.shape, voxel_size_a)
    return apply_fourier_filter(volume, np.exp(-b_factor_a2 * freq**2 / 4.0).astype(np.float32))


def lowpass_gaussian(volume: np.ndarray, voxel_size_a: float, resolution_a: float) -> np.ndarray:
    """Gaussian low pass whose amplitude falls to exp(-1) at 1/``resolution_a`` (B = 4 R^2)."""
    return apply_bfactor(volume, voxel_size_a, 4.0 * resolution_a**2)


def sharpen(volume: np.ndarray, voxel_size_a: float, b_sharpen_a2: float,
            resolution_a: float | None = None) -> np.ndarray:
    """Global B-factor sharpening (``b_sharpen_a2`` > 0 sharpens), optionally low-passed to a resolution."""
    out = apply_bfactor(volume, voxel_size_a, -b_sharpen_a2)
    if resolution_a is not None:
        out = lowpass_raised_cosine(out, voxel_size_a, resolution_a)
    return out


FSC_RECOVERY_MARGIN = 0.15  # how far over the threshold an FSC must climb back to count as recovering


def fsc_recovers(fsc: np.ndarray, threshold: float = 0.143, margin: float = FSC_RECOVERY_MARGIN,
                 run: int = 3) -> bool:
    """Whether a shell FSC curve (coarse to fine, DC first) climbs back above ``threshold + margin``, in the
    mean of ``run`` consecutive shells, somewhere finer than its first shell below ``threshold``: the
    truth, the first crossing, then lies coarser than detail the map does hold."""
    curve = np.asarray(fsc, np.float64)[1:]
    below = np.flatnonzero(curve < threshold)
    if below.size == 0:
        return False
    tail = curve[below[0]:]
    if tail.size < run:
        return False
    running = np.convolve(tail, np.ones(run) / run, mode="valid")
    return bool(running.max() > threshold + margin)
