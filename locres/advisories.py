"""Input advisories: what a map (or half maps, or a mask) says about itself before a method reads it.

The field's good practice for local resolution (Vilas et al. 2020): analyse the raw reconstruction (not a
masked, sharpened or low-pass filtered one), use independent half maps, leave room for noise around the
particle, and keep a learned model inside the range it was trained on. :func:`advise` checks each of
these on arrays and returns a list of :class:`Advisory` (``code``, one-line ``message`` saying what was
found and what to do). Pure numerics: (z, y, x) arrays plus ``voxel_size_a``, nothing read or written.

Checks and their thresholds (each reasoned from what a raw reconstruction looks like)
-------------------------------------------------------------------------------------
``masked``
    A raw reconstruction carries noise in every voxel, so float values practically never repeat; a mask
    or solvent flattening sets the solvent to one constant. Fires when at least ``MASKED_FRACTION``
    (10 %) of the voxels away from the box faces (a ``BORDER_PX``-voxel frame is left out, so zero
    padding of a few edge planes does not count) hold the map's most common value (within 1e-6 of the
    map's standard deviation). Even a tight mask in a tight cubic box leaves the corners outside the
    inscribed sphere, 48 % of the box, as solvent. :func:`constant_background` is the detector ResMap's
    single-map mode uses too.
``hard_mask_edge``
    A masked map whose density steps from the constant background straight to full height: the voxels
    next to the background deviate from it by more than ``HARD_EDGE_RATIO`` (0.15) of the density's
    standard deviation (median). A soft edge of ``w`` voxels leaves at most about ``(1 - cos(pi/w))/2``
    of the density there (0.07 for 6 voxels, 0.25 for 3), and less, since densities fade towards the
    solvent. A hard edge adds false high-resolution detail.
``lowpass_filtered``
    Noise in a raw map runs to Nyquist. Fires when the median shell power over the outer band
    (``TAIL_BAND`` of Nyquist) is below ``LOWPASS_POWER_RATIO`` (1e-8) of the strongest non-DC shell; a raw
    map's noise floor sits 1e2-1e6 below it, a filtered map's at float round-off.
``sharpened``
    Noise in a raw map is white or falls towards Nyquist (interpolation, envelopes); B-factor sharpening
    lifts it as ``exp(+B s^2 / 2)`` in power. The log shell power over the outer half of the spectrum
    (from ``max(0.5 Nyquist, 1/10 A)``) is fitted by ``a - B_app s^2 / 2``; fires when ``B_app`` is
    below ``-SHARPENED_B_A2`` (25 A^2; practical sharpening B factors are 50-200 A^2).
``oversampled``
    The signal ends where the shell power of the map meets its noise floor (twice the outer band's
    median; with half maps, where their FSC falls below 0.143). Fires when that is below
    ``OVERSAMPLED_FRACTION`` (0.4) of Nyquist, i.e. coarser than 5 voxels.
``halves_masked``, ``halves_not_independent``
    The masked check on each half map; the half maps' FSC averaged over the outer band above
    ``INDEPENDENT_FSC`` (0.9): with independent noise FSC = SNR / (1 + SNR), and no reconstruction keeps
    an SNR of 9 in every shell to Nyquist.
``no_room_for_noise``
    Methods that estimate noise from the background of a single map (``NOISE_MARGIN_PX``: MonoDir,
    MonoRes, ResMap; 10 voxels, MonoDir's rule) need that much background between the particle (the mask,
    else a smoothed threshold of the map) and every face of the box.
``outside_trained_range``
    A learned model's ``trained_range_a`` against the map's resolution (half-map FSC 0.143, else the
    signal end above) and its Nyquist limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from locres.core.fourier import (
    resolution_at_threshold,
    rfft_weights,
    shell_index,
    shell_sums,
    shell_width_per_a,
)
from locres.errors import LocresError

log = logging.getLogger(__name__)

MASKED_FRACTION = 0.10
BORDER_PX = 3
CONSTANT_TOLERANCE = 1e-6
HARD_EDGE_RATIO = 0.15
LOWPASS_POWER_RATIO = 1e-8
TAIL_BAND = (0.85, 1.0)
SHARPENED_B_A2 = 25.0
OVERSAMPLED_FRACTION = 0.25
INDEPENDENT_FSC = 0.9
NOISE_MARGIN_PX = {"monodir": 10, "monores": 10, "resmap": 10}


@dataclass(frozen=True)
class Advisory:
    """One finding about the inputs: a short ``code`` and a one-line ``message`` (what and what to do)."""

    code: str
    message: str

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class ConstantBackground:
    """Result of :func:`constant_background`.

    ``value``: the most common voxel value; ``fraction``: the share of the box holding it;
    ``interior_fraction``: the same away from a ``BORDER_PX`` frame; ``region``: bool (z, y, x), the
    voxels equal to ``value``; ``masked``: whether the map counts as masked or solvent-flattened.
    """

    value: float
    fraction: float
    interior_fraction: float
    region: np.ndarray
    masked: bool


# ------------------------------------------------------------------------------------------ masking
def constant_background(volume: np.ndarray, min_fraction: float = MASKED_FRACTION,
                        border_px: int = BORDER_PX) -> ConstantBackground:
    """Find the constant background a mask or solvent flattening leaves (see the module docstring).

    Parameters
    ----------
    volume : (z, y, x) map.
    min_fraction : share of the interior voxels (away from a ``border_px`` frame) that must hold the
        most common value for the map to count as masked.
    border_px : frame of voxels at the box faces left out (zero padding is not a mask).
    """
    v = np.asarray(volume)
    if v.ndim != 3 or v.size == 0:
        raise LocresError(f"the map must be a 3-D array, got shape {v.shape}")
    values, counts = np.unique(v, return_counts=True)
    value = float(values[int(np.argmax(counts))]) + 0.0  # -0.0 reads 0
    tol = CONSTANT_TOLERANCE * float(np.std(v))
    region = np.abs(v - value) <= tol
    inner = tuple(slice(border_px, n - border_px) if n > 2 * border_px + 2 else slice(None) for n in v.shape)
    interior = float(region[inner].mean())
    return ConstantBackground(value, float(region.mean()), interior, region,
                              bool(interior >= min_fraction and region.sum() > 1))


def _masked_advisory(found: ConstantBackground, role: str, code: str = "masked") -> Advisory:
    what = "masked or solvent-flattened" if code == "masked" else "masked"
    return Advisory(code, f"{role} looks {what}: {100 * found.fraction:.0f} % of its voxels are exactly "
                          f"{found.value:g} (a constant background); local resolution needs the raw, "
                          "unmasked reconstruction (half maps if you have them)")


def hard_edge_ratio(volume: np.ndarray, found: ConstantBackground) -> float:
    """Median |value - background| of the voxels next to the constant background, over the density's std."""
    v = np.asarray(volume, dtype=np.float64)
    edge = ndimage.binary_dilation(found.region) & ~found.region
    rest = v[~found.region]
    if not edge.any() or rest.size < 2 or float(rest.std()) == 0.0:
        return 0.0
    return float(np.median(np.abs(v[edge] - found.value)) / rest.std())


