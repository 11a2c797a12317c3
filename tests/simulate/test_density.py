"""Density from atomic models: placement in a map's frame, centring, voxel-size consistency."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from locres.bench.model_map_correlation import measure_pair
from locres.core.maps import MapGeometry
from locres.errors import LocresError
from locres.io.models import read_structure
from locres.simulate.density import (
    atom_positions_a,
    model_footprint,
    model_map_in_frame,
    simulate_map_centered,
    simulate_map_in_frame,
)

EXAMPLE = "locres/examples/emd_3488/5me2.pdb"


@pytest.fixture(scope="module")
def structure():
    from pathlib import Path

    return read_structure(Path(__file__).resolve().parents[2] / EXAMPLE)


@pytest.mark.shared
def test_emd3488_model_correlates_with_its_map(shared_data):
    maps = shared_data / "maps"
    res = measure_pair(maps / "emd_3488/emd_3488.mrc", maps / "emd_3488/5me2.pdb", (None, 3.5))
    unfiltered, at_35 = res["correlations"]
    assert at_35["footprint"] > 0.6 and at_35["whole_map"] > 0.5  # measured 0.77 and 0.66
    assert unfiltered["footprint"] > 0.5
    assert at_35["baseline_shifted_footprint"] < at_35["footprint"] - 0.4  # placement matters


@pytest.mark.shared
def test_emd5168_model_lands_on_its_map_with_nstart(shared_data):
    maps = shared_data / "maps"
    res = measure_pair(maps / "emd_5168/emd_5168.map", maps / "emd_5168/3MFP.pdb", (8.0,))
    (row,) = res["correlations"]
    assert row["footprint"] > 0.5  # measured 0.69; nstart -50 ignored would put it 87 A away
    assert row["baseline_shifted_footprint"] < row["footprint"] - 0.4


def test_centered_box_is_centred_and_integral_is_voxel_size_independent(structure):
    totals = []
    for v in (1.0, 1.5):
        vol = simulate_map_centered(structure, v)
        d = vol.data
        assert d.dtype == np.float32 and all(n % 2 == 0 for n in d.shape)
        com = np.array([(d.sum(axis=tuple(j for j in range(3) if j != i)) * np.arange(d.shape[i])).sum()
                        for i in range(3)]) / d.sum()
        lo, hi = atom_positions_a(structure).min(0), atom_positions_a(structure).max(0)
        centre_vox = np.array(d.shape) // 2
        # the box centre is the model's bounding-box centre; mass centre within a few A of it
        mass_centre_a = (atom_positions_a(structure).mean(0) - (lo + hi) / 2)[::-1]
        np.testing.assert_allclose((com - centre_vox) * v, mass_centre_a, atol=1.0)
        totals.append(d.sum() * v**3)
    assert totals[0] == pytest.approx(totals[1], rel=0.02)


def test_rotation_keeps_the_integral(structure):
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    a = simulate_map_centered(structure, 1.5, shape_zyx=(64, 64, 64))
    b = simulate_map_centered(structure, 1.5, shape_zyx=(64, 64, 64), rotation=rot)
    assert b.data.sum() == pytest.approx(a.data.sum(), rel=1e-3)
    assert np.corrcoef(a.data.ravel(), b.data.ravel())[0, 1] < 0.9


def test_in_frame_matches_centered_box_shifted(structure):
    """A frame whose corner is the centred box's corner reproduces the centred simulation."""
    v = 1.5
    box = simulate_map_centered(structure, v, shape_zyx=(60, 60, 60))
    lo, hi = atom_positions_a(structure).min(0), atom_positions_a(structure).max(0)
    corner = (lo + hi) / 2 - 30 * v
    geom = MapGeometry.new((60, 60, 60), v, origin_xyz_a=tuple(corner))
    framed = simulate_map_in_frame(structure, geom)
    assert np.corrcoef(box.data.ravel(), framed.ravel())[0, 1] > 0.999


def test_bad_voxel_size(structure):
    with pytest.raises(LocresError):
        simulate_map_centered(structure, 0.0)


def _one_atom(xyz_a):
    st = gemmi.Structure()
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    res = gemmi.Residue()
    res.name, res.seqid = "GLY", gemmi.SeqId(1, " ")
    atom = gemmi.Atom()
    atom.name, atom.element, atom.b_iso, atom.occ = "CA", gemmi.Element("C"), 20.0, 1.0
    atom.pos = gemmi.Position(*xyz_a)
    res.add_atom(atom)
    chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    return st


def test_footprint_is_the_voxels_within_the_radius_of_an_atom():
    geom = MapGeometry.new((20, 24, 28), 1.3, origin_xyz_a=(-7.0, 3.0, 11.0))
    atom = np.array([5.1, 17.4, 22.9])
    fp = model_footprint(_one_atom(atom), geom, radius_a=2.5)
    iz, iy, ix = np.indices(geom.shape_zyx)
    centres = geom.corner_xyz_a + np.stack([ix, iy, iz], -1) * 1.3  # x, y, z of each voxel centre
    expected = np.linalg.norm(centres - atom, axis=-1) <= 2.5
    assert expected.sum() > 20 and np.array_equal(fp, expected)


def test_model_map_in_frame_refuses_a_model_off_the_map(structure):
    geom = MapGeometry.new((40, 40, 40), 1.0, origin_xyz_a=(500.0, 500.0, 500.0))
    with pytest.raises(LocresError, match="does not overlap the map"):
        model_map_in_frame(structure, geom)
    lo = atom_positions_a(structure).min(0)
    mm, fp = model_map_in_frame(structure, MapGeometry.new((40, 40, 40), 1.0, origin_xyz_a=tuple(lo)))
    assert fp.any() and mm.shape == fp.shape and mm[fp].mean() > 3 * mm[~fp].mean()
