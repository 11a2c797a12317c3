"""Fourier filters: cut-offs where they are promised, B-factor round trip."""

from __future__ import annotations

import numpy as np
import pytest

from locres.core.fourier import (
    apply_bfactor,
    frequency_grid_per_a,
    lowpass_butterworth,
    lowpass_gaussian,
    lowpass_raised_cosine,
    raised_cosine_lowpass_transfer,
    sharpen,
)
from locres.errors import LocresError


def _power_beyond(vol: np.ndarray, voxel_size_a: float, freq_per_a: float) -> float:
    power = np.abs(np.fft.rfftn(vol.astype(np.float64))) ** 2
    return float(power[frequency_grid_per_a(vol.shape, voxel_size_a) >= freq_per_a].sum() / power.sum())


@pytest.mark.parametrize("shape,voxel,res", [((40, 40, 40), 1.0, 4.0), ((33, 41, 28), 1.3, 6.5),
                                             ((36, 36, 36), 0.8, 2.0)])
def test_lowpass_leaves_no_power_beyond_1_over_r(rng, shape, voxel, res):
    vol = rng.standard_normal(shape).astype(np.float32)
    out = lowpass_raised_cosine(vol, voxel, res)
    assert out.shape == shape and out.dtype == np.float32
    assert _power_beyond(out, voxel, 1.0 / res) < 1e-12
    # and below the fall-off (width 0.02 cycles/voxel) the content is untouched
    freq = frequency_grid_per_a(shape, voxel)
    keep = freq < (voxel / res - 0.02) / voxel
    np.testing.assert_allclose(np.fft.rfftn(out)[keep], np.fft.rfftn(vol)[keep], rtol=1e-3, atol=1e-2)


def test_raised_cosine_transfer_values():
    freq = np.array([0.0, 0.2, 0.24, 0.245, 0.25, 0.3])
    h = raised_cosine_lowpass_transfer(freq, 4.0, 1.0, width_digital=0.02)
    np.testing.assert_allclose(h, [1.0, 1.0, 0.5, 0.1464466, 0.0, 0.0], atol=1e-6)
    with pytest.raises(LocresError):
        raised_cosine_lowpass_transfer(freq, 0.0, 1.0)


def test_butterworth_half_power_and_gaussian_at_r(rng):
    vol = np.zeros((64, 64, 64), np.float32)
    vol[0, 0, 0] = 1.0  # delta: the output spectrum is the transfer itself
    freq = frequency_grid_per_a(vol.shape, 1.0)
    on_r = np.isclose(freq, 0.125)  # 8 A
    h_b = np.fft.rfftn(lowpass_butterworth(vol, 1.0, 8.0)).real
    np.testing.assert_allclose(h_b[on_r], 1 / np.sqrt(2), rtol=1e-4)
    h_g = np.fft.rfftn(lowpass_gaussian(vol, 1.0, 8.0)).real
    np.testing.assert_allclose(h_g[on_r], np.exp(-1.0), rtol=1e-4)


def test_bfactor_round_trip(rng):
    vol = lowpass_raised_cosine(rng.standard_normal((32, 30, 34)).astype(np.float32), 1.2, 4.0)
    there_and_back = apply_bfactor(apply_bfactor(vol, 1.2, 80.0), 1.2, -80.0)
    np.testing.assert_allclose(there_and_back, vol, atol=1e-4 * np.abs(vol).max())
    blurred = apply_bfactor(vol, 1.2, 80.0)
    assert blurred.std() < vol.std()


def test_sharpen_undoes_blur_and_respects_cutoff(rng):
    vol = lowpass_raised_cosine(rng.standard_normal((32, 32, 32)).astype(np.float32), 1.0, 4.0)
    restored = sharpen(apply_bfactor(vol, 1.0, 50.0), 1.0, 50.0, resolution_a=4.0)
    np.testing.assert_allclose(restored, lowpass_raised_cosine(vol, 1.0, 4.0), atol=1e-4 * np.abs(vol).max())
    assert _power_beyond(sharpen(vol, 1.0, 50.0, resolution_a=5.0), 1.0, 0.2) < 1e-12
