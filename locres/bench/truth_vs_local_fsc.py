"""How far the expected-local-FSC truth lies from what an ideal local FSC measures on the same map.

    python -m locres.bench.truth_vs_local_fsc --shards runs/training_set [--cases 48] [--draws 8]

For the phantom bench's cases that are neither sharpened nor flattened
(:func:`locres.bench.deepres2.case_specs`, validation-split structures: this studies the target, it chooses
no model; signal, noise, truth and mask put on the nets' 1 A grid by :func:`locres.core.maps.to_model_grid`,
as the nets see them), each made twice: with the case's spatial pattern, and with one resolution over the
whole molecule (pattern ``uniform``, so no neighbour's finer or coarser signal can enter a window). For
each, the half maps' shared signal gets ``--draws`` fresh noise draws of the case's own noise spectrum (the
case's noise with its Fourier phases randomised); the band correlations of the half-map features (narrow
windows, :mod:`locres.models.features`) are averaged over the draws, which leaves the expected local FSC of
those windows, and its 0.143 crossing is compared with the truth over the mask (MAE, bias = mean of crossing
- truth). A single draw's crossing is reported beside it, and the shipped half-map model's reading of the
case's own half maps (on the input grid).
Writes ``bench_results/deepres2/truth_vs_local_fsc.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.fft as sfft

from locres.bench.deepres2 import case_recipe, case_specs, make_case, run_variant, test_pool
from locres.core.maps import to_model_grid
from locres.io.atomic import atomic_write_json
from locres.models.features import BAND_RESOLUTIONS_A, band_features_model_grid, fsc_crossing_resolution_a

log = logging.getLogger(__name__)
ESTIMATES = ("expected_local_fsc", "one_draw", "deepres2_halves")


def noise_like(noise: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A new noise volume with the power spectrum of ``noise``: its Fourier phases randomised."""
    spec = sfft.rfftn(noise)
    phases = sfft.rfftn(rng.standard_normal(noise.shape))
    phases /= np.maximum(np.abs(phases), 1e-12)
    return sfft.irfftn(spec * phases, s=noise.shape).astype(np.float32)


def expected_band_correlation(signal: np.ndarray, noise: np.ndarray, draws: int,
                              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Narrow-window band correlations (K, half grid) of half maps ``signal`` + noise like ``noise``:
    the mean over ``draws`` pairs of noise draws, and the first pair's. The map is on a 1 A model grid."""
    k = len(BAND_RESOLUTIONS_A)
    rhos = []
    for _ in range(draws):
        h1, h2 = (signal + noise_like(noise, rng) for _ in range(2))
        rhos.append(band_features_model_grid([h1, h2], 1.0, version=2)[4 * k: 5 * k])
    return np.mean(rhos, axis=0), rhos[0]


def crossing_against_truth(crossing_a: np.ndarray, truth_a: np.ndarray, mask: np.ndarray) -> dict:
    d = crossing_a[mask] - truth_a[mask]
    return {"mae_a": float(np.mean(np.abs(d))), "bias_a": float(np.mean(d)),
            "truth_median_a": float(np.median(truth_a[mask])), "median_a": float(np.median(crossing_a[mask]))}


def study_case(spec: dict, pool, draws: int, uniform: bool) -> dict | None:
    if spec["global_bfactor_a2"] or spec["flatten"]:
        return None  # global filters and flattening act on the noise after the signal was kept
    recipe = replace(case_recipe(spec), patterns=("uniform",)) if uniform else None
    ex = make_case(pool, spec, recipe)
    v = ex.voxel_size_a
    # half1 - map = (n1 - n2) / 2 (the offset cancels): half of one half's noise power, so times sqrt 2
    noise = to_model_grid(np.sqrt(2.0) * (ex.half1 - ex.map), v, 1.0)
    signal = to_model_grid(ex.signal, v, 1.0)
    expected, single = expected_band_correlation(signal, noise, draws, np.random.default_rng(0))
    sub = (slice(None, None, 2),) * 3
    truth = to_model_grid(ex.truth_a, v, 1.0, lowpass=False)[sub]
    mask = to_model_grid(ex.mask.astype(np.float32), v, 1.0, lowpass=False)[sub] > 0.5
    model_a, _ = run_variant("deepres2_halves", ex, ex.mask)
    d = model_a[ex.mask] - ex.truth_a[ex.mask]
    return {
        "deepres2_halves": {"mae_a": float(np.mean(np.abs(d))), "bias_a": float(np.mean(d))},
        "name": spec["name"], "kind": spec["kind"], "snr": spec["snr"], "voxel_size_a": v,
        "pattern": "uniform" if uniform else spec["pattern"],
        "expected_local_fsc": crossing_against_truth(fsc_crossing_resolution_a(expected), truth, mask),
        "one_draw": crossing_against_truth(fsc_crossing_resolution_a(single), truth, mask),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shards", default="runs/training_set")
    p.add_argument("--cases", type=int, default=24)
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--out", default="bench_results/deepres2/truth_vs_local_fsc.json")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    pool, names = test_pool(a.shards, "val")
    t0 = time.perf_counter()
    rows = []
    for spec in case_specs(a.cases):
        for uniform in (False, True):
            row = study_case(spec, pool, a.draws, uniform)
            if row:
                ideal = row["expected_local_fsc"]
                log.info("%s %s %s snr %s: expected local FSC bias %+.2f A (truth median %.2f A)",
                         row["name"], row["kind"], row["pattern"], row["snr"], ideal["bias_a"],
                         ideal["truth_median_a"])
                rows.append(row)
    summary = {}
    for kind in ("cut", "envelope"):
        for uniform in (False, True):
            sel = [r for r in rows if r["kind"] == kind and (r["pattern"] == "uniform") == uniform]
            if sel:
                mean = {f"{est}_{m}": float(np.mean([r[est][m] for r in sel]))
                        for est in ESTIMATES for m in ("mae_a", "bias_a")}
                summary[f"{kind}, {'uniform' if uniform else 'pattern'}"] = {"cases": len(sel), **mean}
    cmd = "python -m locres.bench.truth_vs_local_fsc " + " ".join(argv if argv is not None else sys.argv[1:])
    atomic_write_json(Path(a.out), {
        "command": cmd.strip(), "split": "val", "val_structures": names, "draws": a.draws,
        "seconds": round(time.perf_counter() - t0, 1), "loadavg": open("/proc/loadavg").read().split()[:3],
        "summary": summary, "cases": rows})
    for k, v in summary.items():
        print(k, {a: round(b, 2) if isinstance(b, float) else b for a, b in v.items()})


if __name__ == "__main__":
    main()
