"""Training maps simulated from atomic models, and boxes cut from them.

One training example is made in the same order at train and at inference time:

1. ``simulate_view``: density of a randomly rotated model at a voxel size near the model voxel size,
   plus its molecular mask (the density Gaussian-blurred to ``mask_resolution_a`` and thresholded at
   ``mask_fraction`` of its maximum);
2. ``render_map``: optional B-factor (blur or sharpening) then a raised-cosine low pass at the label
   resolution, both at the simulation voxel size; then a trilinear resample onto the model grid (as
   inference resamples user maps), optional white noise and a random intensity scale/offset;
3. ``standardise_map`` on the whole map (the one normalisation shared with inference);
4. boxes centred on mask voxels (``sample_centres``, ``cut_boxes``).

Everything here is pure numerics on arrays plus voxel sizes; the only file access is
``SimulatedBoxes`` reading atomic models through ``locres.io.read_structure``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from locres.core.fourier import apply_bfactor, lowpass_raised_cosine
from locres.core.maps import to_model_grid
from locres.core.masks import envelope_mask
from locres.errors import LocresError
from locres.simulate.density import simulate_map_centered

log = logging.getLogger(__name__)


@dataclass
class Recipe:
    """How a training map is made from a simulated density (all lengths in Angstrom).

    ``resolution_range_a``: label resolutions are drawn in [lo, hi] (``resolution_sampling``: ``uniform``
    in Angstrom, or ``log``-uniform). ``bfactor_range_a2``: B applied before the low pass with probability
    ``p_bfactor`` (negative sharpens). ``noise_range``: white-noise std relative to the map's std inside
    the mask, with probability ``p_noise``. ``scale_range``: random intensity scale (an offset of the same
    size is added too); standardisation must undo it. ``voxel_size_jitter``: the density is simulated at
    ``voxel_size_a * (1 + u)``, ``|u| <= jitter``, with probability ``p_jitter``, then resampled.
    """

    voxel_size_a: float = 1.0
    resolution_range_a: tuple[float, float] = (2.0, 15.0)
    resolution_sampling: str = "uniform"
    resolution_step_a: float = 0.0
    bfactor_range_a2: tuple[float, float] = (0.0, 0.0)
    p_bfactor: float = 0.0
    noise_range: tuple[float, float] = (0.0, 0.0)
    p_noise: float = 0.0
    scale_range: tuple[float, float] = (1.0, 1.0)
    voxel_size_jitter: float = 0.0
    p_jitter: float = 0.0
    padding_a: float = 10.0
    mask_resolution_a: float = 4.0
    mask_fraction: float = 0.15

    def __post_init__(self):
        lo, hi = (float(r) for r in self.resolution_range_a)
        if not (0 < lo <= hi):
            raise LocresError(f"resolution range must satisfy 0 < lo <= hi, got {self.resolution_range_a}")
        if lo < 2.0 * self.voxel_size_a * (1 - 1e-6) * 0.95:
            raise LocresError(
                f"resolution {lo} A is finer than Nyquist (2 x {self.voxel_size_a} A): raise the lower bound"
            )
        if not (0.2 <= self.voxel_size_a <= 10.0):
            raise LocresError(f"model voxel size {self.voxel_size_a} A is out of range (0.2-10 A)")
        if self.resolution_sampling not in ("uniform", "log"):
            raise LocresError(f"resolution_sampling must be uniform or log, got {self.resolution_sampling}")
        self.resolution_range_a = (lo, hi)

    def draw_resolution(self, rng: np.random.Generator) -> float:
        lo, hi = self.resolution_range_a
        if self.resolution_sampling == "log":
            r = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        else:
            r = float(rng.uniform(lo, hi))
        if self.resolution_step_a > 0:
            r = float(np.clip(lo + round((r - lo) / self.resolution_step_a) * self.resolution_step_a, lo, hi))
        return r


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed 3x3 rotation matrix."""
    return Rotation.random(random_state=rng).as_matrix()


