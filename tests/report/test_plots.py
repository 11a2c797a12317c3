"""Pictures render from arrays, with slices through the estimated region."""

from __future__ import annotations

import io

import numpy as np

from locres.report.plots import colour_range, plot_comparison, plot_local_resolution, slice_centre


def _png_size(png: bytes) -> tuple[int, int]:
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(png), format="png")
    return img.shape[1], img.shape[0]


def test_slices_pass_through_the_mask_centroid():
    mask = np.zeros((21, 30, 25), bool)
    mask[2:7, 20:26, 3:6] = True
    assert slice_centre(mask.shape, mask) == (4, 22, 4)
    assert slice_centre((21, 30, 25)) == (10, 15, 12)


def test_colour_range_is_robust():
    values = np.concatenate([np.full(1000, 4.0), np.linspace(3, 8, 1000), [100.0]])
    lo, hi = colour_range(values)
    assert 3.0 <= lo < 4.0 and 7.0 < hi <= 8.0


def test_plots_render(rng):
    m = rng.standard_normal((15, 18, 17)).astype(np.float32)
    res = np.where(m > 0, 3 + m, 0).astype(np.float32)
    w, h = _png_size(plot_local_resolution(m, res, title="x"))
    assert w > 2 * h  # slices and histogram side by side
    w2, h2 = _png_size(plot_comparison(m, {"a": res, "b": res * 1.1}))
    assert h2 > 0 and w2 > 0
