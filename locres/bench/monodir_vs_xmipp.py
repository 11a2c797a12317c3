"""MonoDir against the original Xmipp program on held-out phantoms: voxel-by-voxel agreement and time.

    python -m locres.bench.monodir_vs_xmipp --xmipp XMIPP_OUT [--cases 80:112:301 96:128:302]
                                            [--cache DIR] [--variants default reference]

Needs the programs built by ``shared/reference/xmipp/build.sh`` (XMIPP_OUT holds ``mini/`` and ``core/``).
Each case ``M:N:SEED`` is a radial-pattern phantom (3-8 A, SNR 2, voxel 1 A) of M^3 voxels, padded to N^3
with white noise of the map's own noise level (the original needs a noise shell around the particle) and
a mask padded with zeros. Both programs get the map (the half-map average), the mask and the same
parameters: 81 directions, significance 0.95, step 0.5 A, ``--volumeRadius N/2`` (as Scipion passes) and
2 threads. The original's ``--monores`` input (used only for its radial-average table) is the phantom's
truth map. Agreement is over the voxels both estimate, per output map: median |difference| (A), Spearman
and both medians. Variants of ours: ``default`` (never-passed directions left out) and ``reference``
(``keep_never_passed=True``, the reference's behaviour). ``--cache`` keeps the original's outputs per case
(they do not depend on ours). Writes ``bench_results/monodir_vs_xmipp.json`` with the command that made it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from locres.core.maps import MapGeometry
from locres.io.maps import read_map, write_map
from locres.methods import MethodInputs, monodir
from locres.simulate.phantom import make_synthetic_phantom

log = logging.getLogger(__name__)
# our extra map -> the original's output flag
OUTPUTS = {"radial": "--radialRes", "azimuthal": "--azimuthalRes", "highest": "--highestResolutionVol",
           "lowest": "--lowestResolutionVol", "anisotropy": "--doa1", "mean_extremes": "--doa2"}
VARIANTS = {"reference": {"keep_never_passed": True}, "default": {}}


def padded_phantom(m: int, n: int, seed: int) -> dict:
    """The phantom's map, mask and truth (m^3) in the centre of an n^3 box; the pad is white noise."""
    ph = make_synthetic_phantom((m,) * 3, 1.0, (3.0, 8.0), "radial", snr=2.0, seed=seed)
    rng = np.random.default_rng([seed, 1])
    sigma = float(ph.info["noise_sigma_map"])
    vol = (sigma * rng.standard_normal((n,) * 3)).astype(np.float32)
    mask = np.zeros((n,) * 3, bool)
    truth = np.zeros((n,) * 3, np.float32)
    a = n // 2 - m // 2
    sl = (slice(a, a + m),) * 3
    vol[sl], mask[sl], truth[sl] = ph.map, ph.mask, ph.truth_a
    return dict(map=vol, mask=mask, truth=truth)


def run_xmipp(xmipp: Path, case: dict, work: Path, n: int) -> tuple[dict, float]:
    """The original's output maps (name -> array) and its wall time; reuses ``work`` when complete."""
    done = work / "seconds.json"
    if not done.exists():
        work.mkdir(parents=True, exist_ok=True)
        geom = MapGeometry.new(case["map"].shape, 1.0)
        write_map(work / "map.mrc", case["map"], geom)
        write_map(work / "mask.mrc", case["mask"].astype(np.float32), geom)
        write_map(work / "monores.mrc", case["truth"], geom)
        args = ["--vol", work / "map.mrc", "--mask", work / "mask.mrc", "-o", work / "res.mrc",
                "--sampling_rate", "1", "--volumeRadius", str(n / 2), "--significance", "0.95",
                "--resStep", "0.5", "--monores", work / "monores.mrc", "--threads", "2",
                "--radialAzimuthalThresholds", work / "thr.xmd", "--radialAvG", work / "avg.xmd",
                "--prefMin", work / "pref.xmd", "--zScoremap", work / "zscore.mrc"]
        for key, flag in OUTPUTS.items():
            args += [flag, work / f"{key}.mrc"]
        env = dict(os.environ, LD_LIBRARY_PATH=str(xmipp / "core"))
        t0 = time.perf_counter()
        proc = subprocess.run([str(xmipp / "mini" / "xmipp_resolution_directional"), *map(str, args)],
                              capture_output=True, text=True, env=env)
        secs = time.perf_counter() - t0
        (work / "stdout.txt").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not (work / "radial.mrc").exists():
            raise RuntimeError(f"xmipp_resolution_directional failed (see {work / 'stdout.txt'})")
        done.write_text(json.dumps({"seconds": secs}))
    secs = json.loads(done.read_text())["seconds"]
    return {k: read_map(work / f"{k}.mrc").data for k in OUTPUTS}, secs


