"""DeepRes: a trained network reads the local resolution from the appearance of the density.

Pipeline (:func:`predict_local_resolution_a`), all independent of the map's absolute scale, offset and
contrast sign (no absolute density threshold anywhere):

1. the map is low-passed to the model's Nyquist (2 x model voxel) when it is finer than the model grid,
   then trilinearly resampled onto a grid of the model's voxel size with the same first voxel (the
   same resampling the training maps get);
2. :func:`locres.models.normalise.standardise_map` on the whole resampled map (as in training);
3. the net is evaluated on a regular grid of box centres with step ``s`` (the net's ``output_stride``
   for fully convolutional nets, ``box_stride`` for box-only nets) covering every voxel the mask needs:
   fully convolutional nets run over overlapping chunks of the map (memory bounded by
   ``chunk_voxels``), box-only nets on batches of boxes; the map is zero-padded (= background after
   standardisation) so voxels near the edge get a box too;
4. those samples are interpolated trilinearly straight onto the input grid (exact input shape),
   normalised by the interpolated coverage so every mask voxel gets a value (no holes), clamped to the
   model's trained range ``[max(lo, 2 x input voxel), hi]`` and set to 0 outside the mask.

Without a mask, :func:`automatic_mask` makes one: the standardised map Gaussian-smoothed to
``mask_smooth_a`` and thresholded at the lower of (background median + ``mask_sigma`` robust standard
deviations of the smoothed map) and Otsu's threshold, but never below 2 % of the way from the median to
the 99.9th percentile (solvent-flattened maps); components smaller than 5 % of the largest are
dropped, holes filled, and the mask dilated by 2 A. It is returned in ``LocalResolution.mask``.

The network arrives loaded: ``NEEDS_MODEL = True`` tells the pipeline to load
``method.checkpoint`` (or :func:`default_checkpoint` of the inputs) with :mod:`locres.io.checkpoints`
on the inputs' device and to call ``run(inputs, model=LoadedModel, ...)``; this module reads no file.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from locres.core.devices import resolve_device
from locres.core.fourier import lowpass_gaussian
from locres.core.maps import MapGeometry, MapVolume, resample_onto, to_model_grid
from locres.core.masks import tidy_mask
from locres.errors import LocresError
from locres.methods import LocalResolution, MethodInputs
from locres.methods.deepres_dense import predict_dense_quantiles_a
from locres.models.loaded import LoadedModel
from locres.models.normalise import standardise_map

log = logging.getLogger(__name__)

NAME = "deepres"
INPUTS = "map_or_halves"
NEEDS_MODEL = True  # the pipeline loads the checkpoint and passes run(..., model=LoadedModel)
WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
# the published target (the appearance of a low-passed map): moves with sharpening, which is exactly what
# the sharpening check (input.reference_map) measures, so the check keeps using this model
APPEARANCE_CHECKPOINT = WEIGHTS / "deepres_appearance.pt"
# DeepRes 2 (the expected local half-map FSC at 0.143, with 10/90 % quantiles): single map and half maps
FSC_MAP_CHECKPOINT = WEIGHTS / "deepres2_map.pt"
FSC_HALVES_CHECKPOINT = WEIGHTS / "deepres2_halves.pt"
DEFAULT_CHECKPOINT = FSC_MAP_CHECKPOINT
DEFAULT_CHUNK_VOXELS = {"cpu": 96**3, "cuda": 192**3}


def _otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    hist, edges = np.histogram(values, bins=bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = ((hist * centres).sum() - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def automatic_mask(volume: np.ndarray, voxel_size_a: float, mask_smooth_a: float = 6.0,
                   mask_sigma: float = 4.0, dilate_a: float = 2.0) -> np.ndarray:
    """Bool (z, y, x) molecular mask from the map alone, scale- and offset-free (see module docstring)."""
    smooth = lowpass_gaussian(standardise_map(volume), voxel_size_a, mask_smooth_a)
    med = float(np.median(smooth))
    sd = 1.4826 * float(np.median(np.abs(smooth - med)))
    # never below 2 % of the way to the top density: on solvent-flattened maps (mostly exact zeros, so
    # sd = 0) the filtered background carries only rounding-level values
    floor = med + 0.02 * (float(np.percentile(smooth, 99.9)) - med)
    thr = max(min(med + mask_sigma * sd, _otsu_threshold(smooth)), floor)
    mask = smooth > thr
    if not mask.any():
        raise LocresError("the automatic mask found no density above the background: "
                          "give input.mask=MASK.mrc")
    mask = tidy_mask(mask, 0.05, int(round(dilate_a / voxel_size_a)))
    log.info("automatic mask: threshold %.3f (standardised, smoothed to %.1f A), %d voxels (%.1f %%)",
             thr, mask_smooth_a, int(mask.sum()), 100.0 * mask.mean())
    return mask


def _needed_samples(mask: np.ndarray, voxel_size_a: float, model_voxel_size_a: float,
                    model_shape, step: int, coarse_shape) -> np.ndarray:
    """Bool coarse grid: samples (model voxels step*j) any input mask voxel interpolates from."""
    m = resample_onto(MapVolume.from_array(mask.astype(np.float32), voxel_size_a),
                      MapGeometry.new(model_shape, model_voxel_size_a), order=1, role="mask") > 0
    m = ndimage.binary_dilation(m, iterations=1)
    full = np.zeros(tuple(step * (c - 1) + 1 for c in coarse_shape), dtype=bool)
    full[: m.shape[0], : m.shape[1], : m.shape[2]] = m
    near = ndimage.maximum_filter(full.astype(np.uint8), size=2 * step + 1, mode="constant") > 0
    return near[::step, ::step, ::step]


@torch.inference_mode()
def _predict_samples(x: np.ndarray, needed: np.ndarray, net, step: int, device: str, chunk_voxels: int,
                     batch_size: int, use_volume: bool) -> tuple[np.ndarray, np.ndarray]:
    """Net output at model voxels ``step * j`` for every needed ``j``; returns (values, computed)."""
    b = net.box_size
    h = b // 2
    coarse_shape = needed.shape
    pad = [(h, step * (c - 1) - (n - 1) + h) for n, c in zip(x.shape, coarse_shape)]
    padded = np.pad(x, pad, mode="constant")
    values = np.zeros(coarse_shape, dtype=np.float32)
    computed = np.zeros(coarse_shape, dtype=bool)
    if use_volume:
        edge = max(1, int(round(chunk_voxels ** (1 / 3))) // step)
        # equal chunks per axis (no thin leftover chunk paying the full box overlap)
        ez, ey, ex = (math.ceil(c / math.ceil(c / edge)) for c in coarse_shape)
        for z0 in range(0, coarse_shape[0], ez):
            for y0 in range(0, coarse_shape[1], ey):
                for x0 in range(0, coarse_shape[2], ex):
                    sl = (slice(z0, z0 + ez), slice(y0, y0 + ey), slice(x0, x0 + ex))
                    if not needed[sl].any():
                        continue
                    j1 = [min(j0 + e, c) for j0, e, c in zip((z0, y0, x0), (ez, ey, ex), coarse_shape)]
                    src = tuple(slice(step * j0, step * (e - 1) + b) for j0, e in zip((z0, y0, x0), j1))
                    t = torch.from_numpy(np.ascontiguousarray(padded[src]))[None, None].to(device)
                    out = net.forward_volume_coarse(t) if step > 1 else net.forward_volume(t)
                    values[sl] = out[0, 0].float().cpu().numpy()
                    computed[sl] = True
    else:
        idx = np.argwhere(needed)
        offs = np.arange(b)
        for k in range(0, len(idx), batch_size):
            corners = idx[k:k + batch_size] * step
            zz = corners[:, 0, None, None, None] + offs[None, :, None, None]
            yy = corners[:, 1, None, None, None] + offs[None, None, :, None]
            xx = corners[:, 2, None, None, None] + offs[None, None, None, :]
            boxes = torch.from_numpy(padded[zz, yy, xx])[:, None].to(device)
            out = net(boxes).float().cpu().numpy()
            j = idx[k:k + batch_size]
            values[j[:, 0], j[:, 1], j[:, 2]] = out
            computed[j[:, 0], j[:, 1], j[:, 2]] = True
    return values, computed


def predict_local_resolution_a(volume: np.ndarray, voxel_size_a: float, mask: np.ndarray | None, net,
                               meta: dict, device: str = "cpu", chunk_voxels: int | None = None,
                               box_stride: int = 2, batch_size: int = 256, mode: str = "auto",
                               info: dict | None = None) -> np.ndarray:
    """Local resolution (Angstrom) of ``volume`` on its own grid; 0 outside ``mask``.

    Parameters
    ----------
    volume : (z, y, x) float array
        The map, any scale, offset or contrast sign.
    voxel_size_a : float
        Its voxel size (Angstrom).
    mask : (z, y, x) bool array or None
        Voxels to estimate; None -> :func:`automatic_mask`.
    net, meta
        A :class:`~locres.models.loaded.LoadedModel`'s ``net`` and ``meta`` (``meta`` gives
        ``voxel_size_a`` and ``resolution_range_a``).
    device : "cpu" or "cuda"
    chunk_voxels : int, optional
        Model-grid output voxels per chunk of the fully convolutional pass (bounds memory).
    box_stride : int
        Step of the box-centre grid for box-only nets (fully convolutional nets use their own stride).
    batch_size : int
        Boxes per batch for box-only evaluation.
    mode : "auto" | "volume" | "boxes"
        Whole-map (fully convolutional) or box-by-box evaluation; auto picks volume when the net can.
    info : dict, optional
        Filled with the numbers used (grid, samples, clamped fractions, seconds).

    Returns
    -------
    (z, y, x) float32, same shape as ``volume``.
    """
    t0 = time.perf_counter()
    info = {} if info is None else info
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise LocresError(f"DeepRes needs a 3D map, got shape {volume.shape}")
    if mask is None:
        mask = automatic_mask(volume, voxel_size_a)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != volume.shape:
        raise LocresError(f"mask shape {mask.shape} differs from the map's {volume.shape}: resample it first")
    if not mask.any():
        raise LocresError("the mask is empty: give a mask that covers the molecule")
    v_model = float(meta["voxel_size_a"])
    lo, hi = (float(r) for r in meta["resolution_range_a"])
    fc = bool(getattr(net, "fully_convolutional", False))
    if mode not in ("auto", "volume", "boxes"):
        raise LocresError(f"unknown mode '{mode}': choose auto, volume or boxes")
    use_volume = fc and mode != "boxes"
    if mode == "volume" and not fc:
        raise LocresError("this net is box-only (not fully convolutional): use mode=boxes or auto")
    step = int(net.output_stride) if use_volume else int(box_stride)
    if step < 1:
        raise LocresError(f"box_stride must be >= 1, got {box_stride}")
    chunk_voxels = int(chunk_voxels or DEFAULT_CHUNK_VOXELS.get(device, 96**3))

    x = standardise_map(to_model_grid(volume, voxel_size_a, v_model))
    coarse_shape = tuple(math.ceil(n / step) + 1 for n in x.shape)
    needed = _needed_samples(mask, voxel_size_a, v_model, x.shape, step, coarse_shape)
    t1 = time.perf_counter()
    values, computed = _predict_samples(x, needed, net, step, device, chunk_voxels, batch_size, use_volume)
    t2 = time.perf_counter()

    # samples -> input grid in one trilinear step, normalised by coverage (no holes at the mask edge)
    scale = voxel_size_a / (v_model * step)
    weight = computed.astype(np.float32)
    kw = {"matrix": np.full(3, scale), "output_shape": volume.shape, "order": 1, "mode": "nearest"}
    num = ndimage.affine_transform(values * weight, **kw)
    den = ndimage.affine_transform(weight, **kw)
    inside = mask & (den > 1e-6)
    holes = int(mask.sum() - inside.sum())
    res = np.zeros(volume.shape, dtype=np.float32)
    res[inside] = num[inside] / den[inside]
    if holes:  # should not happen: fill from the nearest estimated voxel
        log.warning("%d mask voxels had no sample nearby; filled from their nearest neighbour", holes)
        _, nearest = ndimage.distance_transform_edt(~inside, return_indices=True)
        res[mask & ~inside] = res[tuple(n[mask & ~inside] for n in nearest)]

    lo_eff = max(lo, 2.0 * voxel_size_a)
    vals = res[mask]
    n_low, n_high = int((vals < lo_eff).sum()), int((vals > hi).sum())
    res[mask] = np.clip(vals, lo_eff, hi)
    res[~mask] = 0.0
    info.update({
        "model_voxel_size_a": v_model, "model_grid_zyx": list(x.shape), "resolution_range_a": [lo, hi],
        "clamp_range_a": [lo_eff, hi], "evaluation": "volume" if use_volume else "boxes",
        "sample_step_voxels": step, "box_size_voxels": int(net.box_size),
        "samples_evaluated": int(computed.sum()), "voxels_estimated": int(mask.sum()),
        "fraction_clamped": (n_low + n_high) / max(1, vals.size),
        "fraction_clamped_low": n_low / max(1, vals.size),
        "fraction_clamped_high": n_high / max(1, vals.size), "holes_filled": holes,
        "seconds_prepare": round(t1 - t0, 3), "seconds_net": round(t2 - t1, 3),
        "seconds_total": round(time.perf_counter() - t0, 3),
    })
    return res


def default_checkpoint(inputs: MethodInputs) -> Path:
    """The shipped model that suits ``inputs`` when no ``method.checkpoint`` is given (a path only).

    Half maps -> the DeepRes 2 half-map model (a learned local FSC); a map -> the DeepRes 2 single-map
    model. When a map and half maps are both given, the half maps win (they carry the noise directly).
    """
    return FSC_HALVES_CHECKPOINT if inputs.has_halves else FSC_MAP_CHECKPOINT


def run(inputs: MethodInputs, model: LoadedModel, mask_smooth_a: float = 6.0, mask_sigma: float = 4.0,
        chunk_voxels: int | None = None, box_stride: int = 2, batch_size: int = 256,
        mode: str = "auto") -> LocalResolution:
    """DeepRes with a loaded ``model``: a dense DeepRes 2 model (quantiles, ``deepres_lo``/``deepres_hi``
    extra maps) or a published-style appearance model; see the module docstring."""
    device = resolve_device(inputs.device)
    net, meta = model.net, model.meta
    volume = inputs.average_map()
    v = float(inputs.voxel_size_a)
    lo, hi = meta["resolution_range_a"]
    if 2.0 * v >= hi:
        raise LocresError(f"voxel size {v:.2f} A is too coarse for this model (Nyquist {2 * v:.1f} A "
                          f"is beyond its trained range {lo:.1f}-{hi:.1f} A)")
    auto = inputs.mask is None
    mask = automatic_mask(volume, v, mask_smooth_a, mask_sigma) if auto else np.asarray(inputs.mask, bool)
    target = meta.get("target", "appearance")
    info = {"checkpoint": model.path, "net": meta["net_config"].get("_target_"), "device": device,
            "target": target, "mask": "automatic" if auto else "given"}
    if auto:
        info.update({"mask_smooth_a": mask_smooth_a, "mask_sigma": mask_sigma})
    extra = None
    if target == "fsc_local":
        halves = meta.get("inputs") == "halves"
        if halves and not inputs.has_halves:
            raise LocresError(f"{model.path} is a half-map model but one map was given: give "
                              "input.half1=H1.mrc input.half2=H2.mrc, or leave method.checkpoint unset")
        info["source"] = "half maps" if halves else ("map" if inputs.map is not None else "half average")
        q_lo, res, q_hi = predict_dense_quantiles_a(net, meta, v, mask, map_zyx=inputs.map,
                                                    half1_zyx=inputs.half1, half2_zyx=inputs.half2,
                                                    device=device, info=info)
        extra = {"lo": q_lo, "hi": q_hi}
        q = meta.get("quantiles", [0.1, 0.5, 0.9])
        info["interval_quantiles"] = [q[0], q[2]]
        info["median_interval_width_a"] = float(np.median((q_hi - q_lo)[mask]))
    else:
        info["source"] = "map" if inputs.map is not None else "half average"
        res = predict_local_resolution_a(volume, v, mask, net, meta, device=device, chunk_voxels=chunk_voxels,
                                         box_stride=box_stride, batch_size=batch_size, mode=mode, info=info)
    vals = res[mask]
    info.update({"median_a": float(np.median(vals)), "min_a": float(vals.min()), "max_a": float(vals.max())})
    if "metrics" in meta:
        info["model_metrics"] = meta["metrics"]
    log.info("deepres (%s): median %.2f A over %d voxels, %.1f %% clamped", target, info["median_a"],
             vals.size, 100 * info.get("fraction_clamped", 0.0))
    return LocalResolution(resolution_a=res, info=info, mask=mask if auto else None, extra_maps=extra)
