"""Training maps that look like real ones, with the expected-local-FSC truth at every voxel.

Pure numerics driven by a random generator. From clean densities (simulated from atomic models, e.g.
data_prep shards) :func:`make_training_example` builds, at a random voxel size:

1. a box filled by one to a few structures placed at random offsets (an assembly), non-cubic;
2. spatially varying resolution, either a sharp-cut ladder (raised-cosine low passes) or a ladder of
   B-factor envelopes, blended per voxel along a smooth field (radial, linear, blobs or uniform);
3. two half maps with independent white or coloured noise at an SNR (0.3-10 by default); with
   ``coloured_noise_fsc_falls``, coloured noise no redder than the signal
   (:func:`noise_bfactor_keeping_fsc_falling_a2`);
4. a global B factor (sharpening or blurring, -150 to +150 A^2) applied to both halves alike,
   sometimes the figure-of-merit weighting ``sqrt(2 FSC / (1 + FSC))`` of the halves' own FSC (as
   RELION's and cryoSPARC's post-processing do), and often a low pass at the map's global resolution
   (as deposited maps are filtered): a raised cosine with nothing beyond the cut, or a Butterworth
   whose power keeps falling smoothly beyond it (orders 4-30: EMD-3488's falls ~35-fold from 3.2 to
   3.0 A and on, order ~20);
5. optional solvent flattening (the map times a soft mask, the background set to a constant) and a
   random intensity scale and offset.

The truth is :mod:`locres.simulate.fsc_target`'s: from the clean density's power spectrum inside the
molecular mask, scaled at each voxel by how much signal its neighbourhood holds (``signal_window_a``,
the local signal fraction; 0 for the first models' whole-molecule spectrum), the local transfers' power
mixed over the same window (``transfer_window_a``; 0 for the voxel's own transfer, the models before
2026-12-07) and the noise power spectrum. Steps 4 and 5 leave it unchanged, as
they should: a global filter changes no signal-to-noise ratio, flattening changes nothing inside the
mask (only no voxel reads finer than where a global filter leaves nothing: the truth is clipped at a
raised cosine's cut, where a Butterworth's power falls below ``soft_lowpass_power_floor`` and where
the figure-of-merit weight first vanishes). The appearance of
the map moves with every one of them, which is what the network must learn to see through.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from locres.core.fourier import (
    FSC_RECOVERY_MARGIN,
    butterworth_floor_resolution_a,
    butterworth_lowpass_transfer,
    frequency_grid_per_a,
    fsc_recovers,
    raised_cosine_lowpass_transfer,
    rfft_weights,
    shell_fsc_of_spectra,
    shell_index,
    shell_sums,
    shell_width_per_a,
)
from locres.core.maps import to_model_grid
from locres.errors import LocresError
from locres.simulate.fsc_target import (
    SIGNAL_FRACTIONS,
    crossing_table_a,
    expected_fsc,
    local_signal_fraction,
    shell_power_per_voxel,
    truth_from_ladder_position_a,
    windowed_ladder_truth_a,
)
from locres.simulate.noise import make_noise, mean_power_of_transfer, noise_sigma_for_snr, noise_transfer
from locres.simulate.phantom import PATTERNS, truth_field

KINDS = ("cut", "envelope")


@dataclass
class TrainingMapRecipe:
    """Ranges the training maps are drawn from (lengths in Angstrom, B in A^2)."""

    voxel_size_range_a: tuple[float, float] = (0.5, 2.5)
    box_size_range_a: tuple[float, float] = (48.0, 96.0)
    max_box_voxels: int = 112
    structures_range: tuple[int, int] = (1, 4)
    p_envelope: float = 0.4
    resolution_range_a: tuple[float, float] = (2.0, 15.0)
    local_bfactor_range_a2: tuple[float, float] = (0.0, 400.0)
    patterns: tuple[str, ...] = PATTERNS + ("uniform",)
    ladder_rungs: int = 8
    snr_range: tuple[float, float] = (0.3, 10.0)
    p_coloured_noise: float = 0.4
    noise_bfactor_range_a2: tuple[float, float] = (20.0, 300.0)
    # halve a coloured noise's B until the halves' expected FSC, once below threshold + 0.15, stays below
    # (noise redder than the signal makes the SSNR rise with frequency, which real half maps seldom show)
    coloured_noise_fsc_falls: bool = False
    global_bfactor_range_a2: tuple[float, float] = (-150.0, 150.0)
    p_global_bfactor: float = 0.7
    max_sharpening_gain: float = 30.0
    p_global_lowpass: float = 0.5
    lowpass_percentile_range: tuple[float, float] = (0.0, 30.0)
    p_soft_lowpass: float = 0.0  # of the global low passes, the fraction made Butterworth (never 0)
    butterworth_order_range: tuple[float, float] = (4.0, 30.0)
    soft_lowpass_power_floor: float = 1e-5  # truth clipped where the Butterworth's power stays below this
    p_fsc_weighting: float = 0.0  # halves weighted by sqrt(2 FSC / (1 + FSC)) of their own FSC
    p_solvent_flatten: float = 0.5
    p_flatten_halves: float = 0.1
    scale_range: tuple[float, float] = (0.1, 10.0)
    threshold: float = 0.143
    signal_window_a: float = 5.0  # Gaussian sigma of the local signal fraction (fsc_target); 0: rho = 1
    # Gaussian sigma over which the local filters are mixed into the local signal spectrum
    # (fsc_target.windowed_ladder_truth_a); 0: the filter at the voxel alone (the models before 2026-12-07)
    transfer_window_a: float = 5.0
    truth_range_a: tuple[float, float] = (2.0, 20.0)

    def __post_init__(self):
        lo, hi = self.voxel_size_range_a
        if not 0 < lo <= hi:
            raise LocresError(f"voxel_size_range_a must satisfy 0 < lo <= hi, got {self.voxel_size_range_a}")
        if not all(p in PATTERNS + ("uniform",) for p in self.patterns):
            raise LocresError(f"unknown pattern in {self.patterns}: use {PATTERNS + ('uniform',)}")

    @classmethod
    def from_mapping(cls, values) -> TrainingMapRecipe:
        """A recipe from config values (lists become tuples); an unknown key is a one-line error."""
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise LocresError(f"unknown training-map recipe keys: {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list | tuple) else v for k, v in dict(values).items()})


@dataclass
class TrainingExample:
    """One training map at ``voxel_size_a``; arrays (z, y, x) float32 unless stated."""

    map: np.ndarray
    half1: np.ndarray
    half2: np.ndarray
    mask: np.ndarray  # bool, where the molecule is (the loss region)
    truth_a: np.ndarray
    voxel_size_a: float
    info: dict = field(default_factory=dict)
    # the noise-free, locally filtered map both halves share, before any global filter, flattening, scale
    # or offset (studies of the target: locres.bench.truth_vs_local_fsc)
    signal: np.ndarray | None = None


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def assemble_box(
    densities: list[tuple[np.ndarray, np.ndarray, float]],
    shape_zyx: tuple[int, int, int],
    voxel_size_a: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Place clean densities (density, mask, voxel size) at random offsets in one box.

    Each density is resampled to ``voxel_size_a`` (anti-aliased when coarser); the first is centred,
    the others have their centre drawn anywhere in the box (they may be cut by its faces, like
    neighbours in a crowded box). Returns (density, mask bool).
    """
    box = np.zeros(shape_zyx, np.float32)
    mask = np.zeros(shape_zyx, bool)
    for i, (d, m, v_sim) in enumerate(densities):
        d = to_model_grid(d, v_sim, voxel_size_a)
        m = to_model_grid(m.astype(np.float32), v_sim, voxel_size_a, order=0, lowpass=False) > 0.5
        shape = np.asarray(shape_zyx)
        centre = shape / 2.0 if i == 0 else rng.uniform(0.15, 0.85, 3) * shape
        start = np.round(centre - np.asarray(d.shape) / 2.0).astype(int)
        src = tuple(slice(max(0, -s), min(n, b - s)) for s, n, b in zip(start, d.shape, shape))
        dst = tuple(slice(max(0, s), min(b, s + n)) for s, n, b in zip(start, d.shape, shape))
        if any(sl.stop <= sl.start for sl in src):
            continue
        box[dst] += d[src]
        mask[dst] |= m[src]
    if not mask.any():
        raise LocresError("no structure landed in the training box")
    return box, mask