def mask_edge_width_px(mask_values: np.ndarray) -> float:
    """Soft-edge width of a mask in voxels: voxels strictly between 5 % and 95 % per surface voxel."""
    m = np.asarray(mask_values, dtype=np.float64)
    top = float(m.max())
    if top <= 0:
        return 0.0
    m = m / top
    inside = m >= 0.5
    surface = int((inside & ~ndimage.binary_erosion(inside)).sum())
    partial = int(((m > 0.05) & (m < 0.95)).sum())
    return partial / max(surface, 1)


# ---------------------------------------------------------------------------------------- spectrum
@dataclass(frozen=True)
class Spectrum:
    """Shell power of a map: ``freq_per_a`` (n_shells,), ``power`` per coefficient (n_shells,)."""

    freq_per_a: np.ndarray
    power: np.ndarray
    nyquist_per_a: float


def shell_power(volume: np.ndarray, voxel_size_a: float) -> Spectrum:
    """Mean power per Fourier coefficient in each shell up to Nyquist (DC shell included as shell 0)."""
    v = np.asarray(volume, dtype=np.float32)
    v = v - float(v.mean())
    idx, n = shell_index(v.shape, voxel_size_a)
    w = rfft_weights(v.shape)
    p = np.abs(np.fft.rfftn(v)).astype(np.float64) ** 2  # float64: sharpened maps overflow float32
    sums = shell_sums(p, idx, n, w)
    counts = shell_sums(np.ones_like(p), idx, n, w)
    freq = np.arange(n) * shell_width_per_a(v.shape, voxel_size_a)
    return Spectrum(freq, sums / np.maximum(counts, 1.0), 0.5 / float(voxel_size_a))


