"""Speed and accuracy of ResMap: FFT-correlation statistic vs a per-voxel quadratic form, and phantoms.

Run: ``.venv/bin/python -m locres.bench.speed_resmap`` (a few minutes on 2 busy cores); writes
``bench_results/speed_resmap.json``.

1. Speed: split mode on a 240^3 map at 0.834 A (a sphere of radius 0.4 n holding signal low-passed to
   3.5 A, white noise everywhere, that sphere as the mask), the default ladder (1.8 ... 8.8 A),
   median of ``--runs`` whole runs; one single-map run too. Baseline measured here: the reference's
   inner loop (a dense ``N x N`` float32 ``y^T Lambda y`` per voxel, ``N = w^3``) timed on
   ``--ref-voxels`` voxels per window size (a tenth of them for w >= 11) and extrapolated to the
   voxels the fast run tested at each level.
2. Accuracy on synthetic phantoms with known local resolution (radial, linear, blobs; 3-8 A; 64^3 at
   1 A; snr 2): MAE, bias (median of estimate - truth), Spearman and coverage, overall and per
   true-resolution bin, split and single-map modes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from locres.bench.common import machine_info
from locres.bench.groundtruth import binned_metrics
from locres.core.fourier import lowpass_raised_cosine
from locres.io.atomic import atomic_write_text
from locres.methods import MethodInputs, resmap
from locres.simulate.phantom import make_synthetic_phantom

log = logging.getLogger(__name__)
BINS_A = [(3.0, 4.0), (4.0, 5.0), (5.0, 6.0), (6.0, 7.0), (7.0, 8.01)]


def _test_map(shape: int, voxel_size_a: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    sig = lowpass_raised_cosine(rng.standard_normal((shape,) * 3).astype(np.float32), voxel_size_a, 3.5)
    zz, yy, xx = np.mgrid[:shape, :shape, :shape] - shape / 2
    mask = zz**2 + yy**2 + xx**2 < (0.4 * shape) ** 2
    del zz, yy, xx
    sig = sig / sig.std() * mask
    noise_sd = np.float32(np.sqrt(2.0))
    halves = [sig + noise_sd * rng.standard_normal(sig.shape, dtype=np.float32) for _ in range(2)]
    return halves, mask


def _reference_per_voxel_seconds(width: int, n_vox: int) -> float:
    """Seconds per voxel of the reference inner loop: window copy + dense float32 ``y^T Lambda y``.

    The cost does not depend on the values of ``Lambda``, so a random symmetric ``N x N`` stands in.
    """
    rng = np.random.default_rng(1)
    n = width**3
    lam = rng.standard_normal((n, n)).astype(np.float32)
    lam = lam + lam.T
    vol = rng.standard_normal((width * 4,) * 3).astype(np.float32)
    r = width // 2
    pts = rng.integers(r, 4 * width - r, size=(n_vox, 3))
    t0 = time.perf_counter()
    acc = 0.0
    for z, y, x in pts:
        win = vol[z - r:z + r + 1, y - r:y + r + 1, x - r:x + r + 1].ravel()
        acc += float(win @ (lam @ win))
    return (time.perf_counter() - t0) / n_vox


def _speed(shape: int, voxel_size_a: float, runs: int, ref_voxels: int, device: str) -> dict:
    halves, mask = _test_map(shape, voxel_size_a)
    times, info = [], None
    for i in range(runs):
        t0 = time.perf_counter()
        inputs = MethodInputs(voxel_size_a, half1=halves[0], half2=halves[1], mask=mask, device=device)
        out = resmap.run(inputs)
        times.append(time.perf_counter() - t0)
        info = out.info
        log.info("split run %d: %.1f s", i, times[-1])
    t0 = time.perf_counter()
    single = resmap.run(MethodInputs(voxel_size_a, map=0.5 * (halves[0] + halves[1]), mask=mask,
                                     device=device))
    single_s = time.perf_counter() - t0
    ref_total, per_level = 0.0, []
    for lev in info["levels"]:
        n_timed = ref_voxels if lev["window"] <= 9 else max(ref_voxels // 10, 50)
        per_vox = _reference_per_voxel_seconds(lev["window"], n_timed)
        ref_total += per_vox * lev["tested"]
        per_level.append({"res_a": lev["res_a"], "window": lev["window"], "tested": lev["tested"],
                          "assigned": lev["assigned"], "fast_seconds": lev["seconds"],
                          "reference_voxels_timed": n_timed,
                          "reference_us_per_voxel": round(1e6 * per_vox, 2)})
    med = float(np.median(times))
    r, rs = out.resolution_a[mask], single.resolution_a[mask]
    return {
        "map_shape": [shape] * 3, "voxel_size_a": voxel_size_a, "mode": "split", "device": device,
        "mask_voxels": int(mask.sum()), "ladder_a": info["ladder_a"],
        "split_seconds_runs": [round(t, 2) for t in times], "split_seconds_median": round(med, 2),
        "single_map_seconds": round(single_s, 2), "goal_seconds": 120.0, "meets_goal": med < 120.0,
        "median_estimate_a": float(np.median(r[r > 0])) if (r > 0).any() else None,
        "single_map_median_estimate_a": float(np.median(rs[rs > 0])) if (rs > 0).any() else None,
        "levels": per_level,
        "reference_loop_seconds_extrapolated": round(ref_total, 1),
        "speedup_over_reference_loop": round(ref_total / med, 1),
    }


def _accuracy(shape: int, device: str) -> dict:
    out = {}
    for pattern in ("radial", "linear", "blobs"):
        ph = make_synthetic_phantom((shape,) * 3, 1.0, (3.0, 8.0), pattern, snr=2.0, seed=11)
        entry: dict = {"shape": [shape] * 3, "voxel_size_a": 1.0, "snr": 2.0,
                       "global_resolution_a": ph.info.get("global_resolution_a")}
        for mode in ("split", "single"):
            inputs = (MethodInputs(1.0, half1=ph.half1, half2=ph.half2, mask=ph.mask, device=device)
                      if mode == "split" else MethodInputs(1.0, map=ph.map, mask=ph.mask, device=device))
            t0 = time.perf_counter()
            est = resmap.run(inputs)
            entry[f"{mode}_seconds"] = round(time.perf_counter() - t0, 2)
            entry[mode] = binned_metrics(est.resolution_a, ph.truth_a, ph.mask, bins_a=BINS_A,
                                         goal_range_a=(3.0, 8.0))
            log.info("%s %s: %s", pattern, mode, entry[mode]["all"])
        out[pattern] = entry
    return out


def main(argv: list[str] | None = None) -> None:
    from locres.core.memory import reuse_freed_memory

    reuse_freed_memory()  # as the entry points do (locres.core.memory)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, default=240)
    ap.add_argument("--voxel-size", type=float, default=0.834)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ref-voxels", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--phantom-shape", type=int, default=64)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--out", default="bench_results/speed_resmap.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    result = {
        "command": " ".join([".venv/bin/python", "-m", "locres.bench.speed_resmap", *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_info(),
        "threads": args.threads,
        "note": "wall times depend on other load on the machine: compare the load averages recorded here",
        "load_average_start": list(np.round(os.getloadavg(), 2)),
    }
    if not args.skip_speed:
        result["speed"] = _speed(args.shape, args.voxel_size, args.runs, args.ref_voxels, args.device)
    result["accuracy"] = _accuracy(args.phantom_shape, args.device)
    result["load_average_end"] = list(np.round(os.getloadavg(), 2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2, default=float))
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
