"""Half-tomogram simulator: particles in place, band-limited to their resolution, noise varying in X-Y."""

from __future__ import annotations

import numpy as np
import pytest

from locres.core.fourier import frequency_grid_per_a
from locres.errors import LocresError
from locres.simulate.tomogram import _particle, simulate_half_tomograms


def test_particles_truth_and_shapes_on_a_slab():
    ph = simulate_half_tomograms((32, 128, 96), 10.0, (25.0, 40.0), 8, seed=4)
    assert ph.half1.shape == ph.half2.shape == ph.truth_a.shape == (32, 128, 96)
    assert ph.half1.dtype == np.float32
    for p in ph.particles:
        assert ph.truth_a[tuple(p["centre_zyx"])] == p["resolution_a"]
    assert set(np.unique(ph.truth_a)) == {0.0, 25.0, 40.0}
    # truth marks spheres of the stated radius
    assert (ph.truth_a == 25.0).sum() == pytest.approx(4 / 3 * np.pi * 8**3, rel=0.1)


def test_particle_has_no_power_beyond_its_resolution():
    rng = np.random.default_rng(0)
    box = _particle(8, 30.0, 10.0, rng)
    power = np.abs(np.fft.rfftn(box)) ** 2
    freq = frequency_grid_per_a(box.shape, 10.0)
    assert power[freq >= 1 / 30.0].sum() < 1e-8 * power.sum()
    assert power[(freq > 1 / 60.0) & (freq < 1 / 35.0)].sum() > 0.01 * power.sum()


def test_noise_grows_along_x_as_stated():
    ph = simulate_half_tomograms((32, 128, 128), 10.0, (30.0,), 6, noise_sigma_range=(0.2, 1.0), seed=1)
    diff = (ph.half1 - ph.half2) / np.sqrt(2.0)
    left, right = diff[:, :, :8].std(), diff[:, :, -8:].std()
    assert left == pytest.approx(ph.noise_sigma_yx[:, :8].mean(), rel=0.1)
    assert right == pytest.approx(ph.noise_sigma_yx[:, -8:].mean(), rel=0.1)
    assert right > 3 * left


def test_resolution_beyond_nyquist_is_refused():
    with pytest.raises(LocresError, match="Nyquist"):
        simulate_half_tomograms((32, 64, 64), 10.0, (15.0,), 6)
