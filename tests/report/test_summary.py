"""Summary numbers (NAME.json) and the terminal table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from locres.report.summary import histogram, resolution_stats, summary_table, to_json_bytes


def test_stats_ignore_unestimated_and_respect_mask():
    res = np.zeros((4, 5, 6), np.float32)
    values = np.arange(1, 21, dtype=np.float32)  # 1..20 A
    res.flat[:20] = values
    res.flat[20] = np.nan  # not finite -> not estimated
    s = resolution_stats(res)
    assert s["voxels_estimated"] == 20
    assert s["median_a"] == pytest.approx(10.5) and s["min_a"] == 1 and s["max_a"] == 20
    assert s["percentiles_a"]["5"] == pytest.approx(np.percentile(values, 5))
    assert s["percentiles_a"]["95"] == pytest.approx(np.percentile(values, 95))
    mask = np.zeros(res.shape, bool)
    mask.flat[:10] = True
    assert resolution_stats(res, mask)["median_a"] == pytest.approx(5.5)


def test_stats_of_nothing_estimated():
    s = resolution_stats(np.zeros((3, 3, 3)))
    assert s["voxels_estimated"] == 0 and s["median_a"] is None


def test_histogram_counts_every_value_in_quarter_angstrom_bins():
    res = np.array([3.0, 3.1, 3.3, 4.9, 0.0], np.float32).reshape(1, 1, 5)
    h = histogram(res, bin_a=0.25)
    assert sum(h["counts"]) == 4
    assert np.allclose(np.diff(h["edges_a"]), 0.25)
    assert h["counts"][0] == 2  # 3.0 and 3.1 share the first bin [3.0, 3.25)


def test_json_handles_numpy_and_nan():
    payload = {"a": np.float32(1.5), "b": np.int64(3), "c": np.arange(3), "d": float("nan"), "e": (1, 2)}
    out = json.loads(to_json_bytes(payload))
    assert out == {"a": 1.5, "b": 3, "c": [0, 1, 2], "d": None, "e": [1, 2]}


def test_table_lists_methods_and_skips():
    s = {"method": "deepres", "voxels_estimated": 10, "median_a": 4.25, "percentiles_a": {"5": 3.0}}
    text = summary_table([s], {"resmap": "not installed"})
    assert "deepres" in text and "4.25" in text and "resmap: skipped (not installed)" in text