def _band(spec: Spectrum, lo: float, hi: float) -> np.ndarray:
    f = spec.freq_per_a / spec.nyquist_per_a
    sel = (f >= lo) & (f <= hi + 1e-9)
    sel[0] = False
    return sel


def lowpass_power_ratio(spec: Spectrum) -> float:
    """Median power of the outer band over the strongest non-DC shell (tiny: the map was low-passed)."""
    tail = spec.power[_band(spec, *TAIL_BAND)]
    peak = float(spec.power[1:].max()) if spec.power.size > 1 else 0.0
    if tail.size == 0 or peak <= 0:
        return 1.0
    return float(np.median(tail)) / peak


def lowpass_cutoff_per_a(spec: Spectrum) -> float:
    """Where a low-passed map's power ends: the last shell above the geometric mean of the strongest
    non-DC shell and the outer band's median (1/A)."""
    tail = float(np.median(spec.power[_band(spec, *TAIL_BAND)]))
    level = np.sqrt(max(tail, 0.0) * float(spec.power[1:].max()))
    above = np.flatnonzero(spec.power[1:] > level) + 1
    return float(spec.freq_per_a[int(above.max())]) if above.size else float(spec.freq_per_a[1])


def apparent_bfactor_a2(spec: Spectrum) -> float:
    """B (A^2) of ``power ~ exp(-B s^2 / 2)`` fitted over the outer half of the spectrum (< 0: rising)."""
    lo = max(0.5, 0.1 / spec.nyquist_per_a)
    sel = _band(spec, min(lo, 0.9), 1.0) & (spec.power > 0)
    if sel.sum() < 3:
        return 0.0
    s2 = spec.freq_per_a[sel] ** 2
    slope = np.polyfit(s2, np.log(spec.power[sel]), 1)[0]
    return float(-2.0 * slope)


def signal_end_per_a(spec: Spectrum, floor_factor: float = 2.0) -> float:
    """Highest frequency (1/A) where the smoothed shell power exceeds ``floor_factor`` x the outer band's."""
    tail = _band(spec, *TAIL_BAND)
    floor = float(np.median(spec.power[tail])) if tail.any() else 0.0
    smooth = ndimage.uniform_filter1d(spec.power, size=3, mode="nearest")
    above = np.flatnonzero(smooth[1:] > floor_factor * floor) + 1
    if above.size == 0:
        return float(spec.freq_per_a[1])
    return float(spec.freq_per_a[int(above.max())])


def half_map_fsc(half1: np.ndarray, half2: np.ndarray, voxel_size_a: float) -> tuple[np.ndarray, np.ndarray]:
    """Global (unmasked) FSC of two half maps: (freq_per_a, fsc), each (n_shells,)."""
    a = np.fft.rfftn(np.asarray(half1, dtype=np.float32))
    b = np.fft.rfftn(np.asarray(half2, dtype=np.float32))
    idx, n = shell_index(half1.shape, voxel_size_a)
    w = rfft_weights(half1.shape)
    num = shell_sums(np.real(a * np.conj(b)), idx, n, w)
    den = np.sqrt(shell_sums(np.abs(a) ** 2, idx, n, w) * shell_sums(np.abs(b) ** 2, idx, n, w))
    fsc = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return np.arange(n) * shell_width_per_a(half1.shape, voxel_size_a), fsc


