"""compare.json numbers on maps with known relations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from locres.report.compare import common_mask, compare_maps


@pytest.fixture
def maps(rng):
    a = rng.uniform(3.0, 9.0, size=(9, 10, 11)).astype(np.float32)
    a[:2] = 0.0  # not estimated
    return a


def _pair(out, x, y):
    return next(p for p in out["pairs"] if {p["a"], p["b"]} == {x, y})


def test_identical_maps_correlate_perfectly(maps):
    out = compare_maps({"a": maps, "b": maps.copy()})
    pair = _pair(out, "a", "b")
    assert pair["pearson"] == pytest.approx(1.0)
    assert pair["spearman"] == pytest.approx(1.0)
    assert pair["median_difference_a"] == 0.0 and pair["mean_abs_difference_a"] == 0.0
    assert out["common_voxels"] == 7 * 10 * 11


def test_affine_and_monotone_relations(maps):
    est = maps > 0
    lin = np.where(est, 2.0 * maps + 1.0, 0).astype(np.float32)  # Pearson 1, median difference known
    inv = np.where(est, 1.0 / np.where(est, maps, 1.0), 0).astype(np.float32)  # Spearman -1, Pearson not -1
    out = compare_maps({"a": maps, "lin": lin, "inv": inv})
    p_lin, p_inv = _pair(out, "a", "lin"), _pair(out, "a", "inv")
    assert p_lin["pearson"] == pytest.approx(1.0, abs=1e-6)
    assert p_lin["median_difference_a"] == pytest.approx(float(np.median(-(maps[est] + 1.0))), rel=1e-5)
    assert p_inv["spearman"] == pytest.approx(-1.0)
    assert -1.0 < p_inv["pearson"] < -0.8
    assert p_inv["pearson"] == pytest.approx(stats.pearsonr(maps[est], inv[est]).statistic, abs=1e-6)
    assert len(out["pairs"]) == 3


def test_common_mask_is_intersection_of_estimates_and_mask(maps):
    b = maps.copy()
    b[:, :3] = 0.0
    mask = np.zeros(maps.shape, bool)
    mask[:, :, :5] = True
    common = common_mask({"a": maps, "b": b}, mask)
    expected = (maps > 0) & (b > 0) & mask
    assert np.array_equal(common, expected)
    out = compare_maps({"a": maps, "b": b}, mask)
    assert out["common_voxels"] == int(expected.sum())
    assert out["methods"]["a"]["common"]["median_a"] == pytest.approx(float(np.median(maps[expected])))
    assert out["methods"]["b"]["own"]["voxels_estimated"] == int(((b > 0) & mask).sum())


def test_constant_map_correlation_is_undefined(maps):
    const = np.where(maps > 0, 5.0, 0).astype(np.float32)
    pair = _pair(compare_maps({"a": maps, "c": const}), "a", "c")
    assert pair["pearson"] is None and pair["spearman"] is None
