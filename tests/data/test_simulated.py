"""Training-map pipeline: known-answer properties of filtering, masks, boxes and normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from locres.core.fourier import frequency_grid_per_a
from locres.core.maps import model_grid_shape, to_model_grid
from locres.data.simulated import (
    Recipe,
    View,
    cut_boxes,
    l2_normalise_boxes,
    molecular_mask,
    render_map,
    sample_centres,
)
from locres.errors import LocresError
from locres.models.normalise import standardise_map


def _blobs(rng, shape=(40, 44, 36), n=60) -> np.ndarray:
    """Gaussian 'atoms' (sigma 0.8 voxel) in the central part of a box: a stand-in density."""
    vol = np.zeros(shape, np.float32)
    zz, yy, xx = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    for c in rng.uniform(12, np.array(shape) - 12, size=(n, 3)):
        vol += np.exp(-((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) / (2 * 0.8**2))
    return vol


def _view(rng, v=1.0) -> View:
    d = _blobs(rng)
    return View(density=d, mask=molecular_mask(d, v), voxel_size_sim_a=v, rotation=np.eye(3))


def test_rendered_map_has_no_power_beyond_its_label(rng):
    recipe = Recipe(resolution_range_a=(2.0, 15.0))
    view = _view(rng)
    for res in (3.0, 7.5):
        m, mask = render_map(view, res, recipe, rng, augment=False)
        power = np.abs(np.fft.rfftn(m)) ** 2
        f = frequency_grid_per_a(m.shape, 1.0)
        assert power[f > 1.0 / res + 1e-6].sum() < 1e-8 * power.sum()
        assert power[(f > 0) & (f < 0.5 / res)].sum() > 0.1 * power.sum()
        assert mask.shape == m.shape and mask.any() and not mask.all()


def test_standardise_undoes_scale_and_offset_augmentation(rng):
    recipe = Recipe(scale_range=(0.3, 3.0))
    view = _view(rng)
    a, _ = render_map(view, 5.0, recipe, np.random.default_rng(1), augment=False)
    b, _ = render_map(view, 5.0, recipe, np.random.default_rng(2), augment=True)
    assert not np.allclose(a, b)
    np.testing.assert_allclose(standardise_map(a), standardise_map(b), atol=2e-4)


def test_voxel_jitter_resamples_onto_model_grid(rng):
    d = _blobs(rng)
    out = to_model_grid(d, 1.05, 1.0)
    assert out.shape == model_grid_shape(d.shape, 1.05, 1.0)
    # same physical extent: the mass (sum * voxel volume) is kept within a few percent
    assert abs(out.sum() * 1.0 - d.sum() * 1.05**3) < 0.05 * d.sum() * 1.05**3
    assert to_model_grid(d, 1.0, 1.0) is d or np.array_equal(to_model_grid(d, 1.0, 1.0), d)


def test_centres_lie_in_mask_on_stride_grid_and_boxes_fit(rng):
    mask = np.zeros((30, 31, 32), bool)
    mask[3:27, 5:20, 10:30] = True
    c = sample_centres(mask, 500, 9, rng, stride=2)
    assert len(c) > 0
    assert mask[tuple(c.T)].all()
    assert (c % 2 == 0).all()
    assert (c >= 4).all() and (c < np.array(mask.shape) - 4).all()
    assert len({tuple(x) for x in c}) == len(c)
    assert len(sample_centres(mask, 5, 33, rng)) == 0  # box larger than the map


def test_cut_boxes_matches_slicing_and_l2_norm(rng):
    vol = rng.normal(size=(20, 21, 22)).astype(np.float32)
    centres = np.array([[5, 6, 7], [10, 10, 10], [14, 15, 17]])
    boxes = cut_boxes(vol, centres, 9)
    for b, (z, y, x) in zip(boxes, centres):
        np.testing.assert_array_equal(b, vol[z - 4 : z + 5, y - 4 : y + 5, x - 4 : x + 5])
    n = l2_normalise_boxes(boxes)
    np.testing.assert_allclose(np.sqrt((n.reshape(3, -1) ** 2).sum(1)), 1.0, rtol=1e-5)
    with pytest.raises(LocresError, match="odd"):
        cut_boxes(vol, centres, 8)
    with pytest.raises(LocresError, match="larger than the map"):
        cut_boxes(vol, centres, 25)


def test_recipe_draws_in_range_and_rejects_bad_values(rng):
    r = Recipe(resolution_range_a=(1.9, 13.0), resolution_step_a=0.1)
    draws = np.array([r.draw_resolution(rng) for _ in range(500)])
    assert draws.min() >= 1.9 and draws.max() <= 13.0
    np.testing.assert_allclose(np.round(draws * 10), draws * 10, atol=1e-6)  # 0.1 A steps
    with pytest.raises(LocresError, match="voxel size"):
        Recipe(voxel_size_a=50.0, resolution_range_a=(120.0, 200.0))
    with pytest.raises(LocresError, match="Nyquist"):
        Recipe(voxel_size_a=1.0, resolution_range_a=(1.0, 5.0))
