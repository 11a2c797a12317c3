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


# --- behaviours mended to the reference (Xmipp's resolution_directional); known answers, no Xmipp needed


def test_reference_direction_tables():
    d, rt = monodir.reference_directions()
    assert d.shape == (81, 3) and rt.shape == (81, 2)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-12)
    assert np.all(d[:, 0] >= -1e-12)  # every direction in the upper hemisphere (z = cos tilt)
    np.testing.assert_allclose(d[0], [1, 0, 0], atol=1e-12)  # (rot, tilt) = (0, 0) is the z axis
    # (rot 36, tilt 15.858741): x = sin t cos r, y = sin t sin r, z = cos t, stored (z, y, x)
    t, r = np.deg2rad(15.858741), np.deg2rad(36.0)
    np.testing.assert_allclose(d[1], [np.cos(t), np.sin(t) * np.sin(r), np.sin(t) * np.cos(r)], atol=1e-12)
    ang = np.degrees(np.arccos(np.clip(d @ d.T, -1, 1)))
    np.fill_diagonal(ang, 180)
    assert 15.0 < ang.min() < 16.5  # the table's spacing
    f, _ = monodir.reference_directions(fast=True)
    assert f.shape == (47, 3) and np.allclose(f[0], f[1]) and np.allclose(f[0], [1, 0, 0])


def test_sweep_steps_to_the_nearest_index_and_snaps_band_edges():
    n = 112
    bands = monodir.directional_bands(1.0, n, 18.0, 2.0, 0.5)
    idx = [round(b.f * n) for b in bands]
    # start at the index nearest 18 A; one index per step while steps are >= 1 A (above 8 A) or >= 0.5 A
    assert idx[:13] == list(range(6, 19))
    # from 6.22 A (index 18) the next step must be >= 0.5 A: index 19 (5.89 A) is too close, and the
    # reference takes the index nearest 6.22 - 0.5 = 5.72 A, i.e. 20 (19.58 rounded), not the first far enough
    assert idx[13] == 20
    assert idx[-1] == 53 and bands[-1].f <= 0.49  # the next candidate passes Nyquist's 0.49 guard
    for b, i in zip(bands, idx):
        lo, hi = b.f_high_pass * n, b.f_low_pass * n
        assert abs(lo - round(lo)) < 1e-9 and abs(hi - round(hi)) < 1e-9  # edges on frequency indices
        assert round(lo) <= i - 1 and round(hi) >= i + 1
        d = max(0.05 * b.resolution_a, 1.0 if b.resolution_a > 8 else 0.5)
        assert round(lo) == max(min(round(n / (b.resolution_a + d)), i - 1), 0)


def test_outliers_use_the_plain_angle_and_the_small_sum_rule():
    tilt = np.deg2rad(10.0)
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([np.cos(tilt), 0.0, np.sin(tilt)])
    dirs = np.stack([a, b, -b])  # -b is 170 / 180 degrees from a and b: no neighbour of either
    res = np.array([[20.0, 5.0], [20.0, 5.3], [9.0, 9.0]])
    out = monodir.remove_outliers(res, dirs, 1.645)
    assert not out[:, 0].any()  # |20 a - 20 b| = 3.5: both at the mean, nothing flagged
    # |5 a - 5.3 b| = 0.946: a summed distance in (0, 1] drops both directions; -b has no neighbour
    assert out[:, 1].tolist() == [True, True, False]
    # one direction of 81 far from its neighbours is dropped, the rest kept
    d, _ = monodir.reference_directions()
    res = np.full((81, 1), 5.0)
    res[40] = 12.0
    out = monodir.remove_outliers(res, d, 1.645)
    assert out[40, 0] and out.sum() == 1


