"""Dense DeepRes inference: per-voxel resolution quantiles on the input map's own grid.

The dense models (:class:`locres.models.dense.DenseQuantileNet`, target ``fsc_local``: the resolution
at which the expected local half-map FSC falls below 0.143) read the local band features of
:func:`locres.models.features.dense_features`, the same function their training maps went through.
:func:`predict_dense_quantiles_a`:

1. features of the map (single-map model) or of both half maps (half-map model) on the model grid's
   half-resolution grid;
2. the net over the whole feature volume, in overlapping slabs along z when it is large (the slabs'
   halo covers the net's context, so the result equals one pass);
3. the three quantile maps interpolated trilinearly onto the input grid (exact input shape), the
   median clamped to ``[max(lo, 2 x input voxel), hi]``, the interval kept around it, 0 outside the mask.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from scipy import ndimage

from locres.errors import LocresError
from locres.models.features import dense_features

log = logging.getLogger(__name__)

SLAB_HALO = 16  # half-grid voxels: the context branch reaches +-12
SLAB_MAX_VOXELS = 96**3


@torch.inference_mode()
def run_net_in_slabs(
    net: torch.nn.Module, features: np.ndarray, device: str = "cpu", max_voxels: int = SLAB_MAX_VOXELS
) -> np.ndarray:
    """``net`` on (C, d, h, w) features -> (3, d, h, w), in z slabs of about ``max_voxels`` voxels."""
    c, d, h, w = features.shape
    step = max(2, (max_voxels // max(h * w, 1)) // 2 * 2)
    out = np.empty((3, d, h, w), np.float32)
    for z0 in range(0, d, step):
        z1 = min(d, z0 + step)
        a, b = max(0, z0 - SLAB_HALO), min(d, z1 + SLAB_HALO)
        a -= a % 2  # keep the quarter-resolution pooling aligned with a whole-volume pass
        x = torch.from_numpy(np.ascontiguousarray(features[:, a:b]))[None].to(device)
        out[:, z0:z1] = net(x)[0, :, z0 - a : z1 - a].float().cpu().numpy()
    return out


def half_grid_to_input_grid(values: np.ndarray, voxel_size_a: float, model_voxel_size_a: float,
                            shape_zyx) -> np.ndarray:
    """Values on the features' grid (model voxels ``2 i``) brought onto the input's grid of ``shape_zyx``
    at ``voxel_size_a``: input voxel j sits at half-grid index ``j * voxel_size_a / (2 model_voxel_size_a)``,
    interpolated linearly, edges held."""
    scale = voxel_size_a / (2.0 * model_voxel_size_a)
    return ndimage.affine_transform(values, np.full(3, scale), output_shape=tuple(shape_zyx), order=1,
                                    mode="nearest")


def predict_dense_quantiles_a(
    net: torch.nn.Module,
    meta: dict,
    voxel_size_a: float,
    mask: np.ndarray,
    map_zyx: np.ndarray | None = None,
    half1_zyx: np.ndarray | None = None,
    half2_zyx: np.ndarray | None = None,
    device: str = "cpu",
    info: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Low, median and high resolution quantiles (Angstrom) on the input grid; 0 outside ``mask``.

    Parameters
    ----------
    net, meta : a loaded dense model (``meta`` gives ``voxel_size_a``, ``resolution_range_a``, ``inputs``).
    voxel_size_a : the input's voxel size (Angstrom).
    mask : (z, y, x) bool, the voxels to estimate.
    map_zyx, half1_zyx, half2_zyx : the map and/or the half maps (what ``meta["inputs"]`` needs).
    info : filled with timings and the clamped fraction.
    """
    t0 = time.perf_counter()
    info = {} if info is None else info
    mask = np.asarray(mask, bool)
    shape = mask.shape
    v_model = float(meta["voxel_size_a"])
    lo, hi = (float(r) for r in meta["resolution_range_a"])
    inputs = str(meta.get("inputs", "map"))
    feats = dense_features(
        voxel_size_a,
        v_model,
        map_zyx=map_zyx,
        half1_zyx=half1_zyx,
        half2_zyx=half2_zyx,
        inputs=inputs,
        workers=2,
        version=int(getattr(net, "feature_version", 1)),
    )
    t1 = time.perf_counter()
    q = run_net_in_slabs(net, feats, device)
    t2 = time.perf_counter()
    low, mid, high = (half_grid_to_input_grid(q[i], voxel_size_a, v_model, shape) for i in range(3))
    floor = max(lo, 2.0 * voxel_size_a)
    clamped = np.clip(mid, floor, hi)
    if mask.any():
        info["fraction_clamped"] = float(np.mean(clamped[mask] != mid[mask]))
    low = np.minimum(low * (clamped / np.maximum(mid, 1e-6)), clamped)
    high = np.maximum(high * (clamped / np.maximum(mid, 1e-6)), clamped)
    out = [np.where(mask, a, 0.0).astype(np.float32) for a in (low, clamped, high)]
    info.update(
        {
            "model_grid_voxel_a": v_model,
            "inputs": inputs,
            "feature_grid_zyx": list(feats.shape[1:]),
            "seconds_features": round(t1 - t0, 3),
            "seconds_net": round(t2 - t1, 3),
            "seconds_total": round(time.perf_counter() - t0, 3),
        }
    )
    if not mask.any():
        raise LocresError("the mask is empty: give a mask that covers the molecule")
    return out[0], out[1], out[2]
