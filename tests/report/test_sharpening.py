"""Sharpening verdicts on local-resolution maps with known shifts."""

from __future__ import annotations

import numpy as np
import pytest

from locres.report.sharpening import plot_sharpening, sharpening_check


@pytest.fixture
def original(rng):
    return rng.normal(6.0, 0.5, size=(16, 16, 16)).clip(3.0, 12.0).astype(np.float32)


def test_sharpening_that_piles_at_the_floor_is_over(original, rng):
    sharp = original - 1.5
    sharp.flat[: sharp.size // 2] = 2.5  # half the voxels read at the model's finest value
    check = sharpening_check(sharp, original)
    assert check["verdict"] == "over-sharpened"
    assert check["fraction_at_floor_sharpened"] >= 0.5 and check["floor_a"] == pytest.approx(2.5)


def test_reasonable_sharpening_is_ok(original):
    check = sharpening_check(original - 1.0, original)
    assert check["verdict"] == "ok"
    assert check["median_shift_a"] == pytest.approx(-1.0, abs=1e-5)


def test_blurring_or_no_gain_is_under(original):
    assert sharpening_check(original + 1.0, original)["verdict"] == "under-sharpened"
    assert sharpening_check(original - 0.1, original)["verdict"] == "under-sharpened"


def test_global_resolution_decides_when_given(original):
    sharp = original - 2.0  # median about 4 A
    assert sharpening_check(sharp, original, global_resolution_a=5.0)["verdict"] == "over-sharpened"
    assert sharpening_check(sharp, original, global_resolution_a=3.0)["verdict"] == "under-sharpened"
    assert sharpening_check(sharp, original, global_resolution_a=4.0)["verdict"] == "ok"


def test_mask_restricts_and_plot_renders(original):
    mask = np.zeros(original.shape, bool)
    mask[4:12, 4:12, 4:12] = True
    check = sharpening_check(original - 1.0, original, mask)
    assert check["voxels"] == mask.sum()
    png = plot_sharpening(original - 1.0, original, check, mask)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