def test_radial_split_exchanges_x_and_y_as_the_reference():
    dirs = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # (z, y, x): the x axis, the y axis
    res = np.array([[4.0, 4.0, 4.0], [9.0, 9.0, 9.0]])
    pos = np.array([[0.0, 0.0, 5.0], [0.0, 0.0, 5.0], [0.0, 0.0, 0.0]])  # two voxels on the x axis, centre
    ref = monodir._summaries(res, dirs, pos[:, [0, 2, 1]], 1.645)
    true = monodir._summaries(res, dirs, pos, 1.645)
    assert ref["radial"][0] == 9.0 and ref["azimuthal"][0] == 4.0  # the reference pairs x with the y axis
    assert true["radial"][0] == 4.0 and true["azimuthal"][0] == 9.0
    # at the centre no direction is radial or azimuthal: both read the mean of highest and lowest
    assert ref["radial"][2] == ref["azimuthal"][2] == 6.5 == ref["mean_extremes"][2]
    assert ref["highest"][0] == 4.0 and ref["lowest"][0] == 9.0
    assert ref["preferred_counts"].tolist() == [3, 0]  # within 0.1 A of the highest resolution


def test_cliff_radius_and_noise_shell():
    rng = np.random.default_rng(3)
    n = 64
    r = centred_radius((n,) * 3)
    vol = rng.standard_normal((n,) * 3).astype(np.float32)
    assert monodir.cliff_radius(vol, 10) == n // 2
    masked = np.where(r < 24, vol, 0.0).astype(np.float32)  # floor-radius shell 24 is the first all-zero one
    assert monodir.cliff_radius(masked, 10) == 23
    mask = r < 10
    reg = monodir.monodir_noise_region(vol, mask, 1.0, 18.0, None, False)
    rad = np.sqrt(sum(g**2 for g in np.meshgrid(*[np.arange(n) - n / 2] * 3, indexing="ij")))
    assert reg.rprot_px == 9 and reg.rlimit_px == n // 2
    # default volume radius N/2: noise from the particle's radius out to N/2 - 7, as Scipion runs it
    np.testing.assert_array_equal(reg.solvent, (rad > 9) & (r <= n / 2 - 7) & ~mask)
    wide = monodir.monodir_noise_region(vol, mask, 1.0, 18.0, None, False, volume_radius_px=100)
    np.testing.assert_array_equal(wide.solvent, (rad > 9) & (r < n // 2) & ~mask)  # the taper band too


def test_noise_cone_is_the_references_double_precision_angle_test():
    """Voxels exactly on the 45 degree cone (e.g. (3, 3, 0) around z) fall where the reference's
    acos(dot / r) < cone puts them; every voxel of a small box agrees with a plain loop."""
    import math

    shape = (10, 12, 8)
    geo = monodir.NoiseConeGeometry(shape)
    for rot, tilt in [(0.0, 0.0), (90.0, 90.0), (180.0, -26.565058), (108.0, 63.434965)]:
        got = geo.double_cone(rot, tilt, 45.0)
        xd = math.sin(tilt * math.pi / 180) * math.cos(rot * math.pi / 180)
        yd = math.sin(tilt * math.pi / 180) * math.sin(rot * math.pi / 180)
        zd = math.cos(tilt * math.pi / 180)
        want = np.zeros(shape, bool)
        for k, i, j in np.ndindex(*shape):
            uz, uy, ux = k - shape[0] * 0.5, i - shape[1] * 0.5, j - shape[2] * 0.5
            r = math.sqrt(ux * ux + uy * uy + uz * uz)
            if r == 0:
                continue
            a = math.acos(max(-1.0, min(1.0, (uy * yd + ux * xd + uz * zd) * (1 / r))))
            want[k, i, j] = a < math.pi / 4 or a > math.pi - math.pi / 4
        assert np.array_equal(got, want), (rot, tilt)
    cone = geo.double_cone(0.0, 0.0, 45.0)
    assert cone[0, 6, 4] and cone[9, 6, 4] and not cone[5, 0, 4]  # along z both ways; not across it
