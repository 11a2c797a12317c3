"""Maps stay in register: bit-exact round trips, axis orders, gzip, resampling and bad inputs."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from locres.core.maps import MapGeometry, MapVolume, resample_onto
from locres.errors import LocresError
from locres.io import maps as maps_mod
from locres.io.maps import read_map, write_map, write_volume

HEADER_FIELDS = ("nx", "ny", "nz", "mode", "nxstart", "nystart", "nzstart", "mx", "my", "mz",
                 "mapc", "mapr", "maps", "ispg")


def _shared_maps(shared_data: Path) -> list[Path]:
    found = sorted(p for p in (shared_data / "maps").glob("*/*") if p.suffix in (".mrc", ".map"))
    assert found, "no maps in the shared data folder"
    return found


def _assert_same_geometry(a: MapGeometry, b: MapGeometry) -> None:
    assert a.shape_zyx == b.shape_zyx
    assert a.voxel_size_xyz_a == b.voxel_size_xyz_a
    assert a.origin_xyz_a == b.origin_xyz_a
    assert a.nstart_xyz == b.nstart_xyz
    assert a.cell_xyz_a == b.cell_xyz_a
    assert a.grid_xyz == b.grid_xyz
    assert a.axis_order == b.axis_order
    np.testing.assert_array_equal(a.corner_xyz_a, b.corner_xyz_a)


def _assert_same_file(src: Path, out: Path) -> None:
    """The raw headers agree on every geometry field and the file-order data are identical."""
    with mrcfile.open(src, permissive=True) as a, mrcfile.open(out) as b:
        for name in HEADER_FIELDS:
            assert a.header[name] == b.header[name], name
        for name in ("cella", "cellb", "origin"):
            assert tuple(a.header[name].item()) == tuple(b.header[name].item()), name
        np.testing.assert_array_equal(np.asarray(a.data, dtype=np.float32), b.data)


@pytest.mark.shared
@pytest.mark.parametrize("suffix", [".mrc", ".mrc.gz"])
def test_round_trip_of_every_shared_map(shared_data, tmp_path, suffix):
    maps = _shared_maps(shared_data)
    if suffix.endswith(".gz"):  # gzip is slow on the shared CPU: two awkward maps are enough
        maps = [p for p in maps if p.parent.name in ("emd_2566_crop", "emd_1461_crop")]
    for src in maps:
        vol = read_map(src)
        out = tmp_path / (src.stem + suffix)
        write_volume(out, vol)
        back = read_map(out)
        np.testing.assert_array_equal(back.data, vol.data)
        _assert_same_geometry(back.geometry, vol.geometry)
        _assert_same_file(src, out)
        if suffix.endswith(".gz"):
            with gzip.open(out) as fh:  # really gzipped
                fh.read(16)


def _write_raw(path: Path, file_data: np.ndarray, axis_order, voxel=(1.5, 1.5, 1.5), nstart_crs=(0, 0, 0),
               origin=(0.0, 0.0, 0.0), compression=None) -> None:
    with mrcfile.new(path, overwrite=True, compression=compression) as mrc:
        mrc.set_data(file_data.astype(np.float32))
        h = mrc.header
        h.mapc, h.mapr, h.maps = axis_order
        ns, nr, nc = file_data.shape
        n_axis = {axis_order[0]: nc, axis_order[1]: nr, axis_order[2]: ns}  # 1=x 2=y 3=z
        h.mx, h.my, h.mz = n_axis[1], n_axis[2], n_axis[3]
        h.cella = (n_axis[1] * voxel[0], n_axis[2] * voxel[1], n_axis[3] * voxel[2])
        h.nxstart, h.nystart, h.nzstart = nstart_crs
        h.origin.x, h.origin.y, h.origin.z = origin


@pytest.mark.parametrize("axis_order", [(1, 2, 3), (3, 1, 2), (2, 3, 1), (3, 2, 1), (1, 3, 2), (2, 1, 3)])
@pytest.mark.parametrize("compression", [None, "gzip"])
def test_non_standard_axis_order_and_odd_shapes(tmp_path, rng, axis_order, compression):
    file_data = rng.standard_normal((7, 11, 13)).astype(np.float32)  # sections, rows, columns
    file_data[2, 5, 9] = 100.0  # a marker at section 2, row 5, column 9
    src = tmp_path / ("in.mrc" + (".gz" if compression else ""))
    _write_raw(src, file_data, axis_order, voxel=(1.1, 1.2, 1.3), nstart_crs=(-3, 4, 5),
               origin=(0.0, 0.0, 0.0), compression=compression)
    vol = read_map(src)
    # where the marker must land, by axis: column index on axis mapc, row on mapr, section on maps
    pos = {axis_order[0]: 9, axis_order[1]: 5, axis_order[2]: 2}
    assert vol.data[pos[3], pos[2], pos[1]] == 100.0
    sizes = {axis_order[0]: 13, axis_order[1]: 11, axis_order[2]: 7}
    assert vol.data.shape == (sizes[3], sizes[2], sizes[1])
    starts = {axis_order[0]: -3, axis_order[1]: 4, axis_order[2]: 5}
    assert vol.geometry.nstart_xyz == (starts[1], starts[2], starts[3])
    np.testing.assert_allclose(vol.geometry.voxel_size_xyz_a, (1.1, 1.2, 1.3), rtol=1e-6)
    out = tmp_path / ("out.mrc" + (".gz" if compression else ""))
    write_volume(out, vol)
    _assert_same_file(src, out)
    _assert_same_geometry(read_map(out).geometry, vol.geometry)


def test_new_geometry_round_trip_with_origin(tmp_path, rng):
    data = rng.standard_normal((9, 14, 5)).astype(np.float32)
    vol = MapVolume.from_array(data, 0.83, origin_xyz_a=(10.5, -3.25, 7.0))
    write_volume(tmp_path / "a.map", vol)
    back = read_map(tmp_path / "a.map")
    np.testing.assert_array_equal(back.data, data)
    assert back.geometry.origin_xyz_a == (10.5, -3.25, 7.0)
    assert back.voxel_size_a == pytest.approx(0.83, rel=1e-6)
    assert back.geometry.same_grid(vol.geometry)


@pytest.mark.shared
def test_emd3488_mask_lands_on_the_map(shared_data):
    folder = shared_data / "maps" / "emd_3488"
    vol = read_map(folder / "emd_3488.mrc")
    mask = read_map(folder / "emd_3488_contour_mask.mrc")
    assert mask.data.shape == (100, 91, 91) and vol.data.shape == (100, 100, 100)
    for order in (0, 1):
        on_map = resample_onto(mask, vol.geometry, order=order)
        assert on_map.shape == vol.data.shape
        # same corner and voxel size: the mask's voxels are the map's first 91 x 91 columns/rows
        np.testing.assert_allclose(on_map[:, :91, :91], mask.data, atol=1e-4)
        assert np.all(on_map[:, 91:, :] == 0) and np.all(on_map[:, :, 91:] == 0)
    inside = on_map > 0.5
    assert inside.sum() == int(mask.data.sum())
    # and it covers the molecule: the map is much denser inside it
    assert vol.data[inside].mean() > vol.data[~inside].mean() + 3 * vol.data[~inside].std()


def test_resample_shifted_grid_and_no_overlap(rng):
    target = MapGeometry.new((20, 20, 20), 1.0)
    data = rng.standard_normal((10, 10, 10)).astype(np.float32)
    moving = MapVolume.from_array(data, 1.0, origin_xyz_a=(5.0, 6.0, 7.0))  # x, y, z corner
    out = resample_onto(moving, target, order=1)
    np.testing.assert_allclose(out[7:17, 6:16, 5:15], data, atol=1e-5)
    assert out[:7].sum() == 0 and out[17:].sum() == 0
    far = MapVolume.from_array(data, 1.0, origin_xyz_a=(500.0, 0.0, 0.0))
    with pytest.raises(LocresError, match="does not overlap"):
        resample_onto(far, target)


def test_resample_other_voxel_size(rng):
    """A coarser map of a linear ramp resamples to the ramp at the finer voxel centres."""
    z, y, x = np.indices((10, 10, 10)).astype(np.float32)
    coarse = MapVolume.from_array(2.0 * x + 0.5 * z, 2.0)  # voxel centres at 0, 2, 4 ... A
    fine = MapGeometry.new((15, 15, 15), 1.0)
    out = resample_onto(coarse, fine, order=1)
    zf, _, xf = np.indices((15, 15, 15)).astype(np.float32)
    np.testing.assert_allclose(out, 2.0 * (xf / 2) + 0.5 * (zf / 2), atol=1e-4)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(LocresError, match="not found"):
        read_map(tmp_path / "nope.mrc")
    junk = tmp_path / "junk.mrc"
    junk.write_text("this is not a map\n" * 20)
    with pytest.raises(LocresError, match="not a readable MRC"):
        read_map(junk)
    with pytest.raises(LocresError, match="folder"):
        read_map(tmp_path)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_and_inf_are_refused(tmp_path, rng):
    data = rng.standard_normal((8, 8, 8)).astype(np.float32)
    for bad in (np.nan, np.inf):
        data[1, 2, 3] = bad
        path = tmp_path / "bad.mrc"
        write_map(path, data, MapGeometry.new(data.shape, 1.0))
        with pytest.raises(LocresError, match="NaN or Inf"):
            read_map(path)


def test_zero_or_missing_voxel_size(tmp_path, rng):
    path = tmp_path / "novox.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(rng.standard_normal((6, 7, 8)).astype(np.float32))
        mrc.header.cella = (0.0, 0.0, 0.0)
    vol = read_map(path)
    with pytest.raises(LocresError, match="voxel size"):
        _ = vol.voxel_size_a
    assert read_map(path, voxel_size_a=1.7).voxel_size_a == pytest.approx(1.7)
    with pytest.raises(LocresError, match="voxel size"):
        read_map(path, voxel_size_a=0.0)


def test_failed_write_leaves_nothing_behind(tmp_path, rng, monkeypatch):
    data = rng.standard_normal((8, 8, 8)).astype(np.float32)
    target = tmp_path / "out.mrc"
    write_map(target, data, MapGeometry.new(data.shape, 1.0))
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(maps_mod.os, "replace", boom)
    with pytest.raises(OSError):
        write_map(target, data * 2, MapGeometry.new(data.shape, 1.0))
    with pytest.raises(OSError):
        write_map(tmp_path / "new.mrc", data, MapGeometry.new(data.shape, 1.0))
    monkeypatch.undo()
    assert target.read_bytes() == before  # the old file is untouched
    assert sorted(os.listdir(tmp_path)) == ["out.mrc"]  # no partial or temporary file
