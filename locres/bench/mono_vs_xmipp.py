"""MonoRes against the original Xmipp program on held-out phantoms: voxel-by-voxel agreement and time.

    python -m locres.bench.mono_vs_xmipp --xmipp XMIPP_OUT [--n 64] [--seeds 101]

Needs the programs built by ``shared/reference/xmipp/build.sh`` (XMIPP_OUT holds ``mini/`` and ``core/``).
Both run with the coarse end 15 A, step 0.5 A, significance 0.95, on half maps in both of the
original's modes (its default, and ``--noiseonlyinhalves`` against ours with ``noise_only_in_halves=True``)
and on the half-map average as one map.
Agreement is over the voxels both estimate: median |difference| (A) and Spearman. Writes
``bench_results/mono_vs_xmipp.json`` with the command that made it.
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
from scipy.stats import spearmanr

from locres.core.maps import MapGeometry
from locres.io.maps import read_map, write_map
from locres.methods import MethodInputs, monores
from locres.simulate.phantom import make_synthetic_phantom

log = logging.getLogger(__name__)
PARAMS = dict(max_resolution_a=15.0, step_a=0.5, significance=0.95)


def _xmipp(binary: Path, args: list[str], lib: Path) -> float:
    env = dict(os.environ, LD_LIBRARY_PATH=str(lib))
    t0 = time.perf_counter()
    subprocess.run([str(binary), *args], check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def compare_case(xmipp: Path, n: int, seed: int, work: Path) -> dict:
    ph = make_synthetic_phantom((n,) * 3, 1.0, (3.0, 8.0), "radial", snr=2.0, seed=seed)
    geom = MapGeometry.new((n,) * 3, 1.0)
    avg = 0.5 * (ph.half1 + ph.half2)
    for name, arr in (("h1", ph.half1), ("h2", ph.half2), ("avg", avg), ("mask", ph.mask.astype(np.float32))):
        write_map(work / f"{name}.mrc", arr.astype(np.float32), geom)
    out = {}
    for mode, flags, extra in (("half maps", [], {}),
                               ("half maps, noise only in the mask", ["--noiseonlyinhalves"],
                                {"noise_only_in_halves": True}),
                               ("single map", [], {})):
        odir = work / mode.replace(" ", "_").replace(",", "")
        odir.mkdir()
        halves = mode.startswith("half maps")
        vol = ["--vol", str(work / "h1.mrc"), "--vol2", str(work / "h2.mrc"), *flags] \
            if halves else ["--vol", str(work / "avg.mrc")]
        secs = _xmipp(xmipp / "mini" / "xmipp_resolution_monogenic_signal",
                      [*vol, "--mask", str(work / "mask.mrc"), "-o", str(odir), "--sampling_rate", "1",
                       "--maxRes", "15", "--minRes", "2", "--step", "0.5", "--significance", "0.95",
                       "--threads", "2"], xmipp / "core")
        ref = read_map(odir / "monoresResolutionMap.mrc").data
        inputs = (MethodInputs(1.0, half1=ph.half1, half2=ph.half2, mask=ph.mask) if halves
                  else MethodInputs(1.0, map=avg, mask=ph.mask))
        t0 = time.perf_counter()
        ours = monores.run(inputs, **PARAMS, **extra)
        ours_s = time.perf_counter() - t0
        kept = monores.run(inputs, **PARAMS, **extra, keep_never_passed=True)
        both = ours.mask & (ref > 0)
        a, b = ours.resolution_a[both], ref[both]
        both_k = kept.mask & (ref > 0)
        truth = ph.truth_a
        out[mode] = {
            "voxels_both": int(both.sum()), "voxels_xmipp": int((ref > 0).sum()),
            "voxels_ours": int(ours.mask.sum()), "never_passed_voxels": ours.info["never_passed_voxels"],
            "median_abs_diff_a": float(np.median(np.abs(a - b))),
            "spearman": float(spearmanr(a, b).statistic),
            "median_abs_diff_keep_never_passed_a": float(np.median(np.abs(kept.resolution_a[both_k]
                                                                         - ref[both_k]))),
            "mae_vs_truth_ours_a": float(np.mean(np.abs(a - truth[both]))),
            "mae_vs_truth_xmipp_a": float(np.mean(np.abs(b - truth[both]))),
            "seconds_ours": round(ours_s, 2), "seconds_xmipp": round(secs, 2),
        }
        log.info("seed %d %s: %s", seed, mode, out[mode])
    return out


def main(argv: list[str] | None = None) -> None:
    from locres.core.memory import reuse_freed_memory

    reuse_freed_memory()  # as the entry points do (locres.core.memory)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--xmipp", type=Path, required=True)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--seeds", type=int, nargs="+", default=[101])
    ap.add_argument("--out", type=Path, default=Path("bench_results/mono_vs_xmipp.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cases = {}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            cases[f"phantom_{args.n}_seed{seed}"] = compare_case(args.xmipp, args.n, seed, Path(tmp))
    shown = ["--xmipp", "XMIPP_OUT", "--n", str(args.n), "--seeds", *map(str, args.seeds)]  # no machine paths
    result = {"command": "python -m locres.bench.mono_vs_xmipp " + " ".join(shown),
              "params": PARAMS, "cpu_count": os.cpu_count(), "loadavg": os.getloadavg(), "cases": cases}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