# ------------------------------------------------------------------------------------- room, range
def particle_mask(volume: np.ndarray, voxel_size_a: float, smooth_a: float = 4.0,
                  background: ConstantBackground | None = None) -> np.ndarray:
    """Bool (z, y, x) where the particle is: the map Gaussian-smoothed over ``smooth_a`` Angstrom, above
    its background (median) by 5 robust standard deviations and 5 % of its peak; components under 1 % of
    the largest dropped. A constant background is taken as solvent."""
    v = np.asarray(volume, dtype=np.float32)
    if background is not None and background.masked:
        solid = ~background.region
        lab, n = ndimage.label(solid)
    else:
        smooth = ndimage.gaussian_filter(v, sigma=max(smooth_a / (2.0 * voxel_size_a), 0.5))
        med = float(np.median(smooth))
        mad = 1.4826 * float(np.median(np.abs(smooth - med)))
        thr = med + max(5.0 * mad, 0.05 * (float(smooth.max()) - med))
        lab, n = ndimage.label(smooth > thr)
    if n == 0:
        return np.zeros(v.shape, bool)
    sizes = np.bincount(lab.ravel())[1:]
    keep = np.flatnonzero(sizes >= 0.01 * sizes.max()) + 1
    return np.isin(lab, keep)


def room_px(mask: np.ndarray) -> tuple[int, str]:
    """Smallest gap (voxels) between the mask's bounding box and a face of the box, and which face."""
    m = np.asarray(mask, bool)
    if not m.any():
        return min(m.shape), "none"
    gaps = []
    for axis, name in zip(range(3), "zyx"):
        hit = np.flatnonzero(m.any(axis=tuple(a for a in range(3) if a != axis)))
        gaps += [(int(hit[0]), f"{name}-"), (int(m.shape[axis] - 1 - hit[-1]), f"{name}+")]
    return min(gaps)


# ---------------------------------------------------------------------------------------- advise
def advise(volume: np.ndarray, voxel_size_a: float, half1: np.ndarray | None = None,
           half2: np.ndarray | None = None, mask: np.ndarray | None = None, method: str | None = None,
           trained_range_a: tuple[float, float] | None = None,
           mask_values: np.ndarray | None = None) -> list[Advisory]:
    """Every advisory for one method's inputs (see the module docstring), in a fixed order.

    Parameters
    ----------
    volume : (z, y, x) the map the method reads (the half-map average when only halves are given).
    voxel_size_a : Angstrom per voxel.
    half1, half2 : (z, y, x) half maps on the same grid, or None.
    mask : bool (z, y, x) where the particle is (the given mask), or None (found from the map).
    method : the method's name; decides the room check (``NOISE_MARGIN_PX``, single-map mode only).
    trained_range_a : (finest, coarsest) Angstrom of a learned model, or None.
    mask_values : the given mask's values on its own grid (for its edge width in the message), or None.

    Returns
    -------
    list of Advisory, empty when nothing was found.
    """
    vx = float(voxel_size_a)
    if not (np.isfinite(vx) and vx > 0):
        raise LocresError(f"voxel size must be a positive number of Angstrom, got {voxel_size_a}")
    volume = np.asarray(volume, dtype=np.float32)
    found = constant_background(volume)
    out = _masking_advisories(volume, found, mask_values)
    spec = shell_power(volume, vx)
    lowpassed = lowpass_power_ratio(spec) < LOWPASS_POWER_RATIO
    out += _spectrum_advisories(spec, vx, lowpassed)
    res_a = None
    if half1 is not None and half2 is not None:
        half1, half2 = np.asarray(half1, dtype=np.float32), np.asarray(half2, dtype=np.float32)
        res_a = _half_map_advisories(half1, half2, vx, out)
        if any(a.code == "halves_masked" for a in out) and np.allclose(volume, 0.5 * (half1 + half2)):
            out = [a for a in out if a.code != "masked"]  # the map is their average: say it once
    elif not lowpassed and not any(a.code == "sharpened" for a in out):
        res_a = 1.0 / signal_end_per_a(spec)
    if res_a is not None and res_a > 2.0 * vx / OVERSAMPLED_FRACTION:
        out.append(Advisory("oversampled", f"the map is oversampled: its signal ends near {res_a:.1f} A, "
                            f"far below Nyquist ({2 * vx:.2f} A; {res_a / vx:.1f} voxels); methods run "
                            "slower for nothing: bin it to about resolution / 3 per voxel"))
    margin = NOISE_MARGIN_PX.get(method or "")
    if margin is not None and (half1 is None or half2 is None):
        particle = np.asarray(mask, bool) if mask is not None else particle_mask(volume, vx, background=found)
        gap, face = room_px(particle)
        if gap < margin:
            out.append(Advisory("no_room_for_noise", f"the particle comes within {gap} px of the box edge "
                                f"({face}); {method}'s single-map noise estimate needs more than {margin} "
                                "px of background around it: use a bigger box, or give half maps"))
    if trained_range_a is not None:
        adv = _trained_range_advisory(trained_range_a, vx, res_a)
        if adv is not None:
            out.append(adv)
    for a in out:
        log.debug("advisory %s", a)
    return out


