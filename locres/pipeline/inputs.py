"""Load and validate: read the map and/or half maps, the mask and a fitted model; refuse bad inputs.

:func:`load_inputs` reads the files (via :mod:`locres.io.maps`), checks each volume (voxel size, size,
not constant), checks that half maps and map share one grid, puts the mask on the map's grid
(:func:`load_mask`: ``resample_onto``, binarised at 0.5) and returns a :class:`LoadedInputs` whose
``inputs`` are the arrays the methods receive. A fitted atomic model (``input.model``) reaches the
methods as data: its density simulated on the map's grid and its footprint (:func:`load_model`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from locres.core.maps import MapVolume, resample_onto
from locres.errors import LocresError
from locres.io.maps import read_map
from locres.io.models import read_structure
from locres.methods import MethodInputs
from locres.simulate.density import model_map_in_frame

log = logging.getLogger(__name__)


@dataclass
class LoadedInputs:
    """Inputs read from disk and checked.

    ``reference`` is the volume whose grid every output is written on (the map, else half map 1);
    ``inputs`` holds the arrays handed to the methods; ``paths`` the file names as given.
    """

    reference: MapVolume
    inputs: MethodInputs
    paths: dict[str, str | None] = field(default_factory=dict)
    mask_given: bool = False


def _check_volume(vol: MapVolume, role: str) -> None:
    _ = vol.geometry.voxel_size_a  # raises a one-line error when the header has none
    v = np.asarray(vol.geometry.voxel_size_xyz_a, dtype=float)
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise LocresError(
            f"{role} {vol.path} has voxel size {tuple(v)}; give it with input.voxel_size=<A/px>"
        )
    if min(vol.data.shape) < 3:
        raise LocresError(f"{role} {vol.path} is too small ({vol.data.shape}); give a 3-D map")
    if float(np.ptp(vol.data)) == 0.0:
        raise LocresError(
            f"{role} {vol.path} is constant (every voxel {float(vol.data.flat[0]):g}); "
            "give a map with density"
        )


def _same_grid_or_fail(a: MapVolume, b: MapVolume, what: str) -> None:
    if a.data.shape != b.data.shape:
        raise LocresError(
            f"{what} have different shapes {a.data.shape} and {b.data.shape} (z, y, x); "
            "give maps from the same reconstruction"
        )
    va, vb = a.geometry.voxel_size_a, b.geometry.voxel_size_a
    if abs(va - vb) > 1e-3 * max(va, vb):
        raise LocresError(
            f"{what} have different voxel sizes {va:.4f} and {vb:.4f} A; "
            "give maps from the same reconstruction (or fix the headers)"
        )


def load_mask(
    path: str | os.PathLike, reference: MapVolume, voxel_size_overridden: bool = False
) -> np.ndarray:
    """Read a mask and put it on ``reference``'s grid: resampled (trilinear) and binarised at 0.5.

    A mask without a voxel size, or any mask of the map's shape when the map's voxel size was overridden
    with ``input.voxel_size``, is taken to be on the map's grid already.
    """
    mask_vol = read_map(path, role="mask")
    if mask_vol.data.shape == reference.data.shape and (
        voxel_size_overridden or mask_vol.geometry.voxel_size_xyz_a is None
    ):
        values = mask_vol.data
    else:
        if mask_vol.geometry.voxel_size_xyz_a is None:
            raise LocresError(
                f"mask {path} has no voxel size and a different shape {mask_vol.data.shape} "
                f"from the map {reference.data.shape}; give a mask on the map's grid"
            )
        values = resample_onto(mask_vol, reference.geometry, order=1, role="mask")
    vmax = float(values.max()) if values.size else 0.0
    if vmax > 1.5:  # a label map or a density used as mask: normalise so that 0.5 means "half way"
        values = values / vmax
    mask = values >= 0.5
    if not mask.any():
        raise LocresError(
            f"mask {path} is empty on the map's grid (no voxel >= 0.5 after resampling); "
            "check the mask file and its header origin and voxel size"
        )
    return mask


def load_model(path: str | os.PathLike, reference: MapVolume) -> tuple[np.ndarray, np.ndarray]:
    """Read a fitted atomic model and simulate it on ``reference``'s grid (origin, nstart, axis order).

    Returns the model map (uniform B of :data:`~locres.simulate.density.MODEL_MAP_B_A2`) and its
    footprint (voxels within 2.5 A of an atom); a one-line error for a file that is not a structure or a
    model that does not overlap the map.
    """
    if not Path(path).is_file():
        raise LocresError(f"atomic model not found: {path} (input.model); give a PDB or mmCIF file")
    try:
        structure = read_structure(path)
    except LocresError as exc:
        raise LocresError(f"input.model: {exc}; give the PDB or mmCIF model fitted to the map") from None
    try:
        return model_map_in_frame(structure, reference.geometry)
    except LocresError as exc:
        raise LocresError(f"input.model {path}: {exc}") from None


def load_inputs(
    map_path: str | os.PathLike | None = None,
    half1_path: str | os.PathLike | None = None,
    half2_path: str | os.PathLike | None = None,
    mask_path: str | os.PathLike | None = None,
    voxel_size_a: float | None = None,
    device: str = "cpu",
    model_path: str | os.PathLike | None = None,
) -> LoadedInputs:
    """Read and check the inputs of one inference run (see module docstring).

    ``model_path``: a fitted atomic model (PDB/mmCIF); it is simulated on the map's exact grid at a
    uniform B and handed to the methods as ``model_map`` and ``model_footprint`` (:func:`load_model`).
    """
    if (half1_path is None) != (half2_path is None):
        raise LocresError("give both half maps (input.half1 and input.half2) or neither")
    if map_path is None and half1_path is None:
        raise LocresError(
            "no input map given: set input.map=MAP.mrc or input.half1=H1.mrc input.half2=H2.mrc"
        )
    if voxel_size_a is not None:
        try:
            voxel_size_a = float(voxel_size_a)
        except (TypeError, ValueError):
            raise LocresError(
                f"input.voxel_size must be a number of Angstrom, got {voxel_size_a!r}"
            ) from None
        if not (np.isfinite(voxel_size_a) and voxel_size_a > 0):
            raise LocresError(f"input.voxel_size must be a positive number of Angstrom, got {voxel_size_a}")
    vols: dict[str, MapVolume] = {}
    for key, path, role in (
        ("map", map_path, "map"),
        ("half1", half1_path, "half map 1"),
        ("half2", half2_path, "half map 2"),
    ):
        if path is not None:
            vols[key] = read_map(path, voxel_size_a=voxel_size_a, role=role)
            _check_volume(vols[key], role)
    if "half1" in vols:
        _same_grid_or_fail(vols["half1"], vols["half2"], "the half maps")
        if float(np.ptp(vols["half1"].data - vols["half2"].data)) == 0.0:
            log.warning(
                "the two half maps are identical up to a constant: half-map methods will see no noise"
            )
    reference = vols.get("map", vols.get("half1"))
    if "map" in vols and "half1" in vols:
        _same_grid_or_fail(vols["map"], vols["half1"], "the map and the half maps")
    mask = None
    if mask_path is not None:
        mask = load_mask(mask_path, reference, voxel_size_overridden=voxel_size_a is not None)
    inputs = MethodInputs(
        voxel_size_a=reference.voxel_size_a,
        map=vols["map"].data if "map" in vols else None,
        half1=vols["half1"].data if "half1" in vols else None,
        half2=vols["half2"].data if "half2" in vols else None,
        mask=mask,
        device=device,
    )
    if inputs.map is None:
        inputs.map = inputs.average_map().astype(np.float32)
    if model_path is not None:
        inputs.model_map, inputs.model_footprint = load_model(model_path, reference)
    paths = {"map": _s(map_path), "half1": _s(half1_path), "half2": _s(half2_path), "mask": _s(mask_path),
             "model": _s(model_path)}
    return LoadedInputs(reference=reference, inputs=inputs, paths=paths, mask_given=mask is not None)


def _s(p: Any) -> str | None:
    return None if p is None else str(p)


