"""blocres: local (box) and radial-shell FSC between two half maps (Cardone, Heymann & Steven 2013).

Box mode, as specified in ``specs/blocres.md``
----------------------------------------------
Around each computed voxel ``v`` a cubic box of ``B`` voxels starting at ``v - B//2`` is cut from both
half maps (zeros outside the map), tapered towards ``A`` (the global mean of half 1; half 2 is rescaled
to half 1's mean and spread) with a Hann window, padded with ``A`` to ``P = B (pad + 1)``, and its FSC is
binned in shells of ``1 / (P u)`` with linear interpolation between neighbouring shells over the half
space ``kx < P//2``. FSC_0 := 1; values are clamped to [-1, 1]. The read-out takes the *last* shell
``i`` with FSC_i >= c > FSC_{i+1}, interpolates linearly in frequency, and clamps ``1 / s*`` to
``[hi, 200]`` Angstrom with ``hi = max(max_resolution_a, 2 / sqrt(sum 1/u_i^2))``.
:func:`local_fsc_reference` does exactly this, box by box (batched FFTs); it serves as the reference.

Fast path (:func:`local_fsc_fast`): every voxel at once
------------------------------------------------------
For each shell ``i`` both (mean-removed) half maps are band-passed on the whole-map Fourier grid with a
radial weight ``g_i`` (real-space band images ``b1_i``, ``b2_i``), then the local sums
``num = W * (b1 b2)``, ``d1 = W * b1^2``, ``d2 = W * b2^2`` are formed by FFT correlation with the
squared window ``W = w^2`` (the box's own placement, ``v - B//2`` .. ``v - B//2 + B - 1``), and
``FSC_i = num / sqrt(d1 d2)``. By Parseval this is the FSC of the windowed band-passed maps.

How it differs from the exact box FSC: the box method windows first and bins shells of the padded
box spectrum, so each of its shells sees the input spectrum blurred by the window's transform
``|H|^2`` (a few shells wide). The fast path band-passes first, so with a plain shell weight it would
be sharper in frequency. With ``matched_shells=True`` (default) ``g_i^2`` is set to the reference's
effective weight, ``W_i(k') = sum_k T_i(k) |H(k - k')|^2`` (``T_i`` the shell binning), computed once
from the window's transform and averaged over five directions; then both estimate the same expected
shell sums for any locally stationary signal and differ only by (i) the anisotropy of ``W_i`` ignored by
the radial average, (ii) sampling fluctuations of the finite box (the two are different estimators of
the same quantity), (iii) periodic wrap-around at the map edges (the reference sees zeros outside the
map; irrelevant with the default edge of ``B//2``), (iv) the global band-pass vs the box-limited FFT.
The agreement on test maps is measured in ``tests/methods/test_blocres.py``.

Half-bit threshold (not in the reference, selectable with ``cutoff="half_bit"``): van Heel & Schatz with
the number of independent coefficients of each shell, counted on the padded grid and divided by
``(P/B)^3`` for the oversampling of padding.

Shell mode (:func:`shell_fsc_profile`): concentric radial shells around an origin, FSC of the whole
(masked to the shell) maps; see the spec. Output is a 1-D profile and a
map that holds each voxel's shell value; the profile's table and figure are in
:mod:`locres.report.blocres_shells`.

Mask handling in :func:`run`: with ``inputs.mask`` the estimate is returned inside the mask and inside
the edge. Without a mask, ``auto_mask=True`` builds one from the half-map average (Gaussian low pass to
``max(8 A, 4 u)``, threshold at the mean + 3 sigma of the region outside the inscribed sphere, taken to be
solvent, then dilated by ``B//4`` voxels); if that finds nothing, or with ``auto_mask=False``, every
voxel away from the edges is estimated. The mask used is returned in ``LocalResolution.mask``.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from scipy import ndimage

from locres.errors import LocresError
from locres.methods import LocalResolution, MethodInputs
from locres.methods.blocres.common import (  # noqa: F401  (the public helpers live here too)
    MAX_RESOLUTION_CLAMP_A,
    TAPERS,
    _check_box,
    computed_nodes,
    cut_last_crossing,
    cutoff_curves,
    default_box,
    interpolate_nodes,
    make_auto_mask,
    n_shells,
    parse_cutoffs,
    resolution_limit_a,
    shell_binning,
    window_1d,
    window_3d,
)
from locres.methods.blocres.fast import local_fsc_fast, matched_shell_profiles  # noqa: F401
from locres.methods.blocres.reference import local_fsc_reference  # noqa: F401
from locres.methods.blocres.shells import shell_fsc_profile, shell_map  # noqa: F401

log = logging.getLogger(__name__)

NAME = "blocres"
INPUTS = "halves"


# --------------------------------------------------------------------------- run
def run(inputs: MethodInputs, box: int | None = None, cutoff=0.5, step: int = 1, mode: str = "box",
        pad: int = 1, taper: str = "hann", edge: int | None = None, max_resolution_a: float = 0.0,
        shell_width: int | None = None, radii=None, origin=None, smooth: bool = False,
        auto_mask: bool = True, matched_shells: bool = True, engine: str = "fast") -> LocalResolution:
    """blocres on two half maps (``method=blocres``); parameters as in ``configs/method/blocres.yaml``.

    ``resolution_a`` holds the first cutoff's estimate; further cutoffs go in ``extra_maps`` as
    ``cutoff_<c>``. ``engine="reference"`` runs the box-by-box reference (slow; for checks).
    """
    if not inputs.has_halves:
        raise LocresError("blocres needs two half maps: set input.half1 and input.half2")
    if mode not in ("box", "shell"):
        raise LocresError(f"unknown blocres mode '{mode}': choose box or shell")
    if engine not in ("fast", "reference"):
        raise LocresError(f"unknown blocres engine '{engine}': choose fast or reference")
    cut = parse_cutoffs(cutoff)
    step = int(step)
    if step < 1:
        raise LocresError(f"step must be a positive number of voxels, got {step}")
    u = float(inputs.voxel_size_a)
    shape = inputs.shape_zyx
    t0 = time.perf_counter()
    info: dict = {"mode": mode, "cutoffs": cut, "step": step, "taper": taper, "engine": engine}
    mask = None if inputs.mask is None else np.asarray(inputs.mask).astype(bool)
    if mask is not None and mask.shape != tuple(shape):
        raise LocresError(f"mask shape {mask.shape} does not match the half maps {tuple(shape)}: resample it")
    if box is None:
        box, global_res = default_box(inputs.half1, inputs.half2, u, mask)
        info["global_resolution_a"] = global_res
        info["box_rule"] = "round(6 x global 0.143 resolution / voxel size)"
    box = _check_box(box, shape)
    info["box"] = box
    mask_source = "input"
    if mask is None:
        mask = make_auto_mask(inputs.average_map(), u, box // 4) if auto_mask else None
        mask_source = "auto" if mask is not None else "none (everywhere away from the edges)"
        if mask is None:
            mask = np.ones(shape, dtype=bool)
    info["mask_source"] = mask_source
    if mode == "shell":
        width = int(shell_width) if shell_width is not None else box
        prof = shell_fsc_profile(inputs.half1, inputs.half2, u, width, step, cut[0], radii=radii,
                                 origin=origin, smooth=smooth, max_resolution_a=max_resolution_a)
        res = shell_map(prof, shape, u) * mask
        info.update({"shell_width": width, "shell_profile": prof})
        info["seconds"] = round(time.perf_counter() - t0, 3)
        return LocalResolution(res.astype(np.float32), info=info, mask=mask)
    edge = box // 2 if edge is None else int(edge)
    info.update({"pad": pad, "edge": edge, "max_resolution_a": max_resolution_a,
                 "matched_shells": matched_shells})
    return _run_box(inputs, box, cut, step, pad, taper, edge, max_resolution_a, matched_shells, engine, mask,
                    info, t0)


def _run_box(inputs: MethodInputs, box: int, cut: list, step: int, pad: int, taper: str, edge: int,
             max_resolution_a: float, matched_shells: bool, engine: str, mask: np.ndarray, info: dict,
             t0: float) -> LocalResolution:
    """Box mode of :func:`run`: the FSC at every ``step``-th node inside ``mask`` and the edge, by the
    fast path or the reference, interpolated back to every voxel."""
    u, shape = float(inputs.voxel_size_a), inputs.shape_zyx
    valid = computed_nodes(shape, step, edge)
    node_mask = mask[::step, ::step, ::step]
    if step > 1:  # every node next to a masked voxel, for the interpolation
        node_mask = ndimage.binary_dilation(mask, iterations=step)[::step, ::step, ::step]
    valid &= node_mask
    if engine == "fast":
        nodes = local_fsc_fast(inputs.half1, inputs.half2, u, box, cut, pad, taper, max_resolution_a, step,
                               matched_shells, inputs.device,
                               nodes=valid if valid.mean() < 0.7 else None)  # gathering costs too
    else:
        pts = np.argwhere(valid) * step
        nodes = np.zeros((len(cut), *valid.shape), dtype=np.float32)
        if len(pts):
            nodes[(slice(None), *np.nonzero(valid))] = local_fsc_reference(
                inputs.half1, inputs.half2, u, box, pts, cut, pad, taper, max_resolution_a)
    in_edge = interpolate_nodes(np.ones(valid.shape), computed_nodes(shape, step, edge), shape, step) > 0
    region = mask & in_edge
    maps = [interpolate_nodes(nodes[j], valid, shape, step) * region for j in range(len(cut))]
    region &= maps[0] > 0
    info["voxels_estimated"] = int(region.sum())
    info["seconds"] = round(time.perf_counter() - t0, 3)
    extra = {f"cutoff_{c}": m.astype(np.float32) for c, m in zip(cut[1:], maps[1:])}
    return LocalResolution(maps[0].astype(np.float32), extra_maps=extra, info=info, mask=region)