def _masking_advisories(volume: np.ndarray, found: ConstantBackground,
                        mask_values: np.ndarray | None) -> list[Advisory]:
    if not found.masked:
        return []
    out = [_masked_advisory(found, "the map")]
    ratio = hard_edge_ratio(volume, found)
    if ratio > HARD_EDGE_RATIO:
        given = "" if mask_values is None else \
            f" (the given mask's soft edge is {mask_edge_width_px(mask_values):.1f} px)"
        out.append(Advisory("hard_mask_edge", "the map's density steps from its background at the mask "
                            f"boundary (edge {ratio:.2f} of the density's std){given}: a hard mask adds "
                            "false high resolution; use the unmasked map, or mask only with a soft edge of "
                            "3 px or more"))
    return out


def _spectrum_advisories(spec: Spectrum, vx: float, lowpassed: bool) -> list[Advisory]:
    if lowpassed:
        cut = lowpass_cutoff_per_a(spec)
        return [Advisory("lowpass_filtered", f"the map looks low-pass filtered: no power beyond about "
                         f"{1.0 / cut:.1f} A (its noise stops short of Nyquist, {2 * vx:.2f} A); use the "
                         "unfiltered reconstruction")]
    b_app = apparent_bfactor_a2(spec)
    if b_app < -SHARPENED_B_A2:
        return [Advisory("sharpened", "the map looks sharpened: its high-frequency power rises towards "
                         f"Nyquist (apparent B {b_app:.0f} A^2; a raw map's noise is flat or falls); use the "
                         "unsharpened reconstruction (appearance models such as DeepRes: compare with "
                         "input.reference_map)")]
    return []


def _half_map_advisories(half1: np.ndarray, half2: np.ndarray, vx: float, out: list[Advisory]) -> float:
    """Append the half-map advisories; return the FSC 0.143 resolution (Angstrom)."""
    if half1.shape != half2.shape:
        raise LocresError(f"half maps differ in shape {half1.shape} vs {half2.shape}")
    masked = [(k, f) for k, f in ((1, constant_background(half1)), (2, constant_background(half2)))
              if f.masked]
    if masked:
        which = "the half maps" if len(masked) == 2 else f"half map {masked[0][0]}"
        out.append(_masked_advisory(masked[0][1], which, code="halves_masked"))
    freq, fsc = half_map_fsc(half1, half2, vx)
    outer = (freq >= TAIL_BAND[0] * 0.5 / vx) & (np.arange(freq.size) > 0)
    mean_outer = float(fsc[outer].mean()) if outer.any() else 0.0
    if mean_outer > INDEPENDENT_FSC:
        out.append(Advisory("halves_not_independent", f"the half maps agree to Nyquist (FSC {mean_outer:.2f} "
                            "near Nyquist): they are not independent reconstructions (same data, a shared "
                            "mask or refined together); give gold-standard half maps"))
    return resolution_at_threshold(freq, fsc, 0.143)


def _trained_range_advisory(trained_range_a, vx: float, res_a: float | None) -> Advisory | None:
    lo, hi = sorted(float(r) for r in trained_range_a)
    if 2.0 * vx > hi:
        return Advisory("outside_trained_range", f"the map's Nyquist limit ({2 * vx:.2f} A) is coarser than "
                        f"the model's trained range {lo:.1f}-{hi:.1f} A: use a map with smaller voxels "
                        "or a model trained for this resolution")
    if res_a is not None and not (lo <= res_a <= hi):
        return Advisory("outside_trained_range", f"the map's resolution (about {res_a:.1f} A) is outside "
                        f"the model's trained range {lo:.1f}-{hi:.1f} A: its values there are extrapolated; "
                        "use a model trained for this range or an analytical method")
    return None
