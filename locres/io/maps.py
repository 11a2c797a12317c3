"""Reading and writing MRC/CCP4 maps that stay in register (the only map code that touches disk).

:func:`read_map` returns a :class:`locres.core.maps.MapVolume` in canonical ``(z, y, x)`` order with
the header's geometry; :func:`write_map` writes an array back with the *same* geometry, permuted back to
the file's own axis order, so the output overlays the input exactly in ChimeraX.

The position convention is :mod:`locres.core.maps`'s.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import mrcfile
import numpy as np

from locres.core.maps import MapGeometry, MapVolume
from locres.errors import LocresError
from locres.io.atomic import atomic_path

log = logging.getLogger(__name__)

MAP_SUFFIXES = (".mrc", ".map", ".ccp4", ".mrcs", ".rec", ".st")


def _file_to_zyx_axes(axis_order: tuple[int, int, int]) -> tuple[int, int, int]:
    """Permutation taking a file array (sections, rows, columns) to (z, y, x)."""
    mapc, mapr, maps = axis_order
    file_axes = (maps, mapr, mapc)  # axis (1=x, 2=y, 3=z) held by file dims 0, 1, 2
    if sorted(file_axes) != [1, 2, 3]:
        raise LocresError(f"invalid axis order MAPC/MAPR/MAPS = {axis_order} in the map header")
    return tuple(file_axes.index(a) for a in (3, 2, 1))


def read_map(
    path: str | os.PathLike,
    voxel_size_a: float | None = None,
    role: str = "map",
    check_values: bool = True,
) -> MapVolume:
    """Read an MRC/CCP4 map (optionally gzipped) into canonical (z, y, x) order.

    Parameters
    ----------
    path : file name (``.mrc .map .ccp4``, ``.gz`` too).
    voxel_size_a : overrides a missing or wrong header voxel size (Angstrom).
    role : what the file is ("map", "mask", "half map 1", ...), used in error messages.
    check_values : refuse NaN or Inf values.
    """
    p = Path(path)
    if not p.exists():
        raise LocresError(f"{role} file not found: {p}")
    if p.is_dir():
        raise LocresError(f"{role} path is a folder, not a map file: {p}")
    try:
        with mrcfile.open(p, mode="r", permissive=True) as mrc:
            if mrc.data is None or mrc.header is None:
                raise LocresError(f"{role} file is not a readable MRC/CCP4 map: {p}")
            header = mrc.header.copy()
            raw = np.asarray(mrc.data)
    except LocresError:
        raise
    except Exception as exc:  # mrcfile raises ValueError/OSError/EOFError on bad files
        raise LocresError(
            f"{role} file is not a readable MRC/CCP4 map: {p} ({type(exc).__name__}: {exc})"
        ) from None
    if raw.ndim == 2:
        raw = raw[None]
    if raw.ndim != 3 or min(raw.shape) < 1:
        raise LocresError(f"{role} file {p} is not a 3-D map (shape {raw.shape})")
    if np.iscomplexobj(raw):
        raise LocresError(f"{role} file {p} holds complex values; give a real-space map")

    axis_order = (int(header.mapc), int(header.mapr), int(header.maps))
    if sorted(axis_order) != [1, 2, 3]:
        log.warning("%s: invalid MAPC/MAPR/MAPS %s, assuming 1, 2, 3", p, axis_order)
        axis_order = (1, 2, 3)
    data = np.ascontiguousarray(np.transpose(raw, _file_to_zyx_axes(axis_order)), dtype=np.float32)

    crs_start = (int(header.nxstart), int(header.nystart), int(header.nzstart))
    nstart_xyz = [0, 0, 0]
    for file_dim, axis in enumerate(axis_order):  # column, row, section starts -> axis
        nstart_xyz[axis - 1] = crs_start[file_dim]
    cell = (float(header.cella.x), float(header.cella.y), float(header.cella.z))
    grid = (int(header.mx), int(header.my), int(header.mz))
    shape_xyz = (data.shape[2], data.shape[1], data.shape[0])
    if all(c > 0 for c in cell) and all(g > 0 for g in grid):
        vsize = tuple(c / g for c, g in zip(cell, grid))
    else:
        vsize = None
        grid = shape_xyz
    origin = (float(header.origin.x), float(header.origin.y), float(header.origin.z))
    if not all(np.isfinite(origin)):
        origin = (0.0, 0.0, 0.0)
    geometry = MapGeometry(
        shape_zyx=data.shape,
        voxel_size_xyz_a=vsize,
        origin_xyz_a=origin,
        nstart_xyz=tuple(nstart_xyz),
        cell_xyz_a=cell,
        grid_xyz=grid,
        axis_order=axis_order,
        header=header,
    )
    if voxel_size_a is not None:
        geometry = geometry.with_voxel_size(voxel_size_a)
    if check_values and not np.all(np.isfinite(data)):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise LocresError(f"{role} file {p} holds {bad} NaN or Inf values; fix or mask them first")
    return MapVolume(data=data, geometry=geometry, path=str(p))


def write_map(
    path: str | os.PathLike, data_zyx: np.ndarray, geometry: MapGeometry, label: str = "locres"
) -> None:
    """Write ``data_zyx`` with ``geometry`` so that it lands in register with the map it came from.

    The array is permuted back to the file's axis order, and the cell, sampling, nstart, origin and
    axis order are copied from ``geometry``. The file appears atomically (temporary file, then rename);
    a ``.gz`` name writes a gzipped map.
    """
    path = Path(path)
    data_zyx = np.asarray(data_zyx, dtype=np.float32)
    if tuple(data_zyx.shape) != tuple(geometry.shape_zyx):
        raise ValueError(f"array shape {data_zyx.shape} does not match the geometry {geometry.shape_zyx}")
    axes = _file_to_zyx_axes(geometry.axis_order)
    inverse = tuple(int(i) for i in np.argsort(axes))
    file_data = np.ascontiguousarray(np.transpose(data_zyx, inverse))
    with atomic_path(path) as tmp:
        compression = "gzip" if path.suffix == ".gz" else None
        with mrcfile.new(tmp, overwrite=True, compression=compression) as mrc:
            if geometry.header is not None:
                # keep every field of the source header (space group, extended fields, labels)
                src = geometry.header
                for name in ("ispg", "exttyp", "nversion", "labl", "nlabl"):
                    try:
                        mrc.header[name] = src[name]
                    except (ValueError, KeyError):
                        pass
            mrc.set_data(file_data)
            h = mrc.header
            mapc, mapr, maps = geometry.axis_order
            h.mapc, h.mapr, h.maps = mapc, mapr, maps
            grid = geometry.grid_xyz or (data_zyx.shape[2], data_zyx.shape[1], data_zyx.shape[0])
            h.mx, h.my, h.mz = grid
            if geometry.cell_xyz_a is not None:
                h.cella = geometry.cell_xyz_a
            elif geometry.voxel_size_xyz_a is not None:
                h.cella = tuple(g * v for g, v in zip(grid, geometry.voxel_size_xyz_a))
            nstart_crs = [geometry.nstart_xyz[a - 1] for a in geometry.axis_order]
            h.nxstart, h.nystart, h.nzstart = nstart_crs
            h.origin.x, h.origin.y, h.origin.z = geometry.origin_xyz_a
            mrc.update_header_stats()
            if label and int(mrc.header.nlabl) < 10:
                mrc.add_label(label[:80])


def write_volume(path: str | os.PathLike, volume: MapVolume, label: str = "locres") -> None:
    """Write a :class:`MapVolume` in its own geometry."""
    write_map(path, volume.data, volume.geometry, label=label)


