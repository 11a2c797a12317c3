"""standardise_map: invariant to scale, offset and contrast sign; background near 0."""

from __future__ import annotations

import numpy as np
import pytest

from locres.core.fourier import lowpass_raised_cosine
from locres.errors import LocresError
from locres.models.normalise import standardise_map


def _blob_map(rng, shape=(31, 36, 40)):
    z, y, x = np.indices(shape)
    c = np.array(shape)[:, None, None, None] / 2
    r = np.sqrt(((np.stack([z, y, x]) - c) ** 2).sum(0))
    density = (r < 9).astype(np.float32) * rng.random(shape).astype(np.float32)
    density = lowpass_raised_cosine(density, 1.0, 4.0)
    return density + 0.02 * rng.standard_normal(shape).astype(np.float32), r < 9


@pytest.mark.parametrize("use_mask", [False, True])
def test_scale_shift_and_sign_invariance(rng, use_mask):
    v, mask = _blob_map(rng)
    m = mask if use_mask else None
    ref = standardise_map(v, m)
    # shifts of a few density scales: float32 inputs cannot hold a tiny signal on a huge offset
    for other in (1000.0 * v, v + 3.75, 0.001 * v - 0.004, -v, -250.0 * v + 300.0):
        np.testing.assert_allclose(standardise_map(other, m), ref, atol=2e-4)


def test_background_near_zero_and_density_positive(rng):
    v, mask = _blob_map(rng)
    s = standardise_map(v)
    assert s.dtype == np.float32 and s.shape == v.shape
    assert abs(np.median(s[~mask])) < 0.05
    assert s[mask].mean() > 0.1
    assert np.percentile(np.abs(s), 99) == pytest.approx(1.0, rel=1e-3)


def test_bad_maps_raise():
    with pytest.raises(LocresError):
        standardise_map(np.ones((8, 8, 8), np.float32))
    bad = np.zeros((8, 8, 8), np.float32)
    bad[0, 0, 0] = np.nan
    with pytest.raises(LocresError):
        standardise_map(bad)
    with pytest.raises(LocresError):
        standardise_map(np.zeros((8, 8, 8), np.float32), mask=np.ones((8, 8, 7), bool))
