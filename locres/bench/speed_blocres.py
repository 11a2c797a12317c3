"""Speed and accuracy of blocres: every-voxel fast path vs the box-by-box reference, and phantoms.

Run: ``.venv/bin/python -m locres.bench.speed_blocres`` (about 10 minutes on 2 busy cores); writes
``bench_results/speed_blocres.json``.

1. Speed: the fast path on a 240^3 map at 0.834 A (box 20, pad 1, Hann, cutoff 0.5, step 1, every voxel
   away from the edges), median of ``--runs`` runs; the box-by-box reference timed on ``--ref-voxels``
   voxels and extrapolated to the same voxel count (the baseline, measured in this script).
2. Accuracy on synthetic phantoms with known local resolution (radial, linear, blobs; 3-8 A): MAE, bias
   (median of estimate - truth) and Spearman, overall and per true-resolution bin, inside the mask;
   fast vs reference at sampled voxels; and torch-local-resolution on the same phantoms when installed
   (p-value maps per tested resolution turned into a resolution as the finest tested resolution reached
   while every coarser one is significant at p < ``--tlr-alpha``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from locres.bench.common import machine_info
from locres.bench.groundtruth import binned_metrics, spearman
from locres.bench.outside import tlr_local_resolution_a
from locres.core.fourier import lowpass_raised_cosine
from locres.io.atomic import atomic_write_text
from locres.methods import MethodInputs, blocres
from locres.simulate.phantom import make_synthetic_phantom

log = logging.getLogger(__name__)

BINS_A = [(3.0, 4.0), (4.0, 5.0), (5.0, 6.0), (6.0, 7.0), (7.0, 8.01)]


def _speed(shape: int, voxel_size_a: float, box: int, runs: int, ref_voxels: int) -> dict:
    rng = np.random.default_rng(0)
    sig = lowpass_raised_cosine(rng.standard_normal((shape,) * 3).astype(np.float32), voxel_size_a, 3.5)
    sig /= sig.std()
    halves = [sig + rng.standard_normal(sig.shape).astype(np.float32) for _ in range(2)]
    times, cpu = [], []
    for i in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        blocres.local_fsc_fast(halves[0], halves[1], voxel_size_a, box, [0.5])
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        log.info("fast run %d: %.1f s wall, %.1f s CPU", i, times[-1], cpu[-1])
    n_voxels = (shape - 2 * (box // 2) + 1) ** 3
    pts = rng.integers(box // 2, shape - box // 2 + 1, size=(ref_voxels, 3))
    t0, c0 = time.perf_counter(), time.process_time()
    blocres.local_fsc_reference(halves[0], halves[1], voxel_size_a, box, pts, [0.5])
    per_voxel = (time.perf_counter() - t0) / ref_voxels
    per_voxel_cpu = (time.process_time() - c0) / ref_voxels
    fast = float(np.median(times))
    return {
        "map_shape": [shape] * 3, "voxel_size_a": voxel_size_a, "box": box, "pad": 1, "taper": "hann",
        "cutoff": 0.5, "step": 1, "voxels_estimated": n_voxels,
        "fast_seconds_runs": [round(t, 2) for t in times], "fast_seconds_median": round(fast, 2),
        "fast_cpu_seconds_runs": [round(t, 2) for t in cpu],
        "fast_cpu_seconds_median_per_core": round(float(np.median(cpu)) / torch.get_num_threads(), 2),
        "goal_seconds": 60.0, "meets_goal": fast < 60.0,
        "reference_voxels_timed": ref_voxels, "reference_ms_per_voxel": round(1e3 * per_voxel, 3),
        "reference_seconds_extrapolated": round(per_voxel * n_voxels, 1),
        "speedup_over_reference": round(per_voxel * n_voxels / fast, 1),
        "reference_cpu_ms_per_voxel": round(1e3 * per_voxel_cpu, 3),
        "speedup_over_reference_cpu_time": round(per_voxel_cpu * n_voxels / float(np.median(cpu)), 1),
    }


def _tlr_resolution(half1, half2, voxel_size_a: float, alpha: float, step: int) -> np.ndarray | None:
    try:
        tested_a = list(np.arange(9.0, 2.99, -0.5))
        return tlr_local_resolution_a(half1, half2, voxel_size_a, tested_a, alpha, step)
    except ImportError as exc:
        log.warning("torch-local-resolution unavailable: %s", exc)
        return None


def _accuracy(shape: int, box: int, n_ref: int, tlr: bool, tlr_alpha: float, tlr_step: int) -> dict:
    out = {}
    for pattern in ("radial", "linear", "blobs"):
        ph = make_synthetic_phantom((shape,) * 3, 1.0, (3.0, 8.0), pattern, snr=2.0, seed=11)
        entry: dict = {"shape": [shape] * 3, "voxel_size_a": 1.0, "snr": 2.0,
                       "global_resolution_a": ph.info.get("global_resolution_a")}
        inputs = MethodInputs(voxel_size_a=1.0, half1=ph.half1, half2=ph.half2, mask=ph.mask)
        t0 = time.perf_counter()
        est = blocres.run(inputs, box=box)
        entry["blocres_seconds"] = round(time.perf_counter() - t0, 2)
        entry["blocres"] = binned_metrics(est.resolution_a, ph.truth_a, ph.mask, bins_a=BINS_A,
                                          goal_range_a=(3.0, 8.0))
        rng = np.random.default_rng(0)
        pts = np.argwhere(est.resolution_a > 0)
        pts = pts[rng.choice(len(pts), min(n_ref, len(pts)), replace=False)]
        ref = blocres.local_fsc_reference(ph.half1, ph.half2, 1.0, box, pts, [0.5])[0]
        fast = est.resolution_a[tuple(pts.T)]
        truth = ph.truth_a[tuple(pts.T)]
        rel = np.abs(fast - ref) / ref
        entry["fast_vs_reference"] = {
            "voxels": len(pts), "median_rel_diff": float(np.median(rel)),
            "p90_rel_diff": float(np.percentile(rel, 90)), "spearman": spearman(fast, ref),
            "reference_mae_vs_truth_a": float(np.mean(np.abs(ref - truth))),
            "reference_bias_vs_truth_a": float(np.median(ref - truth)),
            "reference_spearman_vs_truth": spearman(ref, truth),
        }
        if tlr:
            t0 = time.perf_counter()
            t_est = _tlr_resolution(ph.half1, ph.half2, 1.0, tlr_alpha, tlr_step)
            if t_est is None:
                entry["torch_local_resolution"] = "not installed (see log)"
            else:
                entry["torch_local_resolution_seconds"] = round(time.perf_counter() - t0, 2)
                entry["torch_local_resolution"] = binned_metrics(t_est, ph.truth_a, est.mask, bins_a=BINS_A,
                                                                 goal_range_a=(3.0, 8.0))
        out[pattern] = entry
        log.info("%s: blocres %s", pattern, entry["blocres"]["all"])
    return out


def main(argv: list[str] | None = None) -> None:
    from locres.core.memory import reuse_freed_memory

    reuse_freed_memory()  # as the entry points do (locres.core.memory)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, default=240)
    ap.add_argument("--voxel-size", type=float, default=0.834)
    ap.add_argument("--box", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ref-voxels", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--phantom-shape", type=int, default=64)
    ap.add_argument("--phantom-box", type=int, default=16)
    ap.add_argument("--no-tlr", action="store_true", help="skip torch-local-resolution")
    ap.add_argument("--tlr-alpha", type=float, default=0.05)
    ap.add_argument("--tlr-step", type=int, default=2)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--out", default="bench_results/speed_blocres.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    result = {
        "command": " ".join([".venv/bin/python -m locres.bench.speed_blocres", *(argv or sys.argv[1:])]),
        "machine": machine_info(),
        "note": "wall times depend on other load on the machine: compare the load averages recorded here",
        "load_average_start": list(np.round(__import__("os").getloadavg(), 2)),
    }
    if not args.skip_speed:
        result["speed"] = _speed(args.shape, args.voxel_size, args.box, args.runs, args.ref_voxels)
    result["accuracy"] = _accuracy(args.phantom_shape, args.phantom_box, 300, not args.no_tlr, args.tlr_alpha,
                                   args.tlr_step)
    try:
        result["load_average_end"] = list(np.round(__import__("os").getloadavg(), 2))
    except OSError:
        pass
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2, default=float))
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