def molecular_mask(density: np.ndarray, voxel_size_a: float, mask_resolution_a: float = 4.0,
                   mask_fraction: float = 0.15) -> np.ndarray:
    """Bool mask of the molecule: density blurred to ``mask_resolution_a`` above a fraction of its max."""
    if not float(np.max(density)) > 0:
        raise LocresError("simulated density is empty: the atomic model holds no scattering atoms")
    return envelope_mask(density, voxel_size_a, mask_resolution_a, mask_fraction)


@dataclass
class View:
    """One simulated view of a model: unfiltered density and mask at ``voxel_size_sim_a``."""

    density: np.ndarray
    mask: np.ndarray
    voxel_size_sim_a: float
    rotation: np.ndarray


def simulate_view(structure, recipe: Recipe, rng: np.random.Generator, jitter: bool | None = None) -> View:
    """Simulate a randomly rotated ``structure`` (gemmi) at a voxel size near the model voxel size."""
    v = recipe.voxel_size_a
    if jitter is None:
        jitter = rng.random() < recipe.p_jitter
    if jitter and recipe.voxel_size_jitter > 0:
        v = v * (1.0 + rng.uniform(-recipe.voxel_size_jitter, recipe.voxel_size_jitter))
    rot = random_rotation(rng)
    vol = simulate_map_centered(structure, v, padding_a=recipe.padding_a, rotation=rot)
    mask = molecular_mask(vol.data, v, recipe.mask_resolution_a, recipe.mask_fraction)
    return View(density=vol.data, mask=mask, voxel_size_sim_a=float(v), rotation=rot)


def filter_map(density: np.ndarray, voxel_size_sim_a: float, resolution_a: float,
               bfactor_a2: float = 0.0) -> np.ndarray:
    """B-factor (if any) then a raised-cosine low pass to ``resolution_a``, at the simulation voxel size."""
    out = density
    if bfactor_a2:
        out = apply_bfactor(out, voxel_size_sim_a, bfactor_a2)
    # the low pass cannot reach beyond Nyquist; a resolution finer than 2 v leaves the map as is there
    return lowpass_raised_cosine(out, voxel_size_sim_a, max(resolution_a, 2.0 * voxel_size_sim_a))


def augment_intensity(volume: np.ndarray, mask: np.ndarray, recipe: Recipe,
                      rng: np.random.Generator) -> np.ndarray:
    """White noise (relative to the std inside ``mask``) and a random scale and offset."""
    out = volume.astype(np.float32, copy=True)
    if recipe.p_noise > 0 and rng.random() < recipe.p_noise:
        rel = rng.uniform(*recipe.noise_range)
        sd = float(out[mask].std()) if mask.any() else float(out.std())
        if rel > 0 and sd > 0:
            out += rng.normal(0.0, rel * sd, size=out.shape).astype(np.float32)
    lo, hi = recipe.scale_range
    if hi > lo or lo != 1.0:
        s = float(rng.uniform(lo, hi))
        out = out * s + float(rng.uniform(-1.0, 1.0)) * s
    return out


