"""load_inputs / load_mask: every refusal is one LocresError line; masks land on the map's grid."""

from __future__ import annotations

import numpy as np
import pytest

from locres.core.maps import MapGeometry
from locres.errors import LocresError
from locres.io.maps import write_map
from locres.pipeline.inputs import load_inputs, load_mask

SHAPE = (12, 14, 16)


def _map(path, shape=SHAPE, voxel_size_a=1.5, seed=0, data=None):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal(shape).astype(np.float32) if data is None else data
    write_map(path, data, MapGeometry.new(shape, voxel_size_a))
    return data


def test_map_and_halves_load_on_one_grid(tmp_path):
    h1, h2 = _map(tmp_path / "h1.mrc", seed=1), _map(tmp_path / "h2.mrc", seed=2)
    loaded = load_inputs(half1_path=tmp_path / "h1.mrc", half2_path=tmp_path / "h2.mrc", device="cpu")
    assert loaded.inputs.has_halves and loaded.inputs.voxel_size_a == pytest.approx(1.5)
    np.testing.assert_allclose(loaded.inputs.map, 0.5 * (h1 + h2), atol=1e-6)  # no map: the average
    assert loaded.reference.data.shape == SHAPE and not loaded.mask_given
    assert loaded.paths == {"map": None, "half1": str(tmp_path / "h1.mrc"),
                            "half2": str(tmp_path / "h2.mrc"), "mask": None, "model": None}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"half1_path": "h1.mrc"}, "give both half maps"),
        ({}, "no input map given"),
        ({"map_path": "m.mrc", "voxel_size_a": "abc"}, "must be a number"),
        ({"map_path": "m.mrc", "voxel_size_a": -1.0}, "positive number"),
        ({"map_path": "flat.mrc"}, "is constant"),
        ({"half1_path": "h1.mrc", "half2_path": "small.mrc"}, "different shapes"),
        ({"map_path": "m.mrc", "half1_path": "h1.mrc", "half2_path": "coarse.mrc"}, "different voxel sizes"),
        ({"map_path": "m.mrc", "mask_path": "empty.mrc"}, "mask .* is empty"),
        ({"map_path": "nothere.mrc"}, "nothere.mrc"),
    ],
)
def test_refusals_are_one_line(tmp_path, monkeypatch, kwargs, match):
    monkeypatch.chdir(tmp_path)
    _map(tmp_path / "m.mrc")
    _map(tmp_path / "h1.mrc", seed=1)
    _map(tmp_path / "small.mrc", shape=(12, 14, 15))
    _map(tmp_path / "coarse.mrc", voxel_size_a=2.0)
    _map(tmp_path / "flat.mrc", data=np.full(SHAPE, 3.0, np.float32))
    _map(tmp_path / "empty.mrc", data=np.zeros(SHAPE, np.float32))
    with pytest.raises((LocresError, FileNotFoundError)) as err:
        load_inputs(**kwargs)
    assert len(str(err.value).splitlines()) == 1
    assert err.match(match)


def test_mask_on_a_coarser_grid_is_resampled_onto_the_map(tmp_path):
    """Known answer: a box mask on a 2x coarser grid covering the same physical region."""
    _map(tmp_path / "m.mrc", shape=(20, 20, 20), voxel_size_a=1.0)
    coarse = np.zeros((10, 10, 10), np.float32)
    coarse[3:7, 3:7, 3:7] = 1.0  # physical 6-14 A (voxel centres 6, 8, 10, 12 A) on each axis
    write_map(tmp_path / "k.mrc", coarse, MapGeometry.new((10, 10, 10), 2.0))
    loaded = load_inputs(map_path=tmp_path / "m.mrc", mask_path=tmp_path / "k.mrc")
    mask = loaded.inputs.mask
    assert mask.shape == (20, 20, 20) and mask.dtype == bool and loaded.mask_given
    idx = np.flatnonzero(mask.any(axis=(1, 2)))
    assert 5 <= idx.min() <= 6 and 12 <= idx.max() <= 13  # the same physical slab, to a voxel


def test_label_mask_is_normalised_and_same_shape_mask_taken_as_is(tmp_path):
    ref = _map(tmp_path / "m.mrc")
    labels = np.zeros(SHAPE, np.float32)
    labels[2:6] = 4.0  # a label map (values > 1.5): 0.5 means half way to its maximum
    labels[6:8] = 1.0  # a quarter of the maximum: outside
    write_map(tmp_path / "lab.mrc", labels, MapGeometry.new(SHAPE, 1.5))
    loaded = load_inputs(map_path=tmp_path / "m.mrc")
    mask = load_mask(tmp_path / "lab.mrc", loaded.reference)
    np.testing.assert_array_equal(mask, labels >= 2.0)
    assert ref.shape == mask.shape
