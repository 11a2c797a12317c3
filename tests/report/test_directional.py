"""Directional-resolution figures: the hemisphere projection's known answers; figures are PNGs that
carry the dfsc and MonoDir numbers they are given."""

from __future__ import annotations

import numpy as np

from locres.methods import dfsc
from locres.methods.monodir import hemisphere_directions
from locres.report import directional

PNG = b"\x89PNG\r\n\x1a\n"


def test_projection_puts_z_at_the_centre_and_the_equator_on_the_unit_circle():
    x, y = directional.hemisphere_projection([[0.0, 0.0], [0.0, 90.0], [90.0, 90.0], [45.0, 60.0]])
    assert np.allclose([x[0], y[0]], 0.0)
    assert np.allclose([x[1], y[1]], [1.0, 0.0])
    assert np.allclose([x[2], y[2]], [0.0, 1.0], atol=1e-12)
    r = np.hypot(x[3], y[3])
    assert np.isclose(r, np.sqrt(2) * np.sin(np.deg2rad(30.0)))
    assert np.isclose(np.arctan2(y[3], x[3]), np.deg2rad(45.0))


def test_projection_folds_the_lower_hemisphere_onto_the_opposite_direction():
    x, y = directional.hemisphere_projection([[30.0, 150.0], [210.0, 30.0]])
    assert np.allclose([x[0], y[0]], [x[1], y[1]])


def test_projection_is_equal_area_for_near_uniform_directions():
    d = hemisphere_directions(400)
    tilt = np.degrees(np.arccos(np.clip(d[:, 0], -1, 1)))
    rot = np.degrees(np.arctan2(d[:, 1], d[:, 2]))
    x, y = directional.hemisphere_projection(np.c_[rot, tilt])
    r2 = x**2 + y**2  # equal area: r^2 uniform on [0, 1] for uniform directions
    assert abs(np.mean(r2 < 0.5) - 0.5) < 0.05


def _dfsc_info():
    rng = np.random.default_rng(0)
    n = 40
    sig = rng.standard_normal((n, n, n)).astype(np.float32)
    h1, h2 = (sig + 0.5 * rng.standard_normal(sig.shape).astype(np.float32) for _ in range(2))
    return dfsc.estimate_dfsc(h1, h2, 1.0, n_directions=30).info


def test_dfsc_figure_is_a_png_and_summary_carries_both_methods_numbers():
    info = _dfsc_info()
    png = directional.plot_dfsc(info)
    assert png.startswith(PNG) and len(png) > 20_000
    monodir_info = {"directions_rot_tilt_deg": [[0.0, 0.0], [0.0, 90.0], [90.0, 90.0]],
                    "direction_median_resolution_a": [4.0, 6.5, 0.0], "median_anisotropy_a": 1.25}
    both = directional.plot_monodir_with_dfsc(monodir_info, np.array([0.5, 1.0, 1.5, 2.0]), info)
    assert both.startswith(PNG) and len(both) > len(png)
    s = directional.monodir_dfsc_summary(monodir_info, info)
    assert s["monodir_median_anisotropy_a"] == 1.25
    assert s["monodir_direction_median_spread_a"] == 2.5  # never-passed direction (0) left out
    assert s["sphericity"] == info["sphericity"]
    d = info["directional_resolution_a"]
    assert np.isclose(s["directional_spread_a"], d["max"] - d["min"])