def agreement(ours: dict, ref: dict, support: np.ndarray, truth: np.ndarray) -> dict:
    """Per output map: median |difference|, Spearman, both medians, over ``support`` & ref > 0."""
    out = {}
    for key in (k for k in OUTPUTS if k in ours):  # an older MonoDir may lack one
        both = support & (ref[key] > 0) if key != "anisotropy" else support & (ref["radial"] > 0)
        a, b = ours[key][both], ref[key][both]
        out[key] = {"voxels": int(both.sum()), "median_abs_diff_a": round(float(np.median(np.abs(a - b))), 4),
                    "spearman": round(float(spearmanr(a, b).statistic), 4),
                    # a map of a few distinct values (ties) can agree almost everywhere at a low Spearman
                    "fraction_equal": round(float(np.mean(np.abs(a - b) < 0.01)), 4),
                    "distinct_values_ours": int(np.unique(np.round(a, 2)).size),
                    "distinct_values_xmipp": int(np.unique(np.round(b, 2)).size),
                    "median_ours_a": round(float(np.median(a)), 4),
                    "median_xmipp_a": round(float(np.median(b)), 4)}
    sel = support & (ref["radial"] > 0)
    out["radial"]["mae_vs_truth_ours_a"] = round(float(np.mean(np.abs(ours["radial"][sel] - truth[sel]))), 4)
    out["radial"]["mae_vs_truth_xmipp_a"] = round(float(np.mean(np.abs(ref["radial"][sel] - truth[sel]))), 4)
    return out


@contextmanager
def sweeps_reused():
    """Within the block, MonoDir's per-direction sweeps are recorded by the first run and replayed by the
    next ones (they do not depend on ``keep_never_passed``; the variants then differ only in their
    summaries). Each run after the first is timed without its sweeps."""
    original = monodir.direction_sweep
    recorded: list = []
    calls = [0]

    def sweep(*args, **kwargs):
        k = calls[0]
        calls[0] += 1
        if k >= len(recorded):
            recorded.append(original(*args, **kwargs))
        return recorded[k]

    def reset():
        calls[0] = 0

    monodir.direction_sweep = sweep
    try:
        yield reset
    finally:
        monodir.direction_sweep = original


def compare_case(xmipp: Path, m: int, n: int, seed: int, cache: Path, variants: list[str]) -> dict:
    case = padded_phantom(m, n, seed)
    ref, secs = run_xmipp(xmipp, case, cache / f"xmipp_{m}_{n}_seed{seed}", n)
    result = {"shape": [n] * 3, "phantom_shape": [m] * 3, "seed": seed, "seconds_xmipp": round(secs, 1),
              "mask_voxels": int(case["mask"].sum()), "voxels_xmipp": int((ref["radial"] > 0).sum())}
    with sweeps_reused() as next_run:
        for i, name in enumerate(variants):
            next_run()
            t0 = time.perf_counter()
            out = monodir.run(MethodInputs(1.0, map=case["map"], mask=case["mask"]), run_monores=False,
                              **VARIANTS[name])
            result[name] = _variant_result(out, ref, case, time.perf_counter() - t0, reused=i > 0)
            log.info("%dx%d seed %d %s: %s", m, n, seed, name, json.dumps(result[name]))
    return result


def _variant_result(out, ref: dict, case: dict, seconds: float, reused: bool) -> dict:
    key = "seconds_ours_sweeps_reused" if reused else "seconds_ours"
    return {key: round(seconds, 1), "voxels_ours": int(out.mask.sum()),
            "never_passed_fraction": round(out.info["never_passed_fraction"], 4),
            "maps": agreement(dict(out.extra_maps), ref, out.mask, case["truth"])}


def main(argv: list[str] | None = None) -> None:
    from locres.core.memory import reuse_freed_memory

    reuse_freed_memory()  # as the entry points do (locres.core.memory)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--xmipp", type=Path, required=True)
    ap.add_argument("--cases", nargs="+", default=["80:112:301", "96:128:302"], help="M:N:SEED each")
    ap.add_argument("--cache", type=Path, default=Path("bench_results/monodir_vs_xmipp_cache"))
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=Path("bench_results/monodir_vs_xmipp.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    load0 = os.getloadavg()
    cases = {}
    for spec in args.cases:
        m, n, seed = (int(v) for v in spec.split(":"))
        cases[f"phantom_{m}_in_{n}_seed{seed}"] = compare_case(args.xmipp, m, n, seed, args.cache,
                                                               args.variants)
    # the command as run, with the machine's own paths named by their roles (no absolute paths kept)
    shown = ["--xmipp", "XMIPP_OUT", "--cases", *args.cases, "--variants", *args.variants]
    result = {"command": "python -m locres.bench.monodir_vs_xmipp " + " ".join(shown),
              "params": {"significance": 0.95, "res_step_a": 0.5, "directions": 81, "threads": 2},
              "cpu_count": os.cpu_count(), "loadavg_start": load0, "loadavg_end": os.getloadavg(),
              "cases": cases}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(args.out)
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
