"""Sharpening study: how each estimate moves when the same phantom is globally sharpened or blurred.

The maps (single and halves) of each phantom are multiplied in Fourier space by ``exp(+B s^2 / 4)``
(:func:`locres.core.fourier.sharpen`; B > 0 sharpens, B < 0 blurs) for B from -100 to +100 A^2; the
true local resolution does not change, so a robust estimator's median should not move either.
"""

from __future__ import annotations

import logging

import numpy as np

from locres.bench.common import Variant, inputs_for, run_variant
from locres.bench.groundtruth import CaseSpec, build_case, error_metrics

log = logging.getLogger(__name__)


def run_sharpening(specs: list[CaseSpec], variants: list[Variant], b_factors_a2: list[float],
                   device: str = "cpu") -> dict:
    """Median estimate and MAE in the mask per variant and B, pooled over the phantoms of ``specs``.

    Returns a JSON-serialisable dict: ``b_factors_a2``, ``cases``, ``truth_median_a`` and per variant
    ``median_a``, ``mae_a``, ``bias_a`` (lists over B; None where the variant failed) and ``errors``.
    """
    from locres.core.fourier import sharpen

    bs = [float(b) for b in b_factors_a2]
    pred = {v.label: {b: [] for b in bs} for v in variants}
    errors = {v.label: set() for v in variants}
    truths, names = [], []
    for spec in specs:
        spec0 = CaseSpec(**{**spec.__dict__, "sharpen_b_a2": 0.0})
        try:
            ph, single, h1, h2 = build_case(spec0)
        except Exception as exc:
            log.warning("sharpening case %s could not be built: %s", spec0.name, exc)
            continue
        mask = np.asarray(ph.mask, bool)
        truths.append(np.asarray(ph.truth_a)[mask])
        names.append(spec0.name)
        v = spec0.voxel_size_a
        for b in bs:
            maps = [m if b == 0 else sharpen(m, v, b) for m in (single, h1, h2)]
            for var in variants:
                out = run_variant(var, inputs_for(var, v, *maps, mask, device))
                if out.error:
                    errors[var.label].add(out.error)
                    pred[var.label][b].append(None)
                else:
                    pred[var.label][b].append(out.resolution_a[mask])
                if out.error is None:
                    est = out.resolution_a[mask]
                    est = est[est > 0]
                    log.info("sharpening %s B=%+g %-16s median %s A", spec0.name, b, var.label,
                             f"{np.median(est):.2f}" if est.size else "-")
    truth = np.concatenate(truths) if truths else np.zeros(0)
    result = {"b_factors_a2": bs, "cases": names,
              "truth_median_a": float(np.median(truth)) if truth.size else None, "variants": {}}
    for var in variants:
        med, mae, bias = [], [], []
        for b in bs:
            parts = pred[var.label][b]
            if not parts or any(p is None for p in parts):
                med.append(None), mae.append(None), bias.append(None)
                continue
            p = np.concatenate(parts)
            m = error_metrics(p, truth)
            est = p[p > 0]
            med.append(float(np.median(est)) if est.size else None)
            mae.append(m["mae_a"])
            bias.append(m["bias_a"])
        result["variants"][var.label] = {"input": var.input, "median_a": med, "mae_a": mae, "bias_a": bias,
                                         "errors": sorted(errors[var.label])}
    return result
