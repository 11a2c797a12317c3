"""MonoTomo against the original Xmipp program on simulated half tomograms: agreement, accuracy, time.

    python -m locres.bench.monotomo_vs_xmipp --xmipp XMIPP_OUT [--shape 128 512 512]

Needs ``xmipp_resolution_monotomo`` built by ``shared/reference/xmipp/build.sh`` (XMIPP_OUT holds
``mini/`` and ``core/``). A pair from :func:`locres.simulate.tomogram.simulate_half_tomograms` at 10 A/px;
both programs sweep 100 A down to 20 A in 2 A steps at significance 0.95 on 2 threads, one after the
other in this process, each timed as a whole (ours from the arrays in memory, the original from its
files) with the load average beside it: on a shared machine only the ratio means much. Agreement is over
the voxels both estimate (median |difference|, Spearman); accuracy is each one's median error inside the
particles. Writes ``bench_results/monotomo_vs_xmipp.json`` with the command that made it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from locres.core.maps import MapGeometry
from locres.io.maps import read_map, write_map
from locres.methods import monotomo
from locres.simulate.tomogram import simulate_half_tomograms

log = logging.getLogger(__name__)
PARAMS = dict(min_resolution_a=20.0, max_resolution_a=100.0, step_a=2.0, significance=0.95)
VOXEL_A = 10.0


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def run_xmipp(xmipp: Path, h1: Path, h2: Path, work: Path) -> tuple[np.ndarray, dict]:
    """The original on the two files (run in ``work``: it writes ./local.mrc); its map and timing."""
    env = dict(os.environ, LD_LIBRARY_PATH=str(xmipp / "core"))
    # --meanVol is required by the parser and ignored by the program
    args = [str(xmipp / "mini" / "xmipp_resolution_monotomo"), "--vol", str(h1), "--vol2", str(h2),
            "--meanVol", str(h1),
            "-o", str(work / "xmipp.mrc"), "--sampling_rate", str(VOXEL_A),
            "--maxRes", str(PARAMS["max_resolution_a"]), "--minRes", str(PARAMS["min_resolution_a"]),
            "--step", str(PARAMS["step_a"]), "--significance", str(PARAMS["significance"]), "--threads", "2"]
    load0, t0 = _load(), time.perf_counter()
    proc = subprocess.run(args, check=True, capture_output=True, text=True, env=env, cwd=work)
    secs = time.perf_counter() - t0
    steps = proc.stdout.count("resolution = ")
    return read_map(work / "xmipp.mrc").data, {"seconds": round(secs, 1), "loadavg_before": load0,
                                                "loadavg_after": _load(), "sweep_steps": steps}


VARIANTS = {  # stale_ux: the original's y Riesz component; reference_noise: its noise tiles and spline
    "default": {}, "stale_ux": {"riesz_y": "stale_ux"}, "reference_noise": {"noise_surface": "reference"},
    "stale_ux_reference_noise": {"riesz_y": "stale_ux", "noise_surface": "reference"},
}


def run_ours(h1: np.ndarray, h2: np.ndarray, **extra) -> tuple[np.ndarray, np.ndarray, dict]:
    torch.set_num_threads(2)
    load0, t0 = _load(), time.perf_counter()
    out = monotomo.estimate_monotomo(h1, h2, VOXEL_A, **PARAMS, **extra)
    secs = time.perf_counter() - t0
    return out.resolution_a, out.mask, {"seconds": round(secs, 1), "loadavg_before": load0,
                                        "loadavg_after": _load(), "sweep_steps": len(out.info["sweep"])}


def agreement(ours: np.ndarray, ref: np.ndarray, both: np.ndarray, inside: np.ndarray,
              truth: np.ndarray) -> dict:
    return {
        "median_abs_diff_a": float(np.median(np.abs(ours[both] - ref[both]))),
        "spearman": float(spearmanr(ours[both][::7], ref[both][::7]).statistic),
        "particles_median_abs_error_ours_a": float(np.median(np.abs(ours[inside] - truth[inside]))),
        "particles_median_abs_error_xmipp_a": float(np.median(np.abs(ref[inside] - truth[inside]))),
    }


def compare(shape: tuple[int, int, int], xmipp: Path, seed: int, variants: list[str] = ("default",)) -> dict:
    tomo = simulate_half_tomograms(shape, VOXEL_A, (25.0, 35.0, 50.0, 70.0), 8, seed=seed)
    geom = MapGeometry.new(shape, VOXEL_A)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_map(work / "h1.mrc", tomo.half1, geom)
        write_map(work / "h2.mrc", tomo.half2, geom)
        ref, t_x = run_xmipp(xmipp, work / "h1.mrc", work / "h2.mrc", work)
    ours, region, t_o = run_ours(tomo.half1, tomo.half2)
    both = region & (ref > 0)
    inside = both & (tomo.truth_a > 0)
    case = {
        "shape_zyx": list(shape), "seed": seed, "ours": t_o, "xmipp": t_x,
        "speed_ratio_ours_over_xmipp": round(t_o["seconds"] / t_x["seconds"], 2),
        "voxels_both": int(both.sum()),
        **agreement(ours, ref, both, inside, tomo.truth_a),
    }
    for name in variants:
        if name == "default":
            continue
        other, _, t_v = run_ours(tomo.half1, tomo.half2, **VARIANTS[name])
        case[f"variant_{name}"] = {"params": VARIANTS[name], "ours": t_v,
                                   **agreement(other, ref, both, inside, tomo.truth_a)}
    return case


def main(argv: list[str] | None = None) -> None:
    from locres.core.memory import reuse_freed_memory

    reuse_freed_memory()  # as the entry points do (locres.core.memory)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--xmipp", type=Path, required=True)
    ap.add_argument("--shape", type=int, nargs=3, default=[128, 512, 512])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="+", default=["default"], choices=sorted(VARIANTS),
                    help="our runs to compare with the original (default: ours as shipped)")
    ap.add_argument("--out", type=Path, default=Path("bench_results/monotomo_vs_xmipp.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    case = compare(tuple(args.shape), args.xmipp, args.seed, args.variants)
    log.info("%s", case)
    shape = " ".join(str(v) for v in args.shape)  # no machine paths in the committed result
    result = {"command": f"python -m locres.bench.monotomo_vs_xmipp --xmipp XMIPP_OUT --shape {shape} "
                         f"--seed {args.seed} --variants {' '.join(args.variants)}",
              "params": PARAMS, "voxel_size_a": VOXEL_A, "cpu_count": os.cpu_count(), "case": case}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