def ladder_transfers(kind: str, freq_per_a: np.ndarray, voxel_size_a: float, rungs: np.ndarray) -> np.ndarray:
    """Transfer of each rung evaluated at ``freq_per_a`` (any shape): (K, *freq.shape)."""
    if kind == "cut":
        return np.stack([raised_cosine_lowpass_transfer(freq_per_a, r, voxel_size_a) for r in rungs])
    return np.stack([np.exp(-b * freq_per_a**2 / 4.0) for b in rungs]).astype(np.float32)


def draw_ladder(
    kind: str, recipe: TrainingMapRecipe, voxel_size_a: float, rng: np.random.Generator
) -> np.ndarray:
    """Rungs for one map: cut resolutions (A, evenly spaced in 1/R, coarse first) or local B (A^2)."""
    k = max(2, int(recipe.ladder_rungs))
    if kind == "cut":
        finest = max(recipe.resolution_range_a[0], 2.05 * voxel_size_a)
        coarsest = max(recipe.resolution_range_a[1], finest + 1.0)
        a, b = sorted(rng.uniform(1.0 / coarsest, 1.0 / finest, 2))
        if b - a < 0.02:
            b = min(a + 0.02, 1.0 / finest)
        return 1.0 / np.linspace(a, b, k)
    lo, hi = sorted(rng.uniform(*recipe.local_bfactor_range_a2, 2))
    return np.linspace(hi, lo, k)  # blurred first, like the cut ladder


