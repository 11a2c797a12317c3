"""core.masks: the envelope of a noise-free density and the clean-up shared by the methods' masks."""

from __future__ import annotations

import numpy as np

from locres.core.masks import envelope_mask, tidy_mask


def _ball(shape, centre, radius):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


def test_envelope_of_a_ball_is_the_ball():
    ball = _ball((40, 40, 40), (20, 20, 20), 8)
    mask = envelope_mask(ball.astype(np.float32), 1.0, 2.0, 0.5)
    # at half the maximum the blurred edge sits on the ball's surface: the same voxels within a shell
    assert abs(int(mask.sum()) - int(ball.sum())) < 0.1 * ball.sum()
    assert mask[20, 20, 20] and not mask[0, 0, 0] and not mask[20, 20, 31]
    assert not envelope_mask(np.zeros((8, 8, 8)), 1.0, 4.0, 0.1).any()


def test_tidy_drops_specks_fills_holes_and_dilates():
    big = _ball((40, 40, 40), (20, 20, 20), 8) & ~_ball((40, 40, 40), (20, 20, 20), 3)  # hollow ball
    m = big.copy()
    m[2, 2, 2] = True  # a speck of one voxel (far below 5 % of the big one)
    out = tidy_mask(m, 0.05)
    assert out[20, 20, 20] and not out[2, 2, 2]
    assert int(out.sum()) == int(_ball((40, 40, 40), (20, 20, 20), 8).sum())
    grown = tidy_mask(m, 0.05, dilate_vox=1)
    assert grown[20, 20, 29] and not out[20, 20, 29]
    assert not tidy_mask(np.zeros((5, 5, 5), bool)).any()
