"""Local band features: what the dense DeepRes models see, the same at training and inference time.

:func:`dense_features` takes the map (or the two half maps) at its own voxel size, puts it on the
network's grid (:func:`locres.core.maps.to_model_grid`, the one resampling of the project) and returns,
on the half-resolution grid (model voxels ``2 i``), per frequency band k (bands centred on
resolutions from 20 A down to 2 A, log-Gaussian in frequency):

- ``log E_k(x) / P99_k``: the local band power (the band-passed map squared, smoothed over a window
  that grows with the band's wavelength, 2.5-9 A) against its 99th percentile over the box (inside the
  molecule whatever the box holds; version 1, the first half-map model's, used the median, which an
  exactly flat solvent filling most of the box drives to zero);
- ``log P99_k / P90_k`` and ``log P99_k / P50_k`` (version 1: P90/P50, P50/P10): how the band's power
  is spread over the box, constant over the box; log ratios clipped to +-12;
- ``log P99_k / P99_{k-1}`` (version 1: P90): the spectrum's step from the next coarser band (it
  moves with sharpening, but a map low-passed at its global resolution falls by orders of magnitude);
- with half maps, the local band correlation ``rho_k(x) = <b1 b2> / sqrt(<b1^2> <b2^2>)`` (a local FSC
  per band, in the same windows);
- version 3, with half maps, also ``rho_k`` in windows twice as wide (5-18 A: in the narrow window a band
  holds only ~45 independent Fourier terms, so ``rho_k`` scatters by ~0.15, as much as the 0.143
  threshold itself), and two channels ``log(r_x / 1 A)``: the resolution at which ``rho_k`` (narrow and
  wide windows) first falls below ``FSC_THRESHOLD`` going from coarse to fine bands, interpolated in
  log resolution: the plain local-FSC answer, which the network then corrects. Single-map features of
  version 3 are version 2's.
- version 4, with half maps, also per band ``log(E_avg,k(x) / N_k(x))``: the average map's band power in
  the narrow window against its noise power, measured from the half-map difference (``(b1 - b2) / 2``,
  pure noise) in the wide window, whose hundreds of Fourier terms make it precise. Its expectation is
  ``1 + 2 SSNR_k(x)`` (the half maps' local SSNR): the local signal-to-noise ratio that the truth is
  defined by, which the correlations alone give only through their ~0.15 scatter. Noise is about
  stationary over a few nanometres, so the wide window costs little locality. Single-map features of
  version 4 are version 2's.
- version 5, single map, also per band ``log P99_k / N_k``: the band's peak power against its noise floor
  ``N_k``, the mean local band power over the box's quietest ``QUIET_FRACTION`` of voxels (quietest
  summed over bands, each band against its 99th percentile): the solvent where the map has one, else the
  gaps and the signal-free parts of the molecule. Over bands it traces the noise spectrum, white or
  coloured, which a single map otherwise shows only through the P50 of a box with more than half solvent;
  a flattened solvent reads as no floor (clipped at ``+LOG_CLIP``), so the net also learns when it has no
  noise reference. Half-map features of version 5 are version 4's.
- version 6, single map, also two channels ``log(r_x / 1 A)``: the resolution at which the band's local
  power against its noise floor, ``E_k(x) / N_k ~ 1 + SSNR_k(x)``, first falls below ``1 + s`` going
  from coarse to fine bands, for the map's SSNR ``s`` at the truth's threshold (``FLOOR_CROSSING_SSNR``
  0.33: a half-map FSC of 0.143 is a half-map SSNR of 0.167, twice that in their average) and at 1.
  The single-map analogue of version 3's local-FSC crossings: a crossing is an argmax over bands, which the
  net's per-voxel layers do not form by themselves, and on validation phantoms it ranks the truth where the
  net does not (and fails where the net succeeds). Half-map features of version 6 are version 4's.

Every feature but the spectral step is a ratio within one band, so a global isotropic filter
(sharpening, blurring), a scale and an offset leave them unchanged: only the network's judgement of
where signal gives way to noise remains. All powers share one floor, ``BAND_FLOOR`` times the strongest
band's, so bands a low-passed map has no power in read as empty rather than as ratios of rounding errors.
Pure numerics: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from locres.core.fourier import frequency_grid_per_a
from locres.core.maps import to_model_grid
from locres.errors import LocresError

BAND_RESOLUTIONS_A = tuple(float(r) for r in np.geomspace(20.0, 2.0, 12))
BAND_WIDTH_LOG = 0.16
WINDOW_RANGE_A = (2.5, 9.0)
WINDOW_PER_WAVELENGTH = 0.75
INPUT_KINDS = ("map", "halves")
BAND_FLOOR = 1e-5
LOG_CLIP = 12.0
FEATURE_VERSION = 2
FEATURE_VERSIONS = (1, 2, 3, 4, 5, 6)
QUIET_FRACTION = 0.2
WIDE_WINDOW_FACTOR = 2.0
WIDE_WINDOW_RANGE_A = (5.0, 18.0)
FSC_THRESHOLD = 0.143
FLOOR_CROSSING_SSNR = (0.33, 1.0)


def n_feature_channels(
    inputs: str, n_bands: int = len(BAND_RESOLUTIONS_A), version: int = FEATURE_VERSION
) -> int:
    """Channels of :func:`dense_features` for ``inputs`` ("map": 4 per band, in version 5 5 per band, in
    version 6 5 per band and 2 more; "halves": 5 per band, in version 3 6 per band and 2 more, in versions
    4-6 7 per band and 2 more)."""
    if inputs not in INPUT_KINDS:
        raise LocresError(f"unknown model inputs '{inputs}': map or halves")
    if inputs == "map":
        return {5: 5 * n_bands, 6: 5 * n_bands + len(FLOOR_CROSSING_SSNR)}.get(version, 4 * n_bands)
    return {3: 6 * n_bands + 2, 4: 7 * n_bands + 2, 5: 7 * n_bands + 2, 6: 7 * n_bands + 2}.get(
        version, 5 * n_bands)


def log_frequency_grid_per_a(shape_zyx, voxel_size_a: float) -> np.ndarray:
    """float32 ``log |s|`` (|s| in 1/A) on the rFFT grid, with DC set to ``-inf`` (no band passes it)."""
    f = frequency_grid_per_a(tuple(shape_zyx), voxel_size_a)
    with np.errstate(divide="ignore"):
        return np.log(f, out=f)


def band_transfer(log_f: np.ndarray, resolution_a: float) -> np.ndarray:
    """float32 log-Gaussian band pass centred on 1 / ``resolution_a``, from :func:`log_frequency_grid_per_a`.
    Computed in place in float32 (full-size float64 temporaries cost seconds and hundreds of MB on
    large boxes; the values agree with a float64 evaluation to float32 rounding)."""
    t = log_f + np.float32(np.log(resolution_a))
    t *= np.float32(1.0 / BAND_WIDTH_LOG)
    np.square(t, out=t)
    t *= np.float32(-0.5)
    return np.exp(t, out=t)


def window_transfer(shape_zyx, voxel_size_a: float, sigma_a: float) -> np.ndarray:
    """rFFT-shaped transfer of a Gaussian window of standard deviation ``sigma_a`` Angstrom."""
    f = frequency_grid_per_a(tuple(shape_zyx), voxel_size_a)
    return np.exp(-2.0 * (np.pi * sigma_a * f) ** 2).astype(np.float32)


def window_sigma_a(resolution_a: float, wide: bool = False) -> float:
    """Smoothing window (Angstrom) for the band at ``resolution_a`` (``wide``: version 3's second window)."""
    if wide:
        return float(np.clip(WIDE_WINDOW_FACTOR * WINDOW_PER_WAVELENGTH * resolution_a, *WIDE_WINDOW_RANGE_A))
    return float(np.clip(WINDOW_PER_WAVELENGTH * resolution_a, *WINDOW_RANGE_A))


def fsc_crossing_resolution_a(rho: np.ndarray, bands_a=BAND_RESOLUTIONS_A, threshold: float = FSC_THRESHOLD
                              ) -> np.ndarray:
    """Per voxel, the resolution (A) at which band correlations ``rho`` (K, ...) first fall below
    ``threshold`` going from the coarsest band to the finest, interpolated linearly in log resolution
    between the last band above and the first below; the coarsest band's resolution where even it is
    below, the finest's where none is."""
    log_r = np.log(np.asarray(bands_a, np.float64))
    k_max = rho.shape[0]
    below = rho < threshold
    first = np.where(below.any(axis=0), below.argmax(axis=0), k_max)
    prev = np.clip(first - 1, 0, k_max - 1)
    cur = np.clip(first, 0, k_max - 1)
    a = np.take_along_axis(rho, prev[None], axis=0)[0]
    b = np.take_along_axis(rho, cur[None], axis=0)[0]
    t = np.clip((a - threshold) / np.maximum(a - b, 1e-6), 0.0, 1.0)
    out = log_r[prev] + t * (log_r[cur] - log_r[prev])
    out = np.where(first == 0, log_r[0], np.where(first == k_max, log_r[-1], out))
    return np.exp(out)


def _smooth(x: np.ndarray, transfer: np.ndarray, workers: int) -> np.ndarray:
    return sfft.irfftn(sfft.rfftn(x, workers=workers) * transfer, s=x.shape, workers=workers)


def _log_ratio(a: np.ndarray | float, b: np.ndarray | float, eps: float) -> np.ndarray:
    return np.log((np.asarray(a) + eps) / (np.asarray(b) + eps)).astype(np.float32)


def band_features_model_grid(
    volumes: list[np.ndarray],
    model_voxel_size_a: float,
    bands_a=BAND_RESOLUTIONS_A,
    workers: int = 1,
    version: int = FEATURE_VERSION,
) -> np.ndarray:
    """Features of volumes already on the model grid: one volume (map) or two (half maps).

    ``version`` 2 (default) refers each band's powers to its 99th percentile (the molecule's), clipped;
    version 1 (the first shipped half-map model) to its median; version 3 adds wide-window correlations
    and the local-FSC crossings to version 2's half-map features, version 4 the local SSNR against the
    half-map difference's noise to version 3's, version 5 the noise floor of each band to version 2's
    single-map features, version 6 the floor crossings to version 5's (see the module docstring).
    Returns (C, ceil(z/2), ceil(y/2), ceil(x/2)) float32, C = :func:`n_feature_channels`.
    """
    if version not in FEATURE_VERSIONS:
        raise LocresError(f"unknown feature version {version}: one of {FEATURE_VERSIONS}")
    if len(volumes) not in (1, 2):
        raise LocresError("band features take one map or two half maps")
    shape = volumes[0].shape
    if any(v.shape != shape for v in volumes) or len(shape) != 3 or min(shape) < 4:
        raise LocresError(f"band features need 3D volumes of one shape (at least 4 voxels), got {shape}")
    if len(volumes) == 1:
        return _single_map_features(band_energies(volumes[0], model_voxel_size_a, bands_a, workers),
                                    bands_a, version)
    specs = [sfft.rfftn(np.asarray(v, np.float32), workers=workers) for v in volumes]
    log_f = log_frequency_grid_per_a(shape, model_voxel_size_a)  # one band pass at a time, not K at once
    sub = (slice(None, None, 2),) * 3
    energies, corr, corr_wide, ssnr = [], [], [], []
    for r in bands_a:
        win = window_transfer(shape, model_voxel_size_a, window_sigma_a(r))
        band = band_transfer(log_f, r)
        b = [sfft.irfftn(sp * band, s=shape, workers=workers) for sp in specs]
        # b1^2, b2^2, b1 b2 transformed once, smoothed in each window
        products = [sfft.rfftn(p, workers=workers) for p in (b[0] * b[0], b[1] * b[1], b[0] * b[1])]

        def smoothed(transfer, products=products):
            e1, e2, cross = (sfft.irfftn(p * transfer, s=shape, workers=workers)[sub] for p in products)
            return np.maximum(e1, 0.0), np.maximum(e2, 0.0), cross

        e1, e2, cross = smoothed(win)
        # the average's energy from the halves' (smoothing is linear): <(b1 + b2)^2> / 4
        energies.append(np.maximum(0.25 * (e1 + e2 + 2.0 * cross), 0.0))
        floor = 1e-6 * float(max(np.percentile(e1, 99), np.percentile(e2, 99))) + 1e-30
        corr.append((cross / np.sqrt(e1 * e2 + floor**2)).astype(np.float32))
        if version >= 3:
            w1, w2, wc = smoothed(window_transfer(shape, model_voxel_size_a, window_sigma_a(r, wide=True)))
            corr_wide.append((wc / np.sqrt(w1 * w2 + floor**2)).astype(np.float32))
        if version >= 4:  # noise of the average: <((b1 - b2) / 2)^2> in the wide window
            noise = np.maximum(0.25 * (w1 + w2 - 2.0 * wc), 0.0)
            ssnr.append(np.clip(_log_ratio(energies[-1], noise, floor), -LOG_CLIP, LOG_CLIP))
    if version >= 3:
        crossings = [np.log(fsc_crossing_resolution_a(np.stack(c), bands_a)).astype(np.float32)
                     for c in (corr, corr_wide)]
        return np.stack(_peak_referred(energies) + corr + corr_wide + crossings + ssnr
                        ).astype(np.float32, copy=False)
    if version == 2:
        return np.stack(_peak_referred(energies) + corr).astype(np.float32, copy=False)
    return _version_1_features(energies, corr)


def band_energies(volume: np.ndarray, model_voxel_size_a: float, bands_a=BAND_RESOLUTIONS_A,
                  workers: int = 1) -> list[np.ndarray]:
    """Per band, the local band power of one volume on the model grid: the band-passed volume squared,
    smoothed over the band's window (:func:`window_sigma_a`), on the half-resolution grid (voxels ``2 i``)."""
    shape = volume.shape
    spec = sfft.rfftn(np.asarray(volume, np.float32), workers=workers)
    log_f = log_frequency_grid_per_a(shape, model_voxel_size_a)  # one band pass at a time, not K at once
    sub = (slice(None, None, 2),) * 3
    energies = []
    for r in bands_a:
        b = sfft.irfftn(spec * band_transfer(log_f, r), s=shape, workers=workers)
        win = window_transfer(shape, model_voxel_size_a, window_sigma_a(r))
        energies.append(np.maximum(_smooth(b * b, win, workers), 0.0)[sub])
    return energies


def _single_map_features(energies: list[np.ndarray], bands_a, version: int) -> np.ndarray:
    if version >= 5:
        pct = band_percentiles(energies)
        floors = noise_floors(energies, pct[:, 2])
        feats = _peak_referred(energies, pct) + noise_floor_referred(energies, pct[:, 2], floors)
        if version == 6:
            feats += [np.log(r).astype(np.float32) for r in floor_crossings_a(energies, floors, bands_a)]
        return np.stack(feats).astype(np.float32, copy=False)
    if version >= 2:  # versions 3 and 4 add only half-map channels
        return np.stack(_peak_referred(energies)).astype(np.float32, copy=False)
    return _version_1_features(energies, [])


def _version_1_features(energies: list[np.ndarray], corr: list[np.ndarray]) -> np.ndarray:
    pct = np.array([np.percentile(e, [10, 50, 90]) for e in energies])  # (K, 3)
    # one floor for every band, far below the strongest band's power: a band the map has no power in
    # (a low-passed map) reads as exactly that, not as the ratio of two rounding errors
    eps = BAND_FLOOR * float(pct[:, 2].max()) + 1e-30
    local, spread = [], []
    for k, e in enumerate(energies):
        p10, p50, p90 = pct[k]
        prev90 = pct[k - 1, 2] if k > 0 else p90
        local.append(_log_ratio(e, p50, eps))
        spread += [
            np.full(e.shape, _log_ratio(v1, v0, eps), np.float32)
            for v1, v0 in ((p90, p50), (p50, p10), (p90, prev90))
        ]
    return np.stack(local + spread + corr).astype(np.float32, copy=False)


def band_percentiles(energies: list[np.ndarray]) -> np.ndarray:
    """(K, 3): each band's 50th, 90th and 99th percentile of local power over the box."""
    return np.array([np.percentile(e, [50, 90, 99]) for e in energies])


def _peak_referred(energies: list[np.ndarray], pct: np.ndarray | None = None) -> list[np.ndarray]:
    """Version-2 features: powers against each band's 99th percentile (inside the molecule whatever the
    solvent fraction or flattening), log ratios clipped to +-``LOG_CLIP``. ``pct``: the
    :func:`band_percentiles` of ``energies`` when the caller has them."""
    pct = band_percentiles(energies) if pct is None else pct
    eps = BAND_FLOOR * float(pct[:, 2].max()) + 1e-30
    local, spread = [], []
    for k, e in enumerate(energies):
        p50, p90, p99 = pct[k]
        prev99 = pct[k - 1, 2] if k > 0 else p99
        local.append(np.clip(_log_ratio(e, p99, eps), -LOG_CLIP, 2.0))
        spread += [
            np.full(e.shape, np.clip(_log_ratio(v1, v0, eps), -LOG_CLIP, LOG_CLIP), np.float32)
            for v1, v0 in ((p99, p90), (p99, p50), (p99, prev99))
        ]
    return local + spread


def noise_floors(energies: list[np.ndarray], p99: np.ndarray | None = None,
                 quiet_fraction: float = QUIET_FRACTION) -> np.ndarray:
    """(K,): each band's noise floor ``N_k``, the mean of its local power over the quietest
    ``quiet_fraction`` of the voxels (quietness: the sum over bands of each band's power against its 99th
    percentile, so every band's floor is read in the same voxels); 0 where the solvent is exactly flat.
    ``p99``: each band's 99th percentile when the caller has it (:func:`band_percentiles`)."""
    p99 = band_percentiles(energies)[:, 2] if p99 is None else np.asarray(p99)
    eps = BAND_FLOOR * float(p99.max()) + 1e-30
    quietness = sum(e / (p + eps) for e, p in zip(energies, p99, strict=True))
    quiet = quietness <= np.quantile(quietness, quiet_fraction)
    return np.array([float(e[quiet].mean()) for e in energies])


def floor_crossings_a(energies: list[np.ndarray], floors: np.ndarray, bands_a=BAND_RESOLUTIONS_A,
                      ssnrs=FLOOR_CROSSING_SSNR) -> list[np.ndarray]:
    """Per SSNR level ``s``, the resolution (A) at which ``E_k(x) / N_k``, whose expectation is
    ``1 + SSNR_k(x)`` where the noise is stationary, first falls below ``1 + s`` going from the coarsest
    band to the finest (interpolated as :func:`fsc_crossing_resolution_a`). Compared as
    ``SSNR / (1 + SSNR)`` against ``s / (1 + s)``, which stays in [0, 1) however large the ratio grows
    (a flat solvent's floor of 0 reads as no crossing: the finest band)."""
    eps = BAND_FLOOR * float(max(float(np.max(e)) for e in energies)) + 1e-30
    excess = np.stack([np.maximum(e / (n + eps) - 1.0, 0.0) for e, n in zip(energies, floors, strict=True)])
    frac = (excess / (1.0 + excess)).astype(np.float32)
    return [fsc_crossing_resolution_a(frac, bands_a, s / (1.0 + s)) for s in ssnrs]


def noise_floor_referred(energies: list[np.ndarray], p99: np.ndarray | None = None,
                         floors: np.ndarray | None = None,
                         quiet_fraction: float = QUIET_FRACTION) -> list[np.ndarray]:
    """Version-5 single-map features: per band ``log P99_k / N_k``, constant over the box, clipped to
    +-``LOG_CLIP``, where ``N_k`` is the mean of band k's local power over the quietest ``quiet_fraction``
    of the voxels (quietness: the sum over bands of each band's power against its 99th percentile, so every
    band's floor is read in the same voxels). A global filter or scale multiplies a band's P99 and N alike
    and leaves the feature; an exactly flat solvent gives N = 0, the clip. ``p99``: each band's 99th
    percentile when the caller has it (:func:`band_percentiles`); ``floors``: the :func:`noise_floors`."""
    p99 = band_percentiles(energies)[:, 2] if p99 is None else np.asarray(p99)
    floors = noise_floors(energies, p99, quiet_fraction) if floors is None else floors
    eps = BAND_FLOOR * float(p99.max()) + 1e-30
    return [np.full(e.shape, np.clip(_log_ratio(p, float(n), eps), -LOG_CLIP, LOG_CLIP), np.float32)
            for e, p, n in zip(energies, p99, floors, strict=True)]


def dense_features(
    voxel_size_a: float,
    model_voxel_size_a: float,
    map_zyx: np.ndarray | None = None,
    half1_zyx: np.ndarray | None = None,
    half2_zyx: np.ndarray | None = None,
    inputs: str = "map",
    workers: int = 1,
    version: int = FEATURE_VERSION,
) -> np.ndarray:
    """The dense models' input from maps at their own voxel size (see the module docstring).

    ``inputs="map"`` uses ``map_zyx`` (or the half-map average when no map is given); ``"halves"`` needs
    both half maps. Returns (C, ceil(nz'/2), ceil(ny'/2), ceil(nx'/2)) on the model grid's half-resolution
    grid, where (nz', ny', nx') = :func:`locres.core.maps.model_grid_shape` of the input.
    """
    if inputs not in INPUT_KINDS:
        raise LocresError(f"unknown model inputs '{inputs}': map or halves")
    if inputs == "halves":
        if half1_zyx is None or half2_zyx is None:
            raise LocresError(
                "this is a half-map model: give input.half1=H1.mrc input.half2=H2.mrc "
                "(or use the single-map model with input.map)"
            )
        vols = [to_model_grid(h, voxel_size_a, model_voxel_size_a) for h in (half1_zyx, half2_zyx)]
    else:
        if map_zyx is None:
            if half1_zyx is None or half2_zyx is None:
                raise LocresError("the single-map model needs input.map (or two half maps to average)")
            map_zyx = 0.5 * (np.asarray(half1_zyx, np.float32) + np.asarray(half2_zyx, np.float32))
        vols = [to_model_grid(map_zyx, voxel_size_a, model_voxel_size_a)]
    return band_features_model_grid(vols, model_voxel_size_a, workers=workers, version=version)
