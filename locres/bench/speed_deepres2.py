"""DeepRes 2 inference speed and peak memory: 240^3 at 0.834 A, single map and half maps.

``python -m locres.bench.speed_deepres2 [--shape 240] [--voxel 0.834] [--runs 3] [--threads 2]``

Each timed run is a fresh subprocess (its peak resident memory is its own) calling ``deepres`` as the
pipeline does (loading the model included) on a synthetic phantom with its mask: the single-map model on
the map, the half-map model on the two halves, and, as the baseline in the same script, the
appearance model on the map. Medians of ``--runs`` runs; the load average is recorded beside them.
Writes ``bench_results/speed_deepres2.json``.
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

log = logging.getLogger(__name__)
OUT = Path("bench_results") / "speed_deepres2.json"


def _worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from locres.methods import MethodInputs, deepres
    from locres.pipeline.execute import call_method

    d = np.load(args.data)
    halves = args.inputs == "halves"
    inputs = MethodInputs(
        voxel_size_a=args.voxel,
        mask=d["mask"],
        map=None if halves else d["map"],
        half1=d["half1"] if halves else None,
        half2=d["half2"] if halves else None,
    )
    t0 = time.perf_counter()
    out = call_method("deepres", deepres, inputs, {"checkpoint": args.ckpt})
    seconds = time.perf_counter() - t0
    r = resource.getrusage(resource.RUSAGE_SELF)
    sys.stdout.write(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": r.ru_utime + r.ru_stime,
                "peak_rss_mb": r.ru_maxrss / 1024.0,
                "info": {k: v for k, v in out.info.items() if k.startswith("seconds")},
            }
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    from locres.core.memory import reuse_freed_memory

    reuse_freed_memory()  # as the entry points do (locres.core.memory)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, default=240)
    p.add_argument("--voxel", type=float, default=0.834)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data"), p.add_argument("--ckpt"), p.add_argument("--inputs")
    args = p.parse_args(argv)
    if args.worker:
        _worker(args)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from locres.bench.common import machine_info
    from locres.methods.deepres import APPEARANCE_CHECKPOINT, FSC_HALVES_CHECKPOINT, FSC_MAP_CHECKPOINT
    from locres.simulate.phantom import make_synthetic_phantom

    ph = make_synthetic_phantom(
        (args.shape,) * 3, voxel_size_a=args.voxel, resolution_range_a=(3.0, 8.0), seed=0
    )
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "phantom.npz"
        np.savez(data, map=ph.map, half1=ph.half1, half2=ph.half2, mask=ph.mask)
        for label, ckpt, inputs in (
            ("deepres2_map", FSC_MAP_CHECKPOINT, "map"),
            ("deepres2_halves", FSC_HALVES_CHECKPOINT, "halves"),
            ("baseline_appearance_model", APPEARANCE_CHECKPOINT, "map"),
        ):
            runs = []
            for _ in range(args.runs):
                cmd = [
                    sys.executable,
                    "-m",
                    "locres.bench.speed_deepres2",
                    "--worker",
                    "--data",
                    str(data),
                    "--ckpt",
                    str(ckpt),
                    "--inputs",
                    inputs,
                    "--voxel",
                    str(args.voxel),
                    "--threads",
                    str(args.threads),
                ]
                load = os.getloadavg()[0]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
                runs.append({**json.loads(out.stdout.strip().splitlines()[-1]), "loadavg_1min_before": load})
                log.info(
                    "%s: %.1f s, %.0f MB (load %.1f)",
                    label,
                    runs[-1]["seconds"],
                    runs[-1]["peak_rss_mb"],
                    load,
                )
            results[label] = {
                "seconds_median": statistics.median(r["seconds"] for r in runs),
                "cpu_seconds_median": statistics.median(r["cpu_seconds"] for r in runs),
                "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs),
                "runs": runs,
            }
    report = {
        "benchmark": "DeepRes 2 inference (model loading included), single map and half maps",
        "command": f"python -m locres.bench.speed_deepres2 --shape {args.shape} --voxel {args.voxel} "
        f"--runs {args.runs} --threads {args.threads}",
        "machine": machine_info(),
        "load_average_1_5_15_min_at_end": list(os.getloadavg()),
        "map": {
            "shape_zyx": [args.shape] * 3,
            "voxel_size_a": args.voxel,
            "kind": "synthetic phantom",
            "mask_fraction": float(ph.mask.mean()),
        },
        "threads": args.threads,
        "goal_seconds": {"deepres2_map": 30, "deepres2_halves": 45},
        "results": results,
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
