"""Packed complex transforms give the same monogenic amplitudes as the real ones, Nyquist bins included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from locres.methods.monogenic import Band, FourierGrid, PackedMonogenic, monogenic_amplitude, to_spectrum


@pytest.mark.parametrize("shape", [(16, 20, 24), (15, 21, 17), (12, 18, 9)])
def test_packed_amplitudes_equal_the_real_transform_path(shape):
    rng = np.random.default_rng(3)
    a = rng.standard_normal(shape).astype(np.float32)
    b = (2.0 * rng.standard_normal(shape) + 1.0).astype(np.float32)
    grid = FourierGrid(shape)
    spectra = to_spectrum(np.stack([a, b]), "cpu")
    packed = PackedMonogenic(a, b)
    taper = np.linspace(0.5, 1.0, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    for f in (0.1, 0.3, 0.49):
        band = Band(f, f - 0.01, min(f + 0.01, 0.5), 10.0 / f)
        for t in (None, taper):
            tt = None if t is None else torch.from_numpy(t)
            ref = monogenic_amplitude(spectra, grid, [band], amplitude_taper=tt).numpy()
            got_a, got_b = (x.numpy() for x in packed.amplitudes(band, amplitude_taper=tt))
            for got, want in ((got_a, ref[0, 0]), (got_b, ref[1, 0])):
                assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max(), (shape, f)


@pytest.mark.parametrize("shape", [(16, 20, 24), (15, 21, 17), (12, 18, 9)])
def test_single_volume_packed_amplitude_equals_the_real_transform_path(shape):
    rng = np.random.default_rng(4)
    a = (rng.standard_normal(shape) + 0.5).astype(np.float32)
    grid = FourierGrid(shape)
    spectra = to_spectrum(a[None], "cpu")
    packed = PackedMonogenic(a)
    for f in (0.1, 0.3, 0.49):
        band = Band(f, f - 0.02, min(f + 0.02, 0.5), 10.0 / f)
        want = monogenic_amplitude(spectra, grid, [band]).numpy()[0, 0]
        got, none = packed.amplitudes(band)
        assert none is None
        assert np.abs(got.numpy() - want).max() <= 1e-5 * np.abs(want).max(), (shape, f)
