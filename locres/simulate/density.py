"""Density from an atomic model with electron scattering factors (gemmi's Mott-Bethe calculator)."""

from __future__ import annotations

import logging

import gemmi
import numpy as np

from locres.core.maps import MapGeometry, MapVolume
from locres.errors import LocresError

log = logging.getLogger(__name__)

MODEL_MAP_B_A2 = 30.0  # uniform B for a model map used as a yardstick (modest: sharp, not aliased)


def model_extent_a(structure: gemmi.Structure) -> tuple[np.ndarray, np.ndarray]:
    """(min_xyz, max_xyz) of the first model's atoms, Angstrom."""
    xyz = atom_positions_a(structure)
    return xyz.min(axis=0), xyz.max(axis=0)


def atom_positions_a(structure: gemmi.Structure) -> np.ndarray:
    """(n_atoms, 3) x, y, z positions of the first model's atoms, Angstrom."""
    return np.array([cra.atom.pos.tolist() for cra in structure[0].all()], dtype=np.float64)


def _density_on_periodic_box(
    structure: gemmi.Structure, shift_xyz_a: np.ndarray, shape_zyx: tuple[int, int, int], voxel_size_a: float,
    b_factor_a2: float | None, blur_a2: float | None,
) -> np.ndarray:
    st = structure.clone()
    if b_factor_a2 is not None:
        for cra in st[0].all():
            cra.atom.b_iso = float(b_factor_a2)
            cra.atom.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
    st[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift_xyz_a)))
    nz, ny, nx = shape_zyx
    v = float(voxel_size_a)
    dc = gemmi.DensityCalculatorE()
    dc.d_min = 2.0 * v
    if blur_a2 is None:
        # anti-aliasing: total B of at least 16 v^2 makes each atom's transform exp(-1) at Nyquist
        min_b = min((cra.atom.b_iso for cra in st[0].all()), default=0.0)
        blur_a2 = max(0.0, 16.0 * v * v - min_b)
    dc.blur = float(blur_a2)
    dc.grid.spacegroup = gemmi.find_spacegroup_by_name("P1")
    dc.grid.set_unit_cell(gemmi.UnitCell(nx * v, ny * v, nz * v, 90, 90, 90))
    dc.grid.set_size(nx, ny, nz)
    dc.grid.fill(0.0)
    dc.add_model_density_to_grid(st[0])
    dc.grid.symmetrize_sum()
    arr_xyz = np.array(dc.grid, copy=True)
    return np.ascontiguousarray(arr_xyz.transpose(2, 1, 0), dtype=np.float32)


def simulate_map_in_frame(
    structure: gemmi.Structure,
    geometry: MapGeometry,
    b_factor_a2: float | None = None,
    blur_a2: float | None = None,
    margin_a: float = 12.0,
) -> np.ndarray:
    """Density of ``structure`` on the grid of an existing map (so a deposited model lands on its map).

    The calculation runs in a box that covers the map and the model with a margin, so atoms outside
    the map do not wrap around periodically; the map's part is returned as float32 ``(z, y, x)``.
    """
    v_xyz = np.asarray(geometry.voxel_size_xyz_a if geometry.voxel_size_xyz_a else (0, 0, 0))
    if np.any(v_xyz <= 0):
        raise LocresError("cannot simulate in a map's frame without its voxel size")
    v = float(v_xyz.mean())
    corner = geometry.corner_xyz_a
    n_xyz = np.asarray(geometry.shape_zyx[::-1])
    lo_m, hi_m = model_extent_a(structure)
    lo = np.minimum(corner, lo_m) - margin_a
    hi = np.maximum(corner + (n_xyz - 1) * v, hi_m) + margin_a
    # start the big box on the map's lattice so the crop needs no interpolation
    start_idx = np.floor((lo - corner) / v).astype(int)
    stop_idx = np.ceil((hi - corner) / v).astype(int)
    big_n_xyz = stop_idx - start_idx + 1
    if np.prod(big_n_xyz) > 600**3:
        raise LocresError("the model lies too far from the map to simulate it in the map's frame")
    big_corner = corner + start_idx * v
    big = _density_on_periodic_box(
        structure, -big_corner, tuple(int(n) for n in big_n_xyz[::-1]), v, b_factor_a2, blur_a2
    )
    sx, sy, sz = -start_idx
    nx, ny, nz = n_xyz
    return np.ascontiguousarray(big[sz : sz + nz, sy : sy + ny, sx : sx + nx])


