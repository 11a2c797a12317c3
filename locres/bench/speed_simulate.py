"""Simulation throughput: atomic models -> density maps at 1 A voxel.

``python -m locres.bench.speed_simulate [MODELS_DIR] [--runs N]`` reads every model in ``MODELS_DIR``
(default ../shared/data/models), simulates each centred in its own box
(:func:`locres.simulate.density.simulate_map_centered`, 10 A padding) at 1 A voxel, and reports models
per minute (median of ``--runs`` passes) in ``bench_results/speed_simulate.json``. The baseline,
measured in the same script, is parsing the models alone (no density), so the simulation's own cost is
the difference. One process, one thread for the FFT-free gemmi calculator.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from locres.errors import LocresError
from locres.io.atomic import atomic_write_bytes
from locres.io.models import is_model_file, read_structure
from locres.simulate.density import simulate_map_centered

log = logging.getLogger(__name__)


def _one_pass(paths: list[Path], voxel_size_a: float, simulate: bool) -> tuple[float, int, list[int]]:
    t0 = time.perf_counter()
    ok, voxels = 0, []
    for p in paths:
        try:
            st = read_structure(p)
        except LocresError as exc:
            log.warning("skipped %s: %s", p.name, exc)
            continue
        if simulate:
            vol = simulate_map_centered(st, voxel_size_a)
            voxels.append(int(np.prod(vol.data.shape)))
        ok += 1
    return time.perf_counter() - t0, ok, voxels


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models_dir", nargs="?", default=str(repo.parent / "shared" / "data" / "models"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--voxel", type=float, default=1.0)
    args = ap.parse_args(argv)
    paths = sorted(p for p in Path(args.models_dir).iterdir() if is_model_file(p))
    if not paths:
        raise SystemExit(f"error: no atomic models in {args.models_dir}")
    sim_times, parse_times = [], []
    for i in range(args.runs):
        t_parse, n_ok, _ = _one_pass(paths, args.voxel, simulate=False)
        t_sim, n_sim, voxels = _one_pass(paths, args.voxel, simulate=True)
        parse_times.append(t_parse)
        sim_times.append(t_sim)
        log.info("run %d: parse %.1f s, parse+simulate %.1f s for %d models", i + 1, t_parse, t_sim, n_sim)
    med_sim, med_parse = statistics.median(sim_times), statistics.median(parse_times)
    report = {
        "what": "atomic model -> density map (gemmi electron scattering factors), centred box, 10 A padding",
        "command": f"python -m locres.bench.speed_simulate --runs {args.runs} --voxel {args.voxel}",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"node": platform.node(), "cpu": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "shared_machine": "yes: other engineers' tests and trainings ran on the same 2 cores",
        "models": len(paths), "models_simulated": n_sim, "voxel_size_a": args.voxel, "runs": args.runs,
        "seconds_per_run": [round(t, 2) for t in sim_times],
        "median_seconds": round(med_sim, 2),
        "models_per_minute": round(60.0 * n_sim / med_sim, 1),
        "models_per_minute_best_run": round(60.0 * n_sim / min(sim_times), 1),
        "box_voxels": {"median": int(np.median(voxels)), "max": int(np.max(voxels))},
        "baseline_parse_only": {"seconds_per_run": [round(t, 2) for t in parse_times],
                                "median_seconds": round(med_parse, 2),
                                "models_per_minute": round(60.0 * n_ok / med_parse, 1)},
        "simulation_only_models_per_minute": round(60.0 * n_sim / max(med_sim - med_parse, 1e-9), 1),
    }
    out = repo / "bench_results" / "speed_simulate.json"
    atomic_write_bytes(out, (json.dumps(report, indent=1) + "\n").encode())
    print(f"{n_sim} models at {args.voxel} A: {report['models_per_minute']} models/min "
          f"(median of {args.runs}; parse only {report['baseline_parse_only']['models_per_minute']}/min)")


if __name__ == "__main__":
    main()