def local_field_position(
    mask: np.ndarray, n_rungs: int, pattern: str, rng: np.random.Generator
) -> np.ndarray:
    """Fractional ladder position in [0, K - 1] of every voxel, a smooth field over the molecule."""
    if pattern == "uniform":
        return np.full(mask.shape, rng.uniform(0, n_rungs - 1), np.float32)
    t = truth_field(mask, 0.0, 1.0, pattern, rng)
    if rng.random() < 0.5:
        t = 1.0 - t
    return (t * (n_rungs - 1)).astype(np.float32)


def blend_ladder_levels(density: np.ndarray, transfers_3d: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Per-voxel blend ``sum_k w_k(x) IFFT(F H_k)`` with linear weights around ``position``."""
    spec = sfft.rfftn(density.astype(np.float32))
    out = np.zeros(density.shape, np.float32)
    for k in range(len(transfers_3d)):
        w = np.clip(1.0 - np.abs(position - k), 0.0, None)
        if np.any(w > 0):
            out += w * sfft.irfftn(spec * transfers_3d[k], s=density.shape)
    return out


def noise_shell_power(
    shape_zyx, voxel_size_a: float, sigma: float, transfer: np.ndarray | None
) -> np.ndarray:
    """Noise power per shell (per voxel) of :func:`locres.simulate.noise.make_noise` with ``transfer``."""
    idx, n_shells = shell_index(shape_zyx, voxel_size_a)
    if transfer is None:
        return np.full(n_shells, sigma**2)
    w = rfft_weights(shape_zyx)
    counts = np.maximum(shell_sums(np.ones(idx.shape), idx, n_shells, w), 1.0)
    t2 = shell_sums(transfer.astype(np.float64) ** 2, idx, n_shells, w) / counts
    return sigma**2 * t2 / mean_power_of_transfer(transfer, shape_zyx)


def noise_bfactor_keeping_fsc_falling_a2(
    signal: np.ndarray, voxel_size_a: float, sigma: float, bfactor_a2: float, threshold: float = 0.143,
    max_halvings: int = 8,
) -> float:
    """The largest of ``bfactor_a2``, half of it, a quarter... (0 after ``max_halvings``: white noise) at
    which the expected shell FSC of two halves, ``signal`` plus independent noise of SD ``sigma`` coloured
    by :func:`locres.simulate.noise.noise_transfer`, once below ``threshold`` + the recovery margin (0.15),
    never climbs back over it (:func:`locres.core.fourier.fsc_recovers` at that level: the measured FSC
    of a small box scatters about the expected one, so an expected curve that only nears the threshold
    in its dip can still be measured crossing it and climbing back). Expected FSC per shell:
    :func:`locres.simulate.fsc_target.expected_fsc` of the signal's and the noise's power per voxel."""
    shape = signal.shape
    _, signal_power = shell_power_per_voxel(signal, voxel_size_a)
    b = float(bfactor_a2)
    for _ in range(max_halvings + 1):
        if b <= 0.0:
            return 0.0
        noise_power = noise_shell_power(shape, voxel_size_a, sigma, noise_transfer(shape, voxel_size_a, b))
        fsc = expected_fsc(signal_power, noise_power)
        if not fsc_recovers(fsc, threshold + FSC_RECOVERY_MARGIN, margin=0.0):
            return b
        b *= 0.5
    return 0.0


def global_filter(freq_per_a: np.ndarray, bfactor_a2: float, max_gain: float) -> np.ndarray:
    """Global B-factor transfer exp(-B s^2 / 4), its sharpening gain capped at ``max_gain``."""
    exponent = np.minimum(-bfactor_a2 * freq_per_a**2 / 4.0, np.log(max_gain))  # capped before exp
    return np.exp(exponent).astype(np.float32)


def fsc_weighted_halves(
    half1: np.ndarray, half2: np.ndarray, voxel_size_a: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Both halves times the figure-of-merit weight ``sqrt(2 FSC / (1 + FSC))`` of their own shell FSC.

    The weighting of post-processed maps (Rosenthal & Henderson 2003; RELION, cryoSPARC): 0 where the
    FSC is not positive. Returns the weighted halves and the resolution (A) of the first shell whose
    weight is 0 (0.0 if none), beyond which the weighted map holds nothing to read.
    """
    shape = half1.shape
    f1, f2 = sfft.rfftn(half1.astype(np.float64)), sfft.rfftn(half2.astype(np.float64))
    fsc, _ = shell_fsc_of_spectra(f1, f2, shape, voxel_size_a)
    idx, _ = shell_index(shape, voxel_size_a)
    weight = np.sqrt(np.clip(2.0 * fsc / (1.0 + np.maximum(fsc, 0.0)), 0.0, 1.0))
    weight[0] = 1.0
    w3 = np.append(weight, 0.0)[idx]  # beyond Nyquist (the box's corners): 0
    zero = np.flatnonzero(weight[1:] <= 0.0) + 1
    floor_a = float(1.0 / (zero[0] * shell_width_per_a(shape, voxel_size_a))) if zero.size else 0.0
    out1 = sfft.irfftn(f1 * w3, s=shape).astype(np.float32)
    out2 = sfft.irfftn(f2 * w3, s=shape).astype(np.float32)
    return out1, out2, floor_a


def solvent_flatten(
    volume: np.ndarray,
    mask: np.ndarray,
    voxel_size_a: float,
    rng: np.random.Generator,
    background: float = 0.0,
) -> np.ndarray:
    """The map times a soft mask (dilated 0.5-4 A, soft edge 0-2.5 A), the outside set to ``background``.

    As in deposited maps, the mask reaches exactly 0 at its edge, so the background is exactly constant
    (EMD-3488: 71 % of the voxels are exactly 0).
    """
    dil = int(round(rng.uniform(0.5, 4.0) / voxel_size_a))
    soft = ndimage.binary_dilation(mask, iterations=max(dil, 1)).astype(np.float32)
    edge = rng.uniform(0.0, 2.5) / voxel_size_a
    if edge > 0.3:
        soft = np.clip(ndimage.gaussian_filter(soft, edge) * 1.5, 0.0, 1.0)
        soft[soft < 0.02] = 0.0
    return (volume * soft + background * (1.0 - soft)).astype(np.float32)


def make_training_example(
    densities: list[tuple[np.ndarray, np.ndarray, float]], recipe: TrainingMapRecipe, rng: np.random.Generator
) -> TrainingExample:
    """One training map, its half maps and the expected-local-FSC truth (see the module docstring).

    ``densities``: clean (density, mask, voxel_size_a) of the structures to assemble (the first is
    centred); ``recipe.structures_range`` is applied by the caller, who chooses how many to pass.
    """
    v = _log_uniform(rng, *recipe.voxel_size_range_a)
    v = max(v, min(d[2] for d in densities) * 0.5)
    size_a = rng.uniform(*recipe.box_size_range_a, 3)
    shape = tuple(int(min(recipe.max_box_voxels, max(16, round(s / v)))) for s in size_a)
    clean, mask = assemble_box(densities, shape, v, rng)
    kind = "envelope" if rng.random() < recipe.p_envelope else "cut"
    rungs = draw_ladder(kind, recipe, v, rng)
    pattern = str(rng.choice(recipe.patterns))
    position = local_field_position(mask, len(rungs), pattern, rng)
    freq3 = frequency_grid_per_a(shape, v)
    local = blend_ladder_levels(clean, ladder_transfers(kind, freq3, v, rungs), position)

    snr = _log_uniform(rng, *recipe.snr_range)
    sigma_half = float(np.sqrt(2.0) * noise_sigma_for_snr(local, snr, mask))
    coloured = rng.random() < recipe.p_coloured_noise
    b_noise = float(rng.uniform(*recipe.noise_bfactor_range_a2)) if coloured else 0.0
    b_noise_drawn = b_noise
    if coloured and recipe.coloured_noise_fsc_falls:
        b_noise = noise_bfactor_keeping_fsc_falling_a2(local, v, sigma_half, b_noise, recipe.threshold)
    t_noise = noise_transfer(shape, v, b_factor_a2=b_noise) if b_noise > 0 else None
    half1 = local + make_noise(shape, sigma_half, rng, t_noise)
    half2 = local + make_noise(shape, sigma_half, rng, t_noise)

    freq, clean_power = shell_power_per_voxel(clean, v, n_voxels=float(mask.sum()))
    noise_power = noise_shell_power(shape, v, sigma_half, t_noise)
    transfers = ladder_transfers(kind, freq, v, rungs)
    rho = None
    if recipe.signal_window_a > 0:
        rho = local_signal_fraction(clean, mask, v, recipe.signal_window_a, freq_grid_per_a=freq3)
        table = crossing_table_a(freq, clean_power, noise_power, transfers, recipe.threshold,
                                 signal_fractions=SIGNAL_FRACTIONS)
        truth = truth_from_ladder_position_a(position, table, rho, SIGNAL_FRACTIONS)
    else:
        table = crossing_table_a(freq, clean_power, noise_power, transfers, recipe.threshold)
        truth = truth_from_ladder_position_a(position, table)
    if recipe.transfer_window_a > 0:  # in the molecule the filters a window mixes; outside the voxel's own
        windowed = windowed_ladder_truth_a(position, mask, freq, clean_power, noise_power, transfers,
                                           recipe.transfer_window_a, v, rho, recipe.threshold)
        truth = np.where(mask, windowed, truth)
    truth = np.clip(truth, *recipe.truth_range_a)

    # every random draw happens whatever is chosen, so switching one step off leaves the others as they were
    b_draw, use_b = (
        float(rng.uniform(*recipe.global_bfactor_range_a2)),
        rng.random() < recipe.p_global_bfactor,
    )
    b_global = b_draw if use_b else 0.0
    if b_global:
        g = global_filter(freq3, b_global, recipe.max_sharpening_gain)
        half1 = sfft.irfftn(sfft.rfftn(half1) * g, s=shape).astype(np.float32)
        half2 = sfft.irfftn(sfft.rfftn(half2) * g, s=shape).astype(np.float32)
    fom_floor_a, fsc_weighted = 0.0, False
    if recipe.p_fsc_weighting > 0 and rng.random() < recipe.p_fsc_weighting:  # drawn only when enabled
        fsc_weighted = True
        half1, half2, fom_floor_a = fsc_weighted_halves(half1, half2, v)
        truth = np.maximum(truth, np.float32(fom_floor_a))
    lowpass_a, butterworth_order = 0.0, 0.0
    pct, jitter = float(rng.uniform(*recipe.lowpass_percentile_range)), float(rng.uniform(0.9, 1.1))
    if rng.random() < recipe.p_global_lowpass:  # as deposited maps are: filtered at the global resolution
        lowpass_a = max(float(np.percentile(truth[mask], pct)) * jitter, 2.05 * v)
        if recipe.p_soft_lowpass > 0 and rng.random() < recipe.p_soft_lowpass:
            butterworth_order = float(rng.uniform(*recipe.butterworth_order_range))
            lp = butterworth_lowpass_transfer(freq3, lowpass_a, butterworth_order)
            floor_a = butterworth_floor_resolution_a(
                lowpass_a, butterworth_order, recipe.soft_lowpass_power_floor
            )
        else:
            lp = raised_cosine_lowpass_transfer(freq3, lowpass_a, v)
            floor_a = lowpass_a
        half1 = sfft.irfftn(sfft.rfftn(half1) * lp, s=shape).astype(np.float32)
        half2 = sfft.irfftn(sfft.rfftn(half2) * lp, s=shape).astype(np.float32)
        truth = np.maximum(truth, np.float32(floor_a))  # no local FSC reads finer than what the filter leaves
    full = 0.5 * (half1 + half2)
    flattened = rng.random() < recipe.p_solvent_flatten
    if flattened:
        background = float(np.median(full)) if rng.random() < 0.3 else 0.0
        full = solvent_flatten(full, mask, v, rng, background)
        if rng.random() < recipe.p_flatten_halves / max(recipe.p_solvent_flatten, 1e-9):
            half1 = solvent_flatten(half1, mask, v, rng, background)
            half2 = solvent_flatten(half2, mask, v, rng, background)
    scale = _log_uniform(rng, *recipe.scale_range)
    offset = float(rng.normal(0.0, 1.0)) * float(np.std(full)) * scale
    info = {
        "voxel_size_a": v,
        "shape_zyx": list(shape),
        "kind": kind,
        "rungs": [float(r) for r in rungs],
        "pattern": pattern,
        "snr": snr,
        "noise_bfactor_a2": b_noise,
        "noise_bfactor_drawn_a2": b_noise_drawn,
        "global_bfactor_a2": b_global,
        "global_lowpass_a": lowpass_a,
        "butterworth_order": butterworth_order,
        "fsc_weighted": fsc_weighted,
        "fsc_weighting_floor_a": fom_floor_a,
        "flattened": flattened,
        "structures": len(densities),
    }
    return TrainingExample(
        map=(full * scale + offset).astype(np.float32),
        half1=(half1 * scale + offset).astype(np.float32),
        half2=(half2 * scale + offset).astype(np.float32),
        mask=mask,
        truth_a=truth.astype(np.float32),
        voxel_size_a=v,
        info=info,
        signal=np.asarray(local, np.float32),
    )
