"""Calibrating a quantile model's interval on validation maps (split-conformal, in log resolution).

A pinball loss learns the 10 % and 90 % quantiles of the training maps' truths; on maps of another kind
the interval can hold many more or fewer of the true values than its 80 %. The correction here keeps the
median and rescales each side's log distance from it: ``lo' = mid (lo / mid)^s_lo``,
``hi' = mid (hi / mid)^s_hi``. Each factor is the weighted quantile, over validation voxels, of how far the
truth lies along that side in units of the side's own length, ``log(mid / truth) / log(mid / lo)`` (and
the same above the median), at the side's nominal level: after scaling, 10 % of the weight lies below
``lo'`` and 10 % above ``hi'`` (conformalised quantile regression with a multiplicative score). Widths keep
their voxel-to-voxel pattern; only the overall size moves. Pure numpy; the net applies the factors
(:class:`locres.models.dense.DenseQuantileNet` ``interval_scale``).
"""

from __future__ import annotations

import numpy as np

from locres.errors import LocresError

MIN_LOG_SIDE = 1e-4  # a side shorter than this (relative) counts as this long, so no score divides by ~0


def weighted_quantile(values: np.ndarray, weights: np.ndarray, level: float) -> float:
    """The smallest value v with at least ``level`` of the weight at or below it."""
    order = np.argsort(values, kind="stable")
    v, w = np.asarray(values, float)[order], np.asarray(weights, float)[order]
    cum = np.cumsum(w)
    if cum[-1] <= 0:
        raise LocresError("weighted_quantile needs positive total weight")
    return float(v[min(np.searchsorted(cum, level * cum[-1], side="left"), len(v) - 1)])


def side_scores(lo_a: np.ndarray, mid_a: np.ndarray, hi_a: np.ndarray, truth_a: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """How far each truth lies beyond the median towards each side, in units of that side's log length
    (1: exactly on the interval's edge; negative: on the other side of the median)."""
    mid = np.asarray(mid_a, float)
    log_t = np.log(mid / np.asarray(truth_a, float))
    below = np.maximum(np.log(mid / np.asarray(lo_a, float)), MIN_LOG_SIDE)
    above = np.maximum(np.log(np.asarray(hi_a, float) / mid), MIN_LOG_SIDE)
    return log_t / below, -log_t / above


def interval_scales(lo_a: np.ndarray, mid_a: np.ndarray, hi_a: np.ndarray, truth_a: np.ndarray,
                    weights: np.ndarray | None = None, levels: tuple[float, float] = (0.1, 0.9),
                    bounds: tuple[float, float] = (0.05, 20.0)) -> tuple[float, float]:
    """(s_lo, s_hi): the factors on each side's log length after which ``levels[0]`` of the weight lies
    below the low quantile and ``1 - levels[1]`` above the high one. Flat voxel arrays, resolutions in
    Angstrom; ``weights`` per voxel (default equal); the factors are clipped to ``bounds``."""
    q_lo, q_hi = (float(v) for v in levels)
    if not 0 < q_lo < q_hi < 1:
        raise LocresError(f"levels must satisfy 0 < low < high < 1, got {levels}")
    below, above = side_scores(lo_a, mid_a, hi_a, truth_a)
    if below.size == 0:
        raise LocresError("interval calibration needs at least one voxel")
    w = np.ones_like(below) if weights is None else np.asarray(weights, float)
    s_lo = weighted_quantile(below, w, 1.0 - q_lo)
    s_hi = weighted_quantile(above, w, q_hi)
    return tuple(float(np.clip(s, *bounds)) for s in (s_lo, s_hi))


def scaled_interval_a(lo_a: np.ndarray, mid_a: np.ndarray, hi_a: np.ndarray, scales: tuple[float, float]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The interval with each side's log distance from the median multiplied by its factor, exactly as
    the net computes it with ``interval_scale``."""
    mid = np.asarray(mid_a, float)
    return (mid * (np.asarray(lo_a, float) / mid) ** scales[0],
            mid * (np.asarray(hi_a, float) / mid) ** scales[1])


def inside_fraction(lo_a: np.ndarray, hi_a: np.ndarray, truth_a: np.ndarray,
                    weights: np.ndarray | None = None) -> float:
    """The (weighted) fraction of true values inside [lo, hi]."""
    inside = (truth_a >= lo_a) & (truth_a <= hi_a)
    return float(np.average(inside, weights=weights))
