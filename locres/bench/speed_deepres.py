"""DeepRes inference speed and peak memory on a 240^3 map at 0.834 A, against box-by-box evaluation.

``python -m locres.bench.speed_deepres [--shape 240] [--voxel 0.834] [--runs 3] [--threads 2]``

Each timed run is a fresh subprocess (so its peak resident memory, ``ru_maxrss``, is its own) running
``locres.methods.deepres.run`` (called as the pipeline calls it) on a synthetic phantom, with the given
mask and with the automatic mask.
The baseline is the same net evaluated box by box (``mode=boxes``) on a random subset of the needed box
centres, extrapolated to all of them: both at every model voxel (what a per-voxel box method does) and
on the same stride-s grid the fully convolutional pass evaluates. The net is the shipped model when
present, else the default architecture with random weights (the timing does not depend on the weights).
Writes ``bench_results/speed_deepres.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from locres.io.atomic import atomic_write_text

log = logging.getLogger(__name__)
OUT = Path("bench_results") / "speed_deepres.json"


def _worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from locres.methods import MethodInputs, deepres
    from locres.pipeline.execute import call_method

    volume = np.load(args.map)
    mask = np.load(args.mask) if args.mask != "none" else None
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    inputs = MethodInputs(voxel_size_a=args.voxel, map=volume, mask=mask)
    out = call_method("deepres", deepres, inputs, {"checkpoint": args.ckpt})
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    info = out.info
    sys.stdout.write(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mb": peak_mb,
                                 "seconds_net": info["seconds_net"],
                                 "seconds_prepare": info["seconds_prepare"],
                                 "samples_evaluated": info["samples_evaluated"],
                                 "voxels_estimated": info["voxels_estimated"],
                                 "model_grid_zyx": info["model_grid_zyx"]}) + "\n")


def _box_baseline(volume, voxel_size_a, mask, ckpt, threads: int, n_boxes: int) -> dict:
    """Seconds per box of box-by-box evaluation, and the number of box centres each variant needs."""
    import torch

    torch.set_num_threads(threads)
    from locres.io.checkpoints import load_deepres
    from locres.methods import deepres

    net, meta = load_deepres(ckpt)
    v_model = meta["voxel_size_a"]
    x = deepres.standardise_map(deepres.to_model_grid(volume, voxel_size_a, v_model))
    counts = {}
    for step in (1, net.output_stride):
        coarse = tuple(int(np.ceil(n / step)) + 1 for n in x.shape)
        counts[step] = deepres._needed_samples(mask, voxel_size_a, v_model, x.shape, step, coarse)
    needed = counts[1]
    rng = np.random.default_rng(0)
    idx = np.argwhere(needed)
    sub = np.zeros_like(needed)
    pick = idx[rng.choice(len(idx), size=min(n_boxes, len(idx)), replace=False)]
    sub[pick[:, 0], pick[:, 1], pick[:, 2]] = True
    t0 = time.perf_counter()
    deepres._predict_samples(x, sub, net, 1, "cpu", 0, 256, use_volume=False)
    per_box = (time.perf_counter() - t0) / len(pick)
    return {"seconds_per_box": per_box, "boxes_timed": int(len(pick)),
            "boxes_every_voxel": int(counts[1].sum()),
            "boxes_stride_grid": int(counts[net.output_stride].sum()),
            "output_stride": int(net.output_stride)}


def main(argv: list[str] | None = None) -> None:
    from locres.core.memory import reuse_freed_memory

    reuse_freed_memory()  # as the entry points do (locres.core.memory)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, default=240)
    p.add_argument("--voxel", type=float, default=0.834)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--boxes", type=int, default=4096, help="boxes timed for the box-by-box baseline")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--map"), p.add_argument("--mask"), p.add_argument("--ckpt")
    args = p.parse_args(argv)
    if args.worker:
        _worker(args)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from locres.bench.common import machine_info
    from locres.io.checkpoints import export_slim
    from locres.methods.deepres import DEFAULT_CHECKPOINT
    from locres.models.nets import CompactResNet, count_parameters
    from locres.simulate.phantom import make_synthetic_phantom

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if DEFAULT_CHECKPOINT.is_file():
            ckpt, weights = DEFAULT_CHECKPOINT, "shipped"
        else:
            ckpt, weights = tmp / "random.pt", "random (default architecture; no shipped model yet)"
            export_slim(ckpt, CompactResNet(), 1.0, (2.0, 15.0))
        from locres.io.checkpoints import load_deepres

        net, _ = load_deepres(ckpt)
        t0 = time.perf_counter()
        ph = make_synthetic_phantom((args.shape,) * 3, voxel_size_a=args.voxel, resolution_range_a=(3.0, 8.0),
                                    seed=0)
        log.info("phantom %d^3 made in %.1f s (mask %.1f %%)", args.shape, time.perf_counter() - t0,
                 100 * ph.mask.mean())
        np.save(tmp / "map.npy", ph.map)
        np.save(tmp / "mask.npy", ph.mask)
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        results = {}
        for label, mask_arg in (("given_mask", str(tmp / "mask.npy")), ("automatic_mask", "none")):
            runs = []
            for _ in range(args.runs):
                cmd = [sys.executable, "-m", "locres.bench.speed_deepres", "--worker",
                       "--map", str(tmp / "map.npy"), "--mask", mask_arg, "--ckpt", str(ckpt),
                       "--voxel", str(args.voxel), "--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
                log.info("%s: %.1f s, %.0f MB", label, runs[-1]["seconds"], runs[-1]["peak_rss_mb"])
            results[label] = {
                "seconds_median": statistics.median(r["seconds"] for r in runs),
                "seconds_net_median": statistics.median(r["seconds_net"] for r in runs),
                "cpu_seconds_median": statistics.median(r["cpu_seconds"] for r in runs),
                "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs), "runs": runs,
            }
        base = _box_baseline(ph.map, args.voxel, ph.mask, ckpt, args.threads, args.boxes)
    fc_net = results["given_mask"]["seconds_net_median"]
    fc_total = results["given_mask"]["seconds_median"]
    every = base["seconds_per_box"] * base["boxes_every_voxel"]
    grid = base["seconds_per_box"] * base["boxes_stride_grid"]
    report = {
        "benchmark": "DeepRes inference, fully convolutional chunked pass vs box-by-box, same net",
        "command": f"python -m locres.bench.speed_deepres --shape {args.shape} --voxel {args.voxel} "
                   f"--runs {args.runs} --threads {args.threads}",
        "machine": machine_info(),
        "load_average_1_5_15_min_at_end": list(os.getloadavg()),
        "note": "wall times depend on other load on the machine (see the load average); cpu_seconds is the "
                "run's process CPU time "
                "(user+sys, all threads): on 2 dedicated cores its wall time would lie roughly between "
                "cpu_seconds/2 and cpu_seconds (no I/O inside the timed call)",
        "map": {"shape_zyx": [args.shape] * 3, "voxel_size_a": args.voxel, "kind": "synthetic phantom",
                "mask_fraction": float(ph.mask.mean())},
        "net": {**net.net_config, "parameters": count_parameters(net), "box_size": net.box_size,
                "weights": weights},
        "threads": args.threads, "goal": {"seconds": 30, "peak_memory_gb": 4},
        "fully_convolutional": results,
        "box_by_box_baseline": {**base, "seconds_every_voxel_extrapolated": every,
                                "seconds_stride_grid_extrapolated": grid},
        "speedup_vs_box_every_voxel": {"net_only": every / fc_net,
                                       "whole_run": (every + fc_total - fc_net) / fc_total},
        "speedup_vs_box_same_samples": {"net_only": grid / fc_net},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    log.info("wrote %s: %.1f s median (net %.1f s), peak %.0f MB; box-by-box every voxel %.0f s (x%.0f)",
             args.out, fc_total, fc_net, results["given_mask"]["peak_rss_mb_max"], every, every / fc_net)


if __name__ == "__main__":
    main()
