"""Local model-map FSC: where a map stops agreeing with its fitted atomic model, voxel by voxel.

The real-map yardstick when no half maps exist (``specs/fsc_target.md``, "Local model-map FSC"). Both
the map and the model's simulated density (on the map's exact grid) are band-passed in overlapping
shells of spatial frequency; in each shell the local correlation of the two band-passed maps,

    c_k(x) = (g_k * a_k b_k)(x) / sqrt((g_k * a_k^2)(x) (g_k * b_k^2)(x)),

with ``g_k`` a Gaussian window, is the windowed counterpart of the FSC of that shell. Scanning from low
to high frequency, the local resolution is where ``c_k`` first drops below 0.5 (the map-vs-model
counterpart of 0.143 between half maps), interpolated linearly in frequency between the two shells
around the crossing. Everything is FFT-based and every voxel is done at once; shells are streamed, so
memory is a few copies of the map.

Shells and windows
------------------
Shell ``k`` is a Gaussian in |s| centred at ``f_k`` with standard deviation ``shell_width * f_k``
(constant relative width: the same relative frequency resolution at 3 A and at 10 A). Centres are
log-spaced by ``shell_step`` (relative) from ``1 / max_resolution_a`` to Nyquist, with at least
``min_shells`` of them. The window is a Gaussian of full width at half maximum
``max(window_a, min_periods / f_k)``: ``window_a`` at fine shells, and at least ``min_periods``
wavelengths of a coarse shell, whose correlation over less than one oscillation would mean nothing.

A shell of relative width w reads a sharp cut slightly fine: at the 0.5 crossing a quarter of the
shell's power lies below the cut, so the reading is about ``0.67 w`` (5 % at the default) finer than a
sharp cut; for a map that fades smoothly the reading is unbiased to first order.

What it measures, and when it breaks
------------------------------------
Agreement with the model: it inherits the model's completeness and errors (unmodelled neighbours,
ligands or a partial model read coarse). The correlation is scale-invariant in each shell, so a global
sharpening or blurring of the map does not move it. A thresholded map (zeros inside the molecule)
breaks it: its band-passed shells carry the threshold's edges, not the density.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import scipy.fft as sfft

from locres.core.fourier import frequency_grid_per_a
from locres.errors import LocresError
from locres.methods import LocalResolution, MethodInputs

log = logging.getLogger(__name__)

NAME = "modelfsc"
INPUTS = "map_and_model"  # the map plus the model's simulated density and footprint (MethodInputs)

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def shell_frequencies_per_a(voxel_size_a: float, max_resolution_a: float, shell_step: float = 0.12,
                            min_shells: int = 12) -> np.ndarray:
    """Shell centres (1/Angstrom), log-spaced from ``1 / max_resolution_a`` to Nyquist inclusive."""
    f_lo, f_hi = 1.0 / float(max_resolution_a), 0.5 / float(voxel_size_a)
    if not f_hi > f_lo:
        raise LocresError(
            f"max_resolution_a {max_resolution_a} A must be coarser than Nyquist {2 * voxel_size_a:.3g} A"
        )
    n = max(int(min_shells), int(np.ceil(np.log(f_hi / f_lo) / np.log1p(shell_step))) + 1)
    return np.geomspace(f_lo, f_hi, n)


def default_max_resolution_a(shape_zyx, voxel_size_a: float) -> float:
    """Coarsest shell: 20 A, but no coarser than a quarter of the smallest box edge (and > Nyquist)."""
    quarter_box_a = min(shape_zyx) * voxel_size_a / 4.0
    return float(max(min(20.0, quarter_box_a), 3.0 * voxel_size_a))


def _crop_spectrum(spec: np.ndarray, shape_small: tuple[int, int, int]) -> np.ndarray:
    """Keep the low-frequency block of an rFFT spectrum (z, y full axes; x the half axis)."""
    mz, my, mx = shape_small
    nz, ny = spec.shape[:2]
    zi = np.r_[0 : (mz + 1) // 2, nz - mz // 2 : nz] if mz < nz else slice(None)
    yi = np.r_[0 : (my + 1) // 2, ny - my // 2 : ny] if my < ny else slice(None)
    out = spec[:, :, : mx // 2 + 1]
    out = out[zi] if mz < nz else out
    return out[:, yi] if my < ny else out


def _upsample_periodic_linear(vol: np.ndarray, shape_zyx: tuple[int, ...]) -> np.ndarray:
    """Trilinear, periodic resampling of ``vol`` (a coarser sampling of the same box) onto ``shape_zyx``.

    Sample ``j`` of an axis of ``m`` samples lies at ``j / m`` of the box, as in an FFT grid; one axis at a
    time (the same result as trilinear interpolation, much faster than per-point interpolation).
    """
    for axis, (m, n) in enumerate(zip(vol.shape, shape_zyx)):
        if m == n:
            continue
        pos = np.arange(n) * (m / n)
        i0 = np.floor(pos).astype(np.int64)
        w = (pos - i0).astype(np.float32).reshape([n if a == axis else 1 for a in range(vol.ndim)])
        vol = np.take(vol, i0, axis=axis) * (1.0 - w) + np.take(vol, (i0 + 1) % m, axis=axis) * w
    return vol


def _grid_for_shell(shape_zyx, voxel_size_a: float, f_per_a: float, oversample: float) -> tuple[int, ...]:
    """Smallest even grid (same box) whose Nyquist is ``oversample * f_per_a``, at most the full grid."""
    out = []
    for n in shape_zyx:
        m = int(np.ceil(2.0 * oversample * f_per_a * n * voxel_size_a))
        m += m % 2
        out.append(n if m >= n - 1 else max(m, 4))
    return tuple(out)


def local_correlation_curves(map_zyx: np.ndarray, model_map_zyx: np.ndarray, voxel_size_a: float,
                             freqs_per_a: np.ndarray, points_zyx: np.ndarray,
                             window_a: float = 6.0, shell_width: float = 0.08, min_periods: float = 2.0,
                             oversample: float = 1.6, workers: int | None = None):
    """Yield ``(k, c_k)``: the local correlation of the two maps in shell ``k`` at the given voxels.

    A shell reaches no frequency above about ``1.3 f_k`` (3.75 standard deviations), so shell ``k`` is
    computed on a grid of the same box whose Nyquist is ``oversample * f_k``: the products of the
    band-passed maps alias only onto frequencies above ``0.6 f_k``, where a window at least two
    wavelengths wide passes under 1 %. The correlation is read at the voxels by trilinear interpolation
    (it is smooth on the scale of the window); the finest shells use the full grid.

    Parameters
    ----------
    map_zyx, model_map_zyx : (z, y, x) arrays on one grid.
    voxel_size_a : voxel size in Angstrom.
    freqs_per_a : shell centres in 1/Angstrom (see :func:`shell_frequencies_per_a`).
    points_zyx : (n, 3) int voxel indices to report; ``c_k`` is (n,) float32 at them.
    window_a, shell_width, min_periods : window FWHM at fine shells (Angstrom), shell standard deviation
        relative to its centre, least window FWHM in wavelengths of the shell (module docstring).
    """
    shape = tuple(map_zyx.shape)
    workers = workers or os.cpu_count() or 1
    s_full = frequency_grid_per_a(shape, voxel_size_a)  # rFFT-shaped |s|, float32
    fa = sfft.rfftn(np.asarray(map_zyx, np.float32), workers=workers)
    fb = sfft.rfftn(np.asarray(model_map_zyx, np.float32), workers=workers)
    index = tuple(np.asarray(points_zyx).T)

    for k, f in enumerate(np.asarray(freqs_per_a, dtype=np.float64).tolist()):
        small = _grid_for_shell(shape, voxel_size_a, f, oversample)
        s = _crop_spectrum(s_full, small)
        shell = np.exp(-0.5 * ((s - f) / (shell_width * f)) ** 2).astype(np.float32)
        a = sfft.irfftn(_crop_spectrum(fa, small) * shell, s=small, workers=workers)
        b = sfft.irfftn(_crop_spectrum(fb, small) * shell, s=small, workers=workers)
        sigma_x = max(window_a, min_periods / f) / FWHM_PER_SIGMA
        window = np.exp(-2.0 * np.pi**2 * sigma_x**2 * (s * s)).astype(np.float32)  # unit-sum Gaussian

        def smooth(vol, window=window, small=small):
            return sfft.irfftn(sfft.rfftn(vol, workers=workers) * window, s=small, workers=workers)

        ab = smooth(a * b)
        den = np.sqrt(np.maximum(smooth(a * a), 0.0) * np.maximum(smooth(b * b), 0.0))
        tiny = 1e-6 * float(den.max())
        c = np.where(den > tiny, ab / np.where(den > tiny, den, 1.0), 0.0).astype(np.float32)
        yield k, _upsample_periodic_linear(c, shape)[index]


def local_model_map_fsc(map_zyx: np.ndarray, model_map_zyx: np.ndarray, footprint_mask: np.ndarray | None,
                        voxel_size_a: float, window_a: float = 6.0, threshold: float = 0.5,
                        shell_width: float = 0.08, shell_step: float = 0.12, min_shells: int = 12,
                        min_periods: float = 2.0, max_resolution_a: float | None = None,
                        workers: int | None = None) -> np.ndarray:
    """Local resolution (Angstrom) at which the local map-vs-model FSC first drops below ``threshold``.

    Parameters
    ----------
    map_zyx : (z, y, x) the experimental map.
    model_map_zyx : (z, y, x) the model's density simulated on the same grid (any scale).
    footprint_mask : (z, y, x) bool, voxels to report (e.g. within 2.5 A of an atom); None: all.
    voxel_size_a : voxel size in Angstrom.
    window_a : FWHM of the Gaussian correlation window at fine shells, Angstrom.
    threshold : correlation threshold (0.5).
    shell_width, shell_step, min_shells, min_periods : see the module docstring.
    max_resolution_a : the coarsest shell (Angstrom); None: 20 A or a quarter of the box edge.

    Returns
    -------
    (z, y, x) float32 resolution in Angstrom: between ``max_resolution_a`` (already below the threshold
    in the coarsest shell) and Nyquist (never below it); 0 outside the footprint.
    """
    if map_zyx.shape != model_map_zyx.shape:
        raise LocresError(f"map {map_zyx.shape} and model map {model_map_zyx.shape} are on different grids")
    if footprint_mask is not None and footprint_mask.shape != map_zyx.shape:
        raise LocresError(f"footprint {footprint_mask.shape} is not on the map's grid {map_zyx.shape}")
    if not (0.0 < threshold < 1.0):
        raise LocresError(f"threshold must lie between 0 and 1, got {threshold}")
    if not (window_a > 0 and shell_width > 0 and shell_step > 0):
        raise LocresError("window_a, shell_width and shell_step must be positive")
    v = float(voxel_size_a)
    if max_resolution_a is None:
        max_resolution_a = default_max_resolution_a(map_zyx.shape, v)
    freqs = shell_frequencies_per_a(v, max_resolution_a, shell_step, min_shells)
    inside = np.ones(map_zyx.shape, bool) if footprint_mask is None else np.asarray(footprint_mask, bool)
    points = np.argwhere(inside)
    res = np.zeros(map_zyx.shape, dtype=np.float32)
    if len(points) == 0:
        return res
    found = np.zeros(len(points), dtype=bool)
    f_cross = np.full(len(points), freqs[-1], dtype=np.float64)  # never below: Nyquist
    prev = None
    for k, c in local_correlation_curves(map_zyx, model_map_zyx, v, freqs, points, window_a, shell_width,
                                         min_periods, workers=workers):
        new = ~found & (c < threshold)
        if k == 0:
            f_cross[new] = freqs[0]
        elif new.any():
            d0, d1 = prev[new] - threshold, c[new] - threshold
            t = np.clip(d0 / np.maximum(d0 - d1, 1e-12), 0.0, 1.0)
            f_cross[new] = freqs[k - 1] + t * (freqs[k] - freqs[k - 1])
        found |= new
        prev = c
        if found.all():
            break
    res[tuple(points.T)] = 1.0 / f_cross
    log.debug("modelfsc: %d shells from %.2f to %.2f A, %d voxels", len(freqs), 1 / freqs[0],
              1 / freqs[-1], len(points))
    return res


def run(inputs: MethodInputs, window_a: float = 6.0, threshold: float = 0.5, shell_width: float = 0.08,
        shell_step: float = 0.12, min_shells: int = 12, min_periods: float = 2.0,
        max_resolution_a: float | None = None) -> LocalResolution:
    """Adapter for the pipeline: needs ``inputs.model_map`` and ``inputs.model_footprint`` (from
    ``input.model``); reports inside the footprint, and inside ``inputs.mask`` when one was given."""
    if inputs.model_map is None:
        raise LocresError(
            "method modelfsc needs a fitted atomic model: give input.model=MODEL.pdb (or .cif)"
        )
    fp = inputs.model_footprint
    if inputs.mask is not None:
        fp = inputs.mask if fp is None else (fp & inputs.mask)
    res = local_model_map_fsc(inputs.average_map(), inputs.model_map, fp, inputs.voxel_size_a,
                              window_a=window_a, threshold=threshold, shell_width=shell_width,
                              shell_step=shell_step, min_shells=min_shells, min_periods=min_periods,
                              max_resolution_a=max_resolution_a)
    info = {"what": "local map-vs-model FSC: where the windowed correlation of the map and the fitted "
                    "model's density in frequency shells first drops below the threshold; inside the "
                    "model's footprint (and the mask, when given)",
            "threshold": threshold, "window_a": window_a, "footprint_voxels": int((res > 0).sum())}
    return LocalResolution(resolution_a=res, info=info, mask=res > 0)
