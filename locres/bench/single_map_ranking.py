"""Where does a single map let the model rank the truth within the map, and where not?

    python -m locres.bench.single_map_ranking [--split val] [--cases 48] [--checkpoint FILE.pt|.ckpt]
        [--out FILE.json]

On the bench's phantom case list (:mod:`locres.bench.deepres2`, validation split by default: this is a
study for model work), per case the within-map Spearman with the truth over the mask of

- the single-map model (the shipped one, or ``--checkpoint``),
- the half-map model on the same phantom's halves (what a noise reference adds),
- the plain floor crossing: the resolution at which each band's local power against its noise floor first
  falls below ``1 + 0.33`` (the feature-version-6 channel, :func:`locres.models.features.floor_crossings_a`),
  brought onto the map's grid the way the model's output is,

beside the truth's spread over the mask (its interquartile range: a field that varies by 0.1 A is hard to
rank from one noisy map whatever the method), and their means by SNR, by field pattern and overall.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from locres.bench.deepres2 import case_specs, make_case, run_variant, test_pool
from locres.bench.groundtruth import spearman
from locres.core.maps import to_model_grid
from locres.io.atomic import atomic_write_json
from locres.methods.deepres_dense import half_grid_to_input_grid
from locres.models.features import BAND_RESOLUTIONS_A, band_energies, floor_crossings_a, noise_floors

MODEL_VOXEL_A = 1.0  # the shipped dense models' grid


def floor_crossing_map_a(map_zyx: np.ndarray, voxel_size_a: float, ssnr: float = 0.33) -> np.ndarray:
    """The plain floor crossing at ``ssnr`` (Angstrom) on the map's own grid."""
    energies = band_energies(to_model_grid(map_zyx, voxel_size_a, MODEL_VOXEL_A), MODEL_VOXEL_A)
    (cross,) = floor_crossings_a(energies, noise_floors(energies), BAND_RESOLUTIONS_A, (ssnr,))
    return half_grid_to_input_grid(cross, voxel_size_a, MODEL_VOXEL_A, map_zyx.shape)


def ranking_rows(shards: str, split: str, n_cases: int, checkpoint: str | None) -> list[dict]:
    pool, _ = test_pool(shards, split)
    rows = []
    for spec in case_specs(n_cases):
        ex = make_case(pool, spec)
        m, t = ex.mask, ex.truth_a[ex.mask]
        single, _ = run_variant("deepres2_map", ex, m, {"deepres2_map": checkpoint} if checkpoint else None)
        halves, _ = run_variant("deepres2_halves", ex, m)
        crossing = floor_crossing_map_a(ex.map, ex.voxel_size_a)
        q25, q75 = np.percentile(t, [25, 75])
        rows.append({
            "name": spec["name"], "kind": spec["kind"], "snr": spec["snr"], "pattern": spec["pattern"],
            "voxel_size_a": spec["voxel_size_a"], "truth_median_a": float(np.median(t)),
            "truth_iqr_a": float(q75 - q25),
            "spearman": {"single_map_model": spearman(single[m], t),  # NaN for a constant estimate
                         "half_map_model": spearman(halves[m], t),
                         "floor_crossing": spearman(crossing[m], t)},
        })
    return rows


def group_means(rows: list[dict]) -> dict:
    def means(sel):
        keys = sel[0]["spearman"] if sel else {}
        return {"cases": len(sel), **{k: float(np.nanmean([r["spearman"][k] for r in sel])) for k in keys},
                "truth_iqr_a_median": float(np.median([r["truth_iqr_a"] for r in sel]))}

    out = {"all": means(rows)}
    for key in ("snr", "pattern", "kind"):
        for v in sorted({r[key] for r in rows}, key=str):
            out[f"{key} {v}"] = means([r for r in rows if r[key] == v])
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shards", default="runs/training_set")
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("--cases", type=int, default=48)
    p.add_argument("--checkpoint", default=None,
                   help="a single-map model file (.pt or .ckpt) to study in place of the shipped one")
    p.add_argument("--out", default="runs/single_map_ranking.json")
    a = p.parse_args(argv)
    if a.checkpoint and not Path(a.checkpoint).is_file():
        p.error(f"--checkpoint: no file {a.checkpoint}")
    t0 = time.perf_counter()
    rows = ranking_rows(a.shards, a.split, a.cases, a.checkpoint)
    result = {
        "command": "python -m locres.bench.single_map_ranking "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "split": a.split, "seconds": round(time.perf_counter() - t0, 1),
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "means": group_means(rows), "cases": rows,
    }
    atomic_write_json(Path(a.out), result)
    print(json.dumps(result["means"], indent=1))


if __name__ == "__main__":
    main()