def render_map(view: View, resolution_a: float, recipe: Recipe, rng: np.random.Generator,
               bfactor_a2: float | None = None, augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A training map on the model grid (not yet standardised) and its mask.

    Returns ``(map, mask)``, float32 and bool, both ``(z, y, x)`` at ``recipe.voxel_size_a``.
    """
    if bfactor_a2 is None:
        bfactor_a2 = 0.0
        if augment and recipe.p_bfactor > 0 and rng.random() < recipe.p_bfactor:
            bfactor_a2 = float(rng.uniform(*recipe.bfactor_range_a2))
    m = filter_map(view.density, view.voxel_size_sim_a, resolution_a, bfactor_a2)
    m = to_model_grid(m, view.voxel_size_sim_a, recipe.voxel_size_a, order=1)
    mask = to_model_grid(view.mask.astype(np.float32), view.voxel_size_sim_a, recipe.voxel_size_a,
                         order=0, lowpass=False) > 0.5
    if augment:
        m = augment_intensity(m, mask, recipe, rng)
    return m, mask


def sample_centres(mask: np.ndarray, n: int, box_size: int, rng: np.random.Generator, stride: int = 1,
                   valid: np.ndarray | None = None) -> np.ndarray:
    """Up to ``n`` distinct (z, y, x) centres of mask voxels whose whole box fits in the map.

    ``stride`` keeps only voxels on a grid of that step (the published recipe uses 2). ``valid`` (bool,
    same shape) further restricts the centres, e.g. to voxels where a label map is defined.
    Returns an ``(k, 3)`` int array, ``k <= n`` (0 when no voxel qualifies).
    """
    h = box_size // 2
    sel = mask.copy()
    if valid is not None:
        sel &= valid
    if any(s < box_size for s in mask.shape):
        return np.zeros((0, 3), dtype=np.int64)
    for ax in range(3):
        idx = [slice(None)] * 3
        idx[ax] = slice(0, h)
        sel[tuple(idx)] = False
        idx[ax] = slice(mask.shape[ax] - h, None)
        sel[tuple(idx)] = False
    if stride > 1:
        grid = np.zeros_like(sel)
        grid[::stride, ::stride, ::stride] = True
        sel &= grid
    cand = np.argwhere(sel)
    if len(cand) == 0:
        return np.zeros((0, 3), dtype=np.int64)
    pick = rng.choice(len(cand), size=min(n, len(cand)), replace=False)
    return cand[pick]


def cut_boxes(volume: np.ndarray, centres_zyx: np.ndarray, box_size: int) -> np.ndarray:
    """Boxes of ``box_size``^3 centred on ``centres_zyx`` (odd box). Returns ``(k, b, b, b)`` float32."""
    if box_size % 2 != 1:
        raise LocresError(f"box size must be odd, got {box_size}")
    if any(s < box_size for s in volume.shape):
        raise LocresError(f"box of {box_size} voxels is larger than the map {volume.shape}")
    win = np.lib.stride_tricks.sliding_window_view(volume, (box_size,) * 3)
    c = np.asarray(centres_zyx, dtype=np.int64) - box_size // 2
    return np.ascontiguousarray(win[c[:, 0], c[:, 1], c[:, 2]], dtype=np.float32)


def l2_normalise_boxes(boxes: np.ndarray) -> np.ndarray:
    """Each box divided by its L2 norm (the published DeepRes normalisation)."""
    norms = np.sqrt((boxes.reshape(len(boxes), -1).astype(np.float64) ** 2).sum(axis=1))
    return (boxes / np.maximum(norms, 1e-12)[:, None, None, None]).astype(np.float32)


def analytical_label_map(method: str, volume: np.ndarray, mask: np.ndarray, voxel_size_a: float,
                               rng: np.random.Generator, noise_rel: float = 0.3,
                         params: dict | None = None) -> np.ndarray:
    """Local-resolution labels from an analytical method (``monores``, ``blocres``, ``resmap``...).

    The method sees two half maps made of ``volume`` plus independent white noise (std ``noise_rel``
    times the map's std inside the mask), their average, and the mask. Returns the method's
    ``resolution_a`` map (0 where it did not estimate).
    """
    from locres.methods import MethodInputs, get_method

    mod = get_method(method)
    if getattr(mod, "NEEDS_MODEL", False):
        raise LocresError(f"label maps come from analytical methods; {method} runs a trained network")
    sd = float(volume[mask].std()) if mask.any() else float(volume.std())
    n1 = rng.normal(0, noise_rel * sd, volume.shape).astype(np.float32)
    n2 = rng.normal(0, noise_rel * sd, volume.shape).astype(np.float32)
    h1, h2 = volume + n1, volume + n2
    inputs = MethodInputs(voxel_size_a=voxel_size_a, map=0.5 * (h1 + h2), half1=h1, half2=h2, mask=mask)
    res = mod.run(inputs, **(params or {}))
    return np.asarray(res.resolution_a, dtype=np.float32)
