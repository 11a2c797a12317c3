"""Speed and accuracy of MonoRes, MonoDir and MonoTomo.

Run: ``.venv/bin/python -m locres.bench.speed_mono`` (many minutes on 2 busy cores); writes
``bench_results/speed_mono.json``.

1. MonoRes on a 240^3 map at 0.834 A (a sphere of radius 0.4 n of point "atoms" low-passed to 3.5 A,
   white noise everywhere, the sphere as mask): single map and half maps (issue 13 goals: < 30 s and
   < 45 s; the original took 42 s on the half maps). Baseline measured
   in the same script: the same amplitudes computed one FFT per volume and component in numpy (pocketfft,
   single thread), i.e. an unbatched float64 port.
2. MonoDir on a 128^3 map at 1 A (goal < 5 min).
3. MonoTomo on 512 x 512 x 128 simulated half tomograms at 10 A, 20-100 A in steps of 2 A (issue 13:
   the original 62 s; goal < 60 s), with the reference's sweep schedule (23 bands) by default.
4. dfsc (directional FSC, 250 cones) on the 240^3 half maps of part 1 (goal < 30 s).
5. MonoRes accuracy on synthetic phantoms with known local resolution (radial, linear, blobs; 3-8 A;
   64^3 at 1 A; snr 2): MAE, bias, Spearman per true-resolution bin, half maps and single map.

Wall times are medians of ``--runs`` runs; process CPU seconds are reported beside them because the
machine is shared (CPU seconds / threads estimates the wall time on an idle machine).
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
from locres.core.fourier import frequency_grid_per_a, lowpass_raised_cosine
from locres.io.atomic import atomic_write_text
from locres.methods import MethodInputs, dfsc, monodir, monores, monotomo
from locres.methods.monogenic import centred_radius
from locres.simulate.phantom import make_synthetic_phantom
from locres.simulate.tomogram import simulate_half_tomograms

log = logging.getLogger(__name__)
BINS_A = [(3.0, 4.0), (4.0, 5.0), (5.0, 6.0), (6.0, 7.0), (7.0, 8.01)]


def atom_sphere_map(n: int, voxel_size_a: float, resolution_a: float, radius_frac: float = 0.4,
                    noise_sd: float = 0.5, seed: int = 0):
    """(half1, half2, mask): point atoms in a sphere low-passed to ``resolution_a``, plus white noise."""
    rng = np.random.default_rng(seed)
    rad = centred_radius((n, n, n))
    mask = rad < radius_frac * n
    vol = np.zeros((n, n, n), np.float32)
    n_atoms = int(0.1 * mask.sum())
    idx = np.flatnonzero(mask.ravel())[rng.integers(0, int(mask.sum()), n_atoms)]
    np.add.at(vol.reshape(-1), idx, 1.0)
    sig = lowpass_raised_cosine(vol, voxel_size_a, resolution_a)
    sig /= sig[mask].std()
    halves = [sig + noise_sd * rng.standard_normal(sig.shape, dtype=np.float32) for _ in range(2)]
    return halves[0], halves[1], mask


def _timed(fn, runs: int) -> tuple[list[float], list[float], object]:
    walls, cpus, out = [], [], None
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(round(time.perf_counter() - t0, 2))
        cpus.append(round(time.process_time() - c0, 2))
    return walls, cpus, out


def _numpy_baseline_seconds(volume: np.ndarray, n_bands: int) -> float:
    """Seconds for ``n_bands`` amplitude evaluations done one volume and component at a time in numpy."""
    freq = frequency_grid_per_a(volume.shape, 1.0)
    spec = np.fft.rfftn(volume.astype(np.float64))
    comps = [np.fft.fftfreq(volume.shape[0])[:, None, None], np.fft.fftfreq(volume.shape[1])[None, :, None],
             np.fft.rfftfreq(volume.shape[2])[None, None, :]]
    inv = np.where(freq > 0, 1.0 / np.maximum(freq, 1e-12), 0.0)
    t0 = time.perf_counter()
    for b in range(n_bands):
        f = 0.05 + 0.4 * b / max(n_bands, 1)
        h = np.clip((freq - f + 0.02) / 0.02, 0, 1)
        fh = spec * h
        amp = np.fft.irfftn(fh, s=volume.shape, axes=(0, 1, 2)) ** 2
        for c in comps:
            amp += np.fft.irfftn(fh * (-1j) * c * inv, s=volume.shape, axes=(0, 1, 2)) ** 2
        amp = np.sqrt(amp)
        np.fft.irfftn(np.fft.rfftn(amp) * (freq < f + 0.02), s=volume.shape, axes=(0, 1, 2))
    return time.perf_counter() - t0


def bench_monores(n: int, voxel_size_a: float, runs: int, baseline_bands: int) -> dict:
    h1, h2, mask = atom_sphere_map(n, voxel_size_a, 3.5)
    single = MethodInputs(voxel_size_a, map=h1, mask=mask)
    halves = MethodInputs(voxel_size_a, half1=h1, half2=h2, mask=mask)
    w1, c1, o1 = _timed(lambda: monores.run(single), runs)
    w2, c2, o2 = _timed(lambda: monores.run(halves), runs)
    n_it = len(o1.info["sweep"])
    base = _numpy_baseline_seconds(h1, baseline_bands)
    return {
        "map_shape": [n] * 3, "voxel_size_a": voxel_size_a, "true_resolution_a": 3.5,
        "single_map": {"wall_s_runs": w1, "cpu_s_runs": c1, "wall_s_median": float(np.median(w1)),
                       "iterations": n_it, "median_estimate_a": o1.info["median_a"]},
        "half_maps": {"wall_s_runs": w2, "cpu_s_runs": c2, "wall_s_median": float(np.median(w2)),
                      "iterations": len(o2.info["sweep"]), "median_estimate_a": o2.info["median_a"]},
        "goal_s": {"single_map": 30.0, "half_maps": 45.0}, "original_half_maps_s": 42.0,
        "meets_goal_single_map": float(np.median(w1)) < 30.0,
        "meets_goal_half_maps": float(np.median(w2)) < 45.0,
        "baseline": {"what": "numpy float64 amplitudes, one FFT per volume and component (pocketfft)",
                     "bands_timed": baseline_bands, "seconds": round(base, 2),
                     "extrapolated_single_map_s": round(base / baseline_bands * n_it, 1)},
    }


def bench_monodir(n: int, voxel_size_a: float, runs: int, fast: bool) -> dict:
    h1, _, mask = atom_sphere_map(n, voxel_size_a, 4.0, radius_frac=0.3, noise_sd=0.3, seed=1)
    inputs = MethodInputs(voxel_size_a, map=h1, mask=mask)
    w, c, o = _timed(lambda: monodir.run(inputs, fast=fast, run_monores=True), runs)
    return {"map_shape": [n] * 3, "voxel_size_a": voxel_size_a, "true_resolution_a": 4.0,
            "n_directions": o.info["n_directions"], "wall_s_runs": w, "cpu_s_runs": c,
            "wall_s_median": float(np.median(w)), "goal_s": 120.0,
            "meets_goal": float(np.median(w)) < 120.0,
            "median_estimate_a": o.info["median_a"], "median_anisotropy_a": o.info["median_anisotropy_a"]}


TOMO_RANGE_A = (20.0, 100.0, 2.0)


def bench_monotomo(shape: tuple[int, int, int], voxel_size_a: float, runs: int,
                   sweep_grid: str = "z") -> dict:
    ph = simulate_half_tomograms(shape, voxel_size_a, (25.0, 30.0, 35.0, 40.0, 50.0, 60.0), 10, seed=3)
    inputs = MethodInputs(voxel_size_a, half1=ph.half1, half2=ph.half2)
    lo, hi, step = TOMO_RANGE_A
    w, c, o = _timed(lambda: monotomo.run(inputs, min_resolution_a=lo, max_resolution_a=hi, step_a=step,
                                          sweep_grid=sweep_grid), runs)
    zz, yy, xx = np.ogrid[:shape[0], :shape[1], :shape[2]]
    per = []
    for p in ph.particles:
        cz, cy, cx = p["centre_zyx"]
        core = (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= (p["radius_px"] - 2) ** 2
        per.append({"truth_a": p["resolution_a"],
                    "median_estimate_a": float(np.median(o.resolution_a[core]))})
    return {"shape_zyx": list(shape), "voxel_size_a": voxel_size_a, "min_resolution_a": lo,
            "max_resolution_a": hi, "step_a": step, "sweep_grid": sweep_grid, "wall_s_runs": w,
            "cpu_s_runs": c, "wall_s_median": float(np.median(w)), "goal_s": 60.0,
            "original_s": 62.0, "meets_goal": float(np.median(w)) < 60.0,
            "iterations": len(o.info["sweep"]), "particles": per}


def bench_dfsc(n: int, voxel_size_a: float, runs: int) -> dict:
    h1, h2, mask = atom_sphere_map(n, voxel_size_a, 3.5)
    inputs = MethodInputs(voxel_size_a, half1=h1, half2=h2, mask=mask)
    w, c, o = _timed(lambda: dfsc.run(inputs), runs)
    return {"map_shape": [n] * 3, "voxel_size_a": voxel_size_a, "true_resolution_a": 3.5,
            "n_directions": o.info["n_directions"], "wall_s_runs": w, "cpu_s_runs": c,
            "wall_s_median": float(np.median(w)), "goal_s": 30.0, "meets_goal": float(np.median(w)) < 30.0,
            "global_resolution_a": o.info["global_resolution_a"], "sphericity": o.info["sphericity"]}


def accuracy_monores(shape: int) -> dict:
    out = {}
    for pattern in ("radial", "linear", "blobs"):
        ph = make_synthetic_phantom((shape,) * 3, 1.0, (3.0, 8.0), pattern, snr=2.0, seed=11)
        entry: dict = {"shape": [shape] * 3, "voxel_size_a": 1.0, "snr": 2.0}
        for mode in ("halves", "single"):
            inputs = (MethodInputs(1.0, half1=ph.half1, half2=ph.half2, mask=ph.mask) if mode == "halves"
                      else MethodInputs(1.0, map=ph.map, mask=ph.mask))
            t0 = time.perf_counter()
            est = monores.run(inputs)
            entry[f"{mode}_seconds"] = round(time.perf_counter() - t0, 2)
            entry[mode] = binned_metrics(est.resolution_a, ph.truth_a, ph.mask & est.mask, bins_a=BINS_A,
                                         goal_range_a=(3.0, 8.0))
            entry[f"{mode}_coverage"] = round(float((est.mask & ph.mask).sum() / ph.mask.sum()), 4)
            log.info("%s %s: %s", pattern, mode, entry[mode]["all"])
        out[pattern] = entry
    return out


def main(argv: list[str] | None = None) -> None:
    from locres.core.memory import reuse_freed_memory

    reuse_freed_memory()  # as the entry points do (locres.core.memory)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--monores-shape", type=int, default=240)
    ap.add_argument("--monodir-shape", type=int, default=128)
    ap.add_argument("--monodir-fast", action="store_true")
    ap.add_argument("--tomo-shape", type=int, nargs=3, default=[128, 512, 512])
    ap.add_argument("--tomo-sweep-grid", default="z", choices=["z", "longest"])
    ap.add_argument("--dfsc-shape", type=int, default=240)
    ap.add_argument("--phantom-shape", type=int, default=64)
    ap.add_argument("--baseline-bands", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=["monores", "monodir", "monotomo", "dfsc", "accuracy"])
    ap.add_argument("--out", default="bench_results/speed_mono.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    path = Path(args.out)
    result = json.loads(path.read_text()) if path.exists() else {}
    result.update({
        "command": " ".join([".venv/bin/python", "-m", "locres.bench.speed_mono", *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(), "threads": args.threads,
        "note": "wall times depend on other load on the machine: compare the load averages recorded here",
        "load_average_start": list(np.round(os.getloadavg(), 2)),
        "allocator": ("glibc keeps freed large blocks for reuse (locres.core.memory)" if reuse_freed_memory()
                      else "the C library's default"),
    })
    for part in args.only:
        t0 = time.perf_counter()
        load_before = list(np.round(os.getloadavg(), 2))
        if part == "monores":
            result["monores_speed"] = bench_monores(args.monores_shape, 0.834, args.runs, args.baseline_bands)
        elif part == "monodir":
            result["monodir_speed"] = bench_monodir(args.monodir_shape, 1.0, 1, args.monodir_fast)
        elif part == "monotomo":
            result["monotomo_speed"] = bench_monotomo(tuple(args.tomo_shape), 10.0, max(1, args.runs - 1),
                                                      args.tomo_sweep_grid)
        elif part == "dfsc":
            result["dfsc_speed"] = bench_dfsc(args.dfsc_shape, 0.834, args.runs)
        elif part == "accuracy":
            result["monores_accuracy"] = accuracy_monores(args.phantom_shape)
        key = {"monores": "monores_speed", "monodir": "monodir_speed", "monotomo": "monotomo_speed",
               "dfsc": "dfsc_speed", "accuracy": "monores_accuracy"}[part]
        result[key]["threads"] = args.threads
        result[key]["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
        result[key]["load_average_before"] = load_before
        log.info("%s done in %.0f s", part, time.perf_counter() - t0)
        result["load_average_end"] = list(np.round(os.getloadavg(), 2))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