def simulate_map_centered(
    structure: gemmi.Structure,
    voxel_size_a: float,
    shape_zyx: tuple[int, int, int] | None = None,
    padding_a: float = 10.0,
    b_factor_a2: float | None = None,
    blur_a2: float | None = None,
    rotation: np.ndarray | None = None,
) -> MapVolume:
    """Density of ``structure`` centred in a new box.

    Parameters
    ----------
    voxel_size_a : voxel size in Angstrom.
    shape_zyx : box shape; by default the model's extent plus ``padding_a`` on each side (even sizes).
    b_factor_a2 : replace every atom's B-factor (Angstrom^2); None keeps the file's values.
    blur_a2 : extra Gaussian blur B (Angstrom^2); None adds just enough to avoid aliasing.
    rotation : optional 3x3 rotation applied about the model's centre before placing it.

    Returns
    -------
    MapVolume with origin 0 whose voxel size is ``voxel_size_a``.
    """
    if not voxel_size_a > 0:
        raise LocresError(f"voxel size must be positive, got {voxel_size_a}")
    st = structure
    lo, hi = model_extent_a(st)
    centre = (lo + hi) / 2
    if rotation is not None:
        st = structure.clone()
        rot = np.asarray(rotation, dtype=np.float64)
        shift = centre - rot @ centre
        st[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(rot.tolist()), gemmi.Vec3(*shift)))
        lo, hi = model_extent_a(st)
        centre = (lo + hi) / 2
    v = float(voxel_size_a)
    if shape_zyx is None:
        n = np.ceil((hi - lo + 2 * padding_a) / v).astype(int)
        n = n + (n % 2)
        shape_zyx = (int(n[2]), int(n[1]), int(n[0]))
    n_xyz = np.asarray(shape_zyx[::-1])
    box_centre_a = (n_xyz // 2) * v
    data = _density_on_periodic_box(st, box_centre_a - centre, tuple(shape_zyx), v, b_factor_a2, blur_a2)
    return MapVolume(data=data, geometry=MapGeometry.new(tuple(shape_zyx), v))


def model_footprint(structure: gemmi.Structure, geometry: MapGeometry, radius_a: float = 2.5,
                    chunk_atoms: int = 4096) -> np.ndarray:
    """Bool (z, y, x) mask on ``geometry``'s grid: voxel centres within ``radius_a`` Angstrom of an atom.

    Voxel centres follow :class:`MapGeometry` (``corner_xyz_a + index * voxel_size``), so origin, nstart
    and axis order are honoured. Distances are exact (each atom against the voxels around it).
    """
    v = np.asarray(geometry.voxel_size_xyz_a, dtype=np.float64)
    shape = np.asarray(geometry.shape_zyx)[::-1]  # x, y, z
    pos = (atom_positions_a(structure) - geometry.corner_xyz_a) / v  # fractional voxel index, x, y, z
    r_vox = float(radius_a) / v
    reach = np.ceil(r_vox).astype(int)
    grid = np.stack(np.meshgrid(*[np.arange(-n, n + 1) for n in reach], indexing="ij"), -1).reshape(-1, 3)
    out = np.zeros(geometry.shape_zyx, dtype=bool)
    keep = np.all((pos > -reach - 1) & (pos < shape + reach), axis=1)
    pos = pos[keep]
    for i in range(0, len(pos), chunk_atoms):
        p = pos[i:i + chunk_atoms]
        idx = np.rint(p)[:, None, :].astype(int) + grid[None, :, :]  # (atoms, offsets, xyz)
        d2 = np.sum(((idx - p[:, None, :]) * v) ** 2, axis=-1)
        ok = (d2 <= radius_a**2) & np.all((idx >= 0) & (idx < shape), axis=-1)
        hit = idx[ok]
        out[hit[:, 2], hit[:, 1], hit[:, 0]] = True
    return out


def model_map_in_frame(structure: gemmi.Structure, geometry: MapGeometry,
                       b_factor_a2: float | None = MODEL_MAP_B_A2,
                       radius_a: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """A fitted model's density on a map's exact grid (uniform B) and its footprint.

    Returns
    -------
    model_map : (z, y, x) float32 density of :func:`simulate_map_in_frame` with every atom at
        ``b_factor_a2`` (None keeps the file's B-factors).
    footprint : (z, y, x) bool, voxels within ``radius_a`` Angstrom of an atom (:func:`model_footprint`).

    Raises :class:`LocresError` when no atom lies within ``radius_a`` of the map's box.
    """
    footprint = model_footprint(structure, geometry, radius_a)
    if not footprint.any():
        lo, hi = model_extent_a(structure)
        c0 = geometry.corner_xyz_a
        c1 = c0 + (np.asarray(geometry.shape_zyx[::-1]) - 1) * np.asarray(geometry.voxel_size_xyz_a)
        raise LocresError(
            f"the atomic model ({np.round(lo, 1).tolist()} to {np.round(hi, 1).tolist()} A) does not "
            f"overlap the map ({np.round(c0, 1).tolist()} to {np.round(c1, 1).tolist()} A); give the model "
            "fitted to this map, in its frame"
        )
    return simulate_map_in_frame(structure, geometry, b_factor_a2=b_factor_a2), footprint
