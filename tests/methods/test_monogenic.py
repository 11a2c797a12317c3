"""Packed complex transforms give the same monogenic amplitudes as the real ones, Nyquist bins included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from locres.errors import LocresError
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


def test_stale_ux_riesz_y_is_the_originals_component_by_real_transforms():
    """MonoTomo's original weights its y component by the last x frequency over |u|: the packed
    transforms with riesz_y="stale_ux" give sqrt(s^2 + r_x^2 + r_z^2 + (irfft(-i 0.5 V h / |u|))^2)."""
    from locres.methods.monogenic import highpass_transfer, lowpass_transfer

    shape = (12, 16, 20)
    rng = np.random.default_rng(8)
    a = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape).astype(np.float32)
    grid = FourierGrid(shape)
    band = Band(0.2, 0.19, 0.21, 50.0)
    inv = torch.where(grid.norm > 0, 1.0 / grid.norm.clamp_min(1e-12), 0.0)
    stale = (shape[2] // 2) / shape[2] * inv
    lp = lowpass_transfer(grid.norm.clone(), band.f, band.f_low_pass)
    wants = []
    for vol, got in zip((a, b), PackedMonogenic(a, b, riesz_y="stale_ux").amplitudes(band)):
        hp = highpass_transfer(grid.norm.clone(), band.f, band.f_high_pass)
        filt = torch.fft.rfftn(torch.from_numpy(vol)) * hp
        parts = [filt, filt * (-1j * grid.riesz[2]), filt * (-1j * stale), filt * (-1j * grid.riesz[0])]
        amp = torch.sqrt(sum(torch.fft.irfftn(p, s=shape) ** 2 for p in parts))
        want = torch.fft.irfftn(torch.fft.rfftn(amp) * lp, s=shape).numpy()
        assert np.abs(got.numpy() - want).max() <= 1e-5 * np.abs(want).max()
        wants.append(want)
    plain = PackedMonogenic(a, b).amplitudes(band)[0].numpy()
    assert np.median(wants[0]) > 1.1 * np.median(plain)  # 0.5 / |u| >= |u_y| / |u| everywhere
    with pytest.raises(LocresError, match="riesz_y"):
        PackedMonogenic(a, riesz_y="uy")


def test_reference_normal_quantile_is_the_rational_approximation_within_its_error_bound():
    """The reference's icdf_gauss (Abramowitz & Stegun 26.2.23): 1.64521 at 0.95, not the exact 1.64485;
    within 4.5e-4 of the exact quantile everywhere, odd about 0.5."""
    from scipy.stats import norm

    from locres.methods.monogenic import reference_normal_quantile

    assert reference_normal_quantile(0.95) == pytest.approx(1.6452114, abs=1e-6)
    assert abs(reference_normal_quantile(0.95) - norm.ppf(0.95)) > 3e-4  # not the exact value
    for p in (0.001, 0.05, 0.3, 0.5, 0.8, 0.99, 0.9999):
        assert abs(reference_normal_quantile(p) - norm.ppf(p)) < 4.5e-4
        assert reference_normal_quantile(1 - p) == pytest.approx(-reference_normal_quantile(p), abs=1e-6)
    with pytest.raises(LocresError):
        reference_normal_quantile(1.0)


def test_nyquist_index_is_positive_as_in_the_reference():
    """Xmipp numbers index n/2 of an even axis +0.5 (numpy: -0.5); odd axes have no Nyquist bin."""
    from locres.methods.monogenic import reference_fftfreq

    f = reference_fftfreq(8)
    assert f[4] == 0.5 and np.array_equal(np.delete(f, 4), np.delete(np.fft.fftfreq(8), 4))
    assert np.array_equal(reference_fftfreq(7), np.fft.fftfreq(7))
    grid = FourierGrid((8, 6, 10))
    assert float(grid.component(0)[4, 0, 0]) == pytest.approx(0.5)
    assert float(grid.component(1)[0, 3, 0]) == pytest.approx(0.5)
    assert float(grid.component(2)[0, 0, 5]) == pytest.approx(0.5)
    assert float(grid.component(1)[0, 4, 0]) == pytest.approx(-2 / 6)
