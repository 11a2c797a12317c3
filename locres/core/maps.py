"""The map type: a voxel array with the header geometry that keeps it in register.

A :class:`MapVolume` holds the voxel array in canonical ``(z, y, x)`` order and the
:class:`MapGeometry` read from a header (voxel size, origin, nstart, cell, axis order, and the raw
header itself). Pure numerics: nothing here touches disk (``locres.io.maps`` reads and writes).

Position convention (the one ChimeraX uses): the centre of voxel ``(ix, iy, iz)`` lies at
``corner_xyz_a + (ix, iy, iz) * voxel_size_xyz_a``, where ``corner_xyz_a`` is the header ORIGIN when it is
non-zero and ``nstart * voxel_size`` otherwise.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from locres.core.fourier import lowpass_raised_cosine
from locres.errors import LocresError

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class MapGeometry:
    """Header geometry of a map. All ``*_xyz`` tuples are in x, y, z order (Angstrom or voxels).

    Attributes
    ----------
    shape_zyx : canonical array shape ``(nz, ny, nx)``.
    voxel_size_xyz_a : voxel size per axis in Angstrom, or None when the header has none.
    origin_xyz_a : header ORIGIN (Angstrom).
    nstart_xyz : header NXSTART/NYSTART/NZSTART mapped to x, y, z (voxels).
    cell_xyz_a : unit-cell lengths (Angstrom).
    grid_xyz : sampling MX, MY, MZ.
    axis_order : (MAPC, MAPR, MAPS); (1, 2, 3) is the usual x-fastest order.
    header : a copy of the raw header (numpy record) so that writing keeps every other field.
    """

    shape_zyx: tuple[int, int, int]
    voxel_size_xyz_a: tuple[float, float, float] | None
    origin_xyz_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
    nstart_xyz: tuple[int, int, int] = (0, 0, 0)
    cell_xyz_a: tuple[float, float, float] | None = None
    grid_xyz: tuple[int, int, int] | None = None
    axis_order: tuple[int, int, int] = (1, 2, 3)
    header: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def new(
        cls,
        shape_zyx: tuple[int, int, int],
        voxel_size_a: float,
        origin_xyz_a: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> MapGeometry:
        """A fresh geometry: x-fastest axis order, nstart 0, cell = box."""
        shape_zyx = tuple(int(n) for n in shape_zyx)
        v = float(voxel_size_a)
        nx, ny, nz = shape_zyx[2], shape_zyx[1], shape_zyx[0]
        return cls(
            shape_zyx=shape_zyx,
            voxel_size_xyz_a=(v, v, v),
            origin_xyz_a=tuple(float(o) for o in origin_xyz_a),
            cell_xyz_a=(nx * v, ny * v, nz * v),
            grid_xyz=(nx, ny, nz),
        )

    @property
    def voxel_size_a(self) -> float:
        """Isotropic voxel size in Angstrom (mean over axes); raises if the header has none."""
        if self.voxel_size_xyz_a is None:
            raise LocresError(
                "the map header has no voxel size (cell is zero); give it with input.voxel_size=<A/px>"
            )
        v = np.asarray(self.voxel_size_xyz_a)
        if np.ptp(v) > 1e-3 * v.mean():
            log.warning("anisotropic voxel size %s A; using the mean", tuple(v.round(4)))
        return float(v.mean())

    @property
    def corner_xyz_a(self) -> np.ndarray:
        """Position (Angstrom) of the centre of voxel (0, 0, 0), x, y, z order."""
        origin = np.asarray(self.origin_xyz_a, dtype=np.float64)
        if np.any(origin != 0):
            return origin
        v = np.asarray(self.voxel_size_xyz_a if self.voxel_size_xyz_a else (1.0, 1.0, 1.0))
        return np.asarray(self.nstart_xyz, dtype=np.float64) * v

    def with_voxel_size(self, voxel_size_a: float) -> MapGeometry:
        """The same grid with the voxel size overridden (cell rescaled to keep MX/MY/MZ)."""
        v = float(voxel_size_a)
        if not v > 0 or not np.isfinite(v):
            raise LocresError(f"voxel size must be a positive number of Angstrom, got {voxel_size_a}")
        grid = self.grid_xyz or (self.shape_zyx[2], self.shape_zyx[1], self.shape_zyx[0])
        return replace(self, voxel_size_xyz_a=(v, v, v), cell_xyz_a=tuple(g * v for g in grid), grid_xyz=grid)

    def same_grid(self, other: MapGeometry, tol: float = 1e-3) -> bool:
        """True when both describe the same voxel centres (shape, voxel size and corner)."""
        if self.shape_zyx != other.shape_zyx:
            return False
        if self.voxel_size_xyz_a is None or other.voxel_size_xyz_a is None:
            return self.voxel_size_xyz_a is None and other.voxel_size_xyz_a is None
        va, vb = np.asarray(self.voxel_size_xyz_a), np.asarray(other.voxel_size_xyz_a)
        return bool(
            np.allclose(va, vb, rtol=tol)
            and np.allclose(self.corner_xyz_a, other.corner_xyz_a, atol=tol * va.max())
        )


@dataclass(eq=False)
class MapVolume:
    """A map: ``data`` is float32 ``(z, y, x)``; ``geometry`` says where each voxel is."""

    data: np.ndarray
    geometry: MapGeometry
    path: str | None = None

    @property
    def voxel_size_a(self) -> float:
        return self.geometry.voxel_size_a

    def with_data(self, data: np.ndarray) -> MapVolume:
        """Another map on the same grid (e.g. a local-resolution map)."""
        data = np.asarray(data)
        if data.shape != self.data.shape:
            raise ValueError(f"data shape {data.shape} does not match the grid {self.data.shape}")
        return MapVolume(data=data, geometry=self.geometry, path=None)

    @classmethod
    def from_array(cls, data_zyx: np.ndarray, voxel_size_a: float, origin_xyz_a=(0.0, 0.0, 0.0)) -> MapVolume:
        data = np.asarray(data_zyx, dtype=np.float32)
        return cls(data=data, geometry=MapGeometry.new(data.shape, voxel_size_a, origin_xyz_a))


def resample_onto(
    moving: MapVolume, target: MapGeometry, order: int = 1, role: str = "mask", fill: float = 0.0
) -> np.ndarray:
    """Resample ``moving`` onto ``target``'s grid using both headers (axes assumed aligned).

    Voxels of the target outside ``moving`` get ``fill``. Raises :class:`LocresError` when the two grids
    do not overlap at all. Returns a float32 ``(z, y, x)`` array of ``target.shape_zyx``.
    """
    if target.same_grid(moving.geometry):
        return moving.data.astype(np.float32, copy=True)
    if moving.geometry.voxel_size_xyz_a is None or target.voxel_size_xyz_a is None:
        raise LocresError(f"cannot place the {role} on the map's grid: a voxel size is missing")
    v_t = np.asarray(target.voxel_size_xyz_a)
    v_m = np.asarray(moving.geometry.voxel_size_xyz_a)
    scale_xyz = v_t / v_m
    offset_xyz = (target.corner_xyz_a - moving.geometry.corner_xyz_a) / v_m
    n_t = np.asarray(target.shape_zyx[::-1])
    n_m = np.asarray(moving.data.shape[::-1])
    lo = offset_xyz
    hi = offset_xyz + (n_t - 1) * scale_xyz
    if np.any(hi < -0.5) or np.any(lo > n_m - 0.5):
        raise LocresError(
            f"the {role} does not overlap the map: check both headers' origin and voxel size "
            f"({role} corner {moving.geometry.corner_xyz_a.round(2)} A, "
            f"map corner {target.corner_xyz_a.round(2)} A)"
        )
    out = ndimage.affine_transform(
        moving.data.astype(np.float32),
        matrix=scale_xyz[::-1],
        offset=offset_xyz[::-1],
        output_shape=tuple(target.shape_zyx),
        order=order,
        mode="constant",
        cval=fill,
        prefilter=order > 1,
    )
    return out.astype(np.float32)


def model_grid_shape(shape_zyx, voxel_size_a: float, model_voxel_size_a: float) -> tuple[int, int, int]:
    """Shape of the grid at ``model_voxel_size_a`` spanning the same voxel centres (first voxel shared)."""
    r = voxel_size_a / model_voxel_size_a
    return tuple(int(math.floor((n - 1) * r + 1e-6)) + 1 for n in shape_zyx)


def to_model_grid(volume: np.ndarray, voxel_size_a: float, model_voxel_size_a: float, order: int = 1,
                  lowpass: bool = True) -> np.ndarray:
    """Resample ``volume`` (z, y, x) at ``voxel_size_a`` onto a network's grid of ``model_voxel_size_a``.

    The one resampling shared by training and inference. The output grid shares the first voxel centre
    and spans the same centres (:func:`model_grid_shape`). When the input is finer than the model grid
    (and ``lowpass``), it is first low-passed to the model's Nyquist (2 x ``model_voxel_size_a``) with a
    raised cosine so nothing aliases. Returns float32.
    """
    if abs(voxel_size_a - model_voxel_size_a) < 1e-4 * model_voxel_size_a:
        return np.asarray(volume, dtype=np.float32).copy()
    if lowpass and voxel_size_a < model_voxel_size_a:
        volume = lowpass_raised_cosine(volume, voxel_size_a, 2.0 * model_voxel_size_a)
    shape = model_grid_shape(volume.shape, voxel_size_a, model_voxel_size_a)
    return resample_onto(MapVolume.from_array(volume, voxel_size_a),
                         MapGeometry.new(shape, model_voxel_size_a), order=order, role="map")
