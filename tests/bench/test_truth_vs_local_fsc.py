"""The target study's building blocks: fresh noise with a given spectrum, and the ideal local FSC."""

from __future__ import annotations

import numpy as np

from locres.bench.truth_vs_local_fsc import expected_band_correlation, noise_like
from locres.core.fourier import apply_bfactor
from locres.models.features import BAND_RESOLUTIONS_A


def test_noise_like_keeps_the_power_spectrum_and_draws_anew():
    rng = np.random.default_rng(0)
    coloured = apply_bfactor(rng.standard_normal((32, 30, 28)).astype(np.float32), 1.0, 200.0)
    new = noise_like(coloured, rng)
    a, b = (np.abs(np.fft.rfftn(x)) for x in (coloured, new))
    np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-3 * float(a.max()))
    assert abs(np.corrcoef(coloured.ravel(), new.ravel())[0, 1]) < 0.1


def test_expected_band_correlation_of_pure_noise_is_zero_and_of_strong_signal_one():
    rng = np.random.default_rng(1)
    shape = (32, 32, 32)
    noise = rng.standard_normal(shape).astype(np.float32)
    k = len(BAND_RESOLUTIONS_A)
    mean, one = expected_band_correlation(np.zeros(shape, np.float32), noise, 6, rng)
    assert mean.shape == (k, 16, 16, 16) and one.shape == mean.shape
    assert abs(float(np.median(mean[-4:]))) < 0.03 < float(np.std(one[-4:]))
    strong, _ = expected_band_correlation(30.0 * rng.standard_normal(shape).astype(np.float32), noise, 2, rng)
    assert float(np.median(strong[-4:])) > 0.99
