"""Outside reference estimators, run beside locres's own methods when they are installed.

torch-local-resolution (teamtomo, PyPI ``torch-local-resolution``) returns, per voxel, a p-value for each
tested resolution. It asks for Python >= 3.12 but runs on 3.11 when installed with
``pip install --no-deps --ignore-requires-python torch-local-resolution torch-fourier-filter
torch-grid-utils torch-ctf starfile einops pandas``. It is not a dependency of locres: where it is
missing, the variant fails with ImportError and the benchmark records it as not installed.
"""

from __future__ import annotations

import numpy as np
import torch

from locres.methods import LocalResolution, MethodInputs


def tlr_local_resolution_a(half1: np.ndarray, half2: np.ndarray, voxel_size_a: float,
                           resolutions_a: list[float] | None = None, alpha: float = 0.05,
                           step: int = 2) -> np.ndarray:
    """torch-local-resolution's p-value maps turned into a resolution map (Angstrom), (z, y, x).

    The read-out (ours: the package gives p-values, not a resolution) is the finest tested resolution
    that is significant at ``alpha`` while every coarser tested resolution is too; window radius
    1.1 x resolution in voxels (at least 3). Results on the ``step`` grid are spread to the full grid by
    nearest node. Raises ImportError when the package is not installed.
    """
    from torch_local_resolution import estimate_local_resolution

    if resolutions_a is None:
        coarse = min(20.0, max(9.0, 8.0 * voxel_size_a))
        fine = max(2.0 * voxel_size_a, 2.0)
        resolutions_a = list(np.arange(coarse, fine - 1e-6, -0.5))
    radii = [max(3.0, 1.1 * r / voxel_size_a) for r in resolutions_a]
    p = estimate_local_resolution(apix=voxel_size_a, windows_radii=radii, resolutions=resolutions_a,
                                  batch_half_map1=torch.from_numpy(np.ascontiguousarray(half1))[None],
                                  batch_half_map2=torch.from_numpy(np.ascontiguousarray(half2))[None],
                                  step_size=step)
    p = p[0].float().numpy()  # (n_res, z', y', x'), coarse to fine
    ok = np.cumprod(p < alpha, axis=0).astype(bool)
    n_ok = ok.sum(axis=0)
    res = np.where(n_ok > 0, np.asarray(resolutions_a)[np.maximum(n_ok - 1, 0)], resolutions_a[0])
    full = np.zeros(half1.shape, np.float32)
    idx = [np.minimum(np.arange(n) // step, res.shape[a] - 1) for a, n in enumerate(half1.shape)]
    full[...] = res[np.ix_(*idx)]
    return full


def torch_local_resolution(inputs: MethodInputs, alpha: float = 0.05, step: int = 2) -> LocalResolution:
    """Benchmark adapter (``method: locres.bench.outside:torch_local_resolution``, half maps)."""
    if not inputs.has_halves:
        raise ValueError("torch-local-resolution needs two half maps")
    res = tlr_local_resolution_a(inputs.half1, inputs.half2, inputs.voxel_size_a, alpha=alpha, step=step)
    if inputs.mask is not None:
        res = np.where(inputs.mask, res, 0.0).astype(np.float32)
    return LocalResolution(resolution_a=res, info={"outside_tool": "torch-local-resolution", "alpha": alpha,
                                                   "step": step}, mask=inputs.mask)
