"""MonoDir: anisotropy where one axis is blurred and not for an isotropic map; refusals."""

from __future__ import annotations

import numpy as np
import pytest

from locres.core.fourier import apply_fourier_filter, lowpass_raised_cosine
from locres.errors import LocresError
from locres.methods import MethodInputs, monodir
from locres.methods.monogenic import centred_radius

N, VOXEL_A = 48, 1.5
PARAMS = dict(n_directions=15, max_resolution_a=9.0, run_monores=False)


def _maps():
    rng = np.random.default_rng(0)
    shape = (N, N, N)
    mask = centred_radius(shape) < 9  # noise shell from 9 px to N/2 - 7 = 17 px, as the reference needs
    vol = np.zeros(shape, np.float32)
    idx = np.flatnonzero((centred_radius(shape) < 8).ravel())
    np.add.at(vol.reshape(-1), idx[rng.integers(0, idx.size, idx.size // 6)], 1.0)
    iso = lowpass_raised_cosine(vol, VOXEL_A, 4.5)
    # blur along z only: nothing beyond 1/8 A^-1 in u_z
    fz = np.abs(np.fft.fftfreq(N, d=VOXEL_A))[:, None, None] * np.ones((1, N, N // 2 + 1))
    ani = apply_fourier_filter(iso, np.clip((1 / 8.0 - fz) / 0.01, 0, 1).astype(np.float32))
    out = {}
    for name, m in (("iso", iso), ("ani", ani)):
        m = m / m[mask].std()
        out[name] = m + 0.1 * rng.standard_normal(shape, dtype=np.float32)
    return out, mask


@pytest.fixture(scope="module")
def results():
    maps, mask = _maps()
    return {k: monodir.run(MethodInputs(VOXEL_A, map=v, mask=mask), **PARAMS) for k, v in maps.items()}, mask


def test_anisotropy_where_one_axis_is_blurred_and_not_otherwise(results):
    res, mask = results
    core = centred_radius(mask.shape) < 6
    a_iso = float(np.median(res["iso"].extra_maps["anisotropy"][core]))
    a_ani = float(np.median(res["ani"].extra_maps["anisotropy"][core]))
    assert a_iso < 1.0, a_iso
    assert a_ani > a_iso + 0.5, (a_iso, a_ani)
    for name, gap in (("iso", (-1.5, 1.5)), ("ani", (2.0, 20.0))):
        info = res[name].info
        med = np.array(info["direction_median_resolution_a"])
        tilt = np.array(info["directions_rot_tilt_deg"])[:, 1]
        diff = med[tilt < 35].mean() - med[tilt > 60].mean()  # along z minus in the x-y plane
        assert gap[0] < diff < gap[1], (name, diff)
    # lowest is never finer than highest; maps are 0 outside the mask
    for r in res.values():
        assert np.all(r.extra_maps["lowest"][mask] >= r.extra_maps["highest"][mask])
        for m in r.extra_maps.values():
            assert np.all(m[~mask] == 0)
    assert set(res["ani"].extra_maps) >= {"radial", "azimuthal", "anisotropy", "highest", "lowest"}
    curves = res["ani"].info["radial_averages"]
    assert len(curves["radius_px"]) == len(curves["radial_a"]) > 3


def test_hemisphere_directions_are_near_uniform():
    d = monodir.hemisphere_directions(81)
    assert np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-5) and np.all(d[:, 0] >= 0)
    ang = np.degrees(np.arccos(np.clip(np.abs(d @ d.T), 0, 1)))
    np.fill_diagonal(ang, 180)
    nearest = ang.min(axis=1)
    assert 8 < nearest.min() and nearest.max() < 22


def test_no_room_for_noise_is_refused():
    rng = np.random.default_rng(1)
    vol = lowpass_raised_cosine(rng.standard_normal((24, 24, 24)).astype(np.float32), 1.0, 4.0)
    mask = np.ones(vol.shape, bool)
    mask[:1] = False
    with pytest.raises(LocresError, match="pad the map") as err:
        monodir.run(MethodInputs(1.0, map=vol, mask=mask))
    assert "\n" not in str(err.value)


def test_resolution_range_beyond_nyquist_is_refused():
    maps, mask = _maps()
    with pytest.raises(LocresError, match="Nyquist"):
        monodir.run(MethodInputs(VOXEL_A, map=maps["iso"], mask=mask), min_resolution_a=2.0)


def test_amplitude_edge_taper_is_the_references_soft_sphere():
    from locres.methods.monogenic import edge_taper

    t = edge_taper((32, 32, 32), 7.0)
    r = centred_radius(t.shape)
    assert np.all(t[r <= 9] == 1.0) and np.all(t[r > 16] == 0.0)
    np.testing.assert_allclose(t[16, 16, 16 + 12], 0.5 * (1 + np.cos(np.pi * 3 / 7)), atol=1e-6)


def test_no_room_for_noise_runs_when_asked():
    maps, _ = _maps()
    # the particle (mask radius 9 px) in a 32^3 box: the noise shell would end at 16 - 7 = 9 px
    vol, mask = maps["iso"][8:-8, 8:-8, 8:-8], centred_radius((32,) * 3) < 10
    with pytest.raises(LocresError, match="pad the map to at least") as err:
        monodir.run(MethodInputs(VOXEL_A, map=vol, mask=mask), **PARAMS)
    assert "allow_no_noise_room" in str(err.value) and "\n" not in str(err.value)
    out = monodir.run(MethodInputs(VOXEL_A, map=vol, mask=mask), **PARAMS, allow_no_noise_room=True)
    assert out.info["allow_no_noise_room"] and out.mask.sum() > 0
