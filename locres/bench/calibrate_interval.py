"""Calibrate a DeepRes 2 model's 10-90 % interval on validation-split material (never the test split).

    python -m locres.bench.calibrate_interval MODEL.pt --out CALIBRATED.pt [--maps 40 --seed 5 --cases 48]

Two validation sets, both from the validation-split structures: the ``--maps`` training-recipe maps that
:mod:`locres.bench.select_model` scores (``configs/data/dense.yaml``'s recipe, the model grid) and the
``--cases`` bench phantoms that ``locres.bench.deepres2 --split val`` makes (whole inference path, native
voxel size). Every map weighs the same within its set and the two sets weigh the same, so neither the
larger maps nor the larger set decide alone. The factors of :mod:`locres.models.interval_calibration`
(composed with any the model already carries) are fitted on the pooled voxels, written into a copy of the
model (``--out``; it may be the input file, replaced atomically) and reported with each set's inside
fraction before and after to ``--report`` (JSON; default ``--out`` with ``_calibration.json``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from locres.bench.deepres2 import case_specs, make_case, run_variant, test_pool
from locres.bench.select_model import DEFAULT_RECIPE, recipe_from_yaml
from locres.data.dense import fixed_items
from locres.errors import LocresError
from locres.io.atomic import atomic_write_json
from locres.io.checkpoints import export_with_interval_scale, load_deepres
from locres.methods.deepres_dense import run_net_in_slabs
from locres.models.interval_calibration import inside_fraction, interval_scales, scaled_interval_a

log = logging.getLogger(__name__)


def recipe_map_voxels(net, meta: dict, pool, recipe, n_maps: int, seed: int) -> list[np.ndarray]:
    """Per map, (4, n) arrays lo, mid, hi, truth over the loss mask of the training-recipe maps."""
    items = fixed_items(pool, recipe, meta["inputs"], float(meta["voxel_size_a"]), n_maps, seed,
                        int(getattr(net, "feature_version", 1)))
    out = []
    for item in items:
        q = run_net_in_slabs(net.eval(), item["x"].numpy())
        m = item["mask"].numpy().astype(bool)
        out.append(np.stack([q[0][m], q[1][m], q[2][m], item["truth"].numpy()[m]]))
    return out


def phantom_voxels(model: str, inputs: str, pool, n_cases: int) -> list[np.ndarray]:
    """Per bench phantom (validation split), (4, n) arrays lo, mid, hi, truth over its mask."""
    variant = "deepres2_halves" if inputs == "halves" else "deepres2_map"
    out = []
    for spec in case_specs(n_cases):
        ex = make_case(pool, spec)
        res, info = run_variant(variant, ex, ex.mask, {variant: model})
        extra, m = info["extra"], ex.mask
        out.append(np.stack([extra["lo"][m], np.asarray(res)[m], extra["hi"][m], ex.truth_a[m]]))
    return out


def pooled(sets: dict[str, list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """All voxels of all sets (4, N) and weights: each set 1 / (number of sets), each map equal in it."""
    arrays, weights = [], []
    for maps in sets.values():
        for a in maps:
            arrays.append(a)
            weights.append(np.full(a.shape[1], 1.0 / (len(sets) * len(maps) * a.shape[1])))
    return np.concatenate(arrays, axis=1), np.concatenate(weights)


def inside_by_set(sets: dict[str, list[np.ndarray]], scales: tuple[float, float]) -> dict[str, float]:
    """Mean over each set's maps of the fraction of true values inside the (scaled) interval."""
    out = {}
    for name, maps in sets.items():
        fr = []
        for lo, mid, hi, t in maps:
            lo2, hi2 = scaled_interval_a(lo, mid, hi, scales)
            fr.append(inside_fraction(lo2, hi2, t))
        out[name] = float(np.mean(fr))
    return out


def main(argv: list[str] | None = None) -> None:
    from locres.core.memory import reuse_freed_memory

    reuse_freed_memory()  # as the entry points do (locres.core.memory)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--out", required=True, help="the calibrated model (.pt); may be the input")
    p.add_argument("--report", default=None)
    p.add_argument("--shards", default="runs/training_set")
    p.add_argument("--maps", type=int, default=40)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--cases", type=int, default=48)
    p.add_argument("--recipe", default=str(DEFAULT_RECIPE))
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        net, meta = load_deepres(a.model)
        if meta.get("target") != "fsc_local" or "interval_scale" not in getattr(net, "net_config", {}):
            raise LocresError(f"{a.model} is not a DeepRes 2 quantile model: nothing to calibrate")
        if a.maps < 1 or a.cases < 2:  # the bench's case list needs two (its sharpened and flattened ones)
            raise LocresError("--maps must be at least 1 and --cases at least 2")
        t0 = time.perf_counter()
        pool = test_pool(a.shards, "val")[0]
        sets = {"recipe_maps": recipe_map_voxels(net, meta, pool, recipe_from_yaml(a.recipe), a.maps, a.seed),
                "bench_phantoms": phantom_voxels(a.model, meta["inputs"], pool, a.cases)}
        voxels, weights = pooled(sets)
        q = meta.get("quantiles", [0.1, 0.5, 0.9])
        fit = interval_scales(*voxels, weights=weights, levels=(q[0], q[2]))
        before = [float(s) for s in net.interval_scale]
        total = [before[0] * fit[0], before[1] * fit[1]]
        report = {
            "command": "python -m locres.bench.calibrate_interval "
                       + " ".join(argv if argv is not None else sys.argv[1:]),
            "split": "val", "levels": [q[0], q[2]],
            "sets": {"recipe_maps": {"maps": a.maps, "seed": a.seed, "recipe": Path(a.recipe).name},
                     "bench_phantoms": {"cases": a.cases}},
            "weighting": "each set half, each map equal within its set",
            "scale_before": before, "fitted_factor": list(fit), "interval_scale": total,
            "inside_before": inside_by_set(sets, (1.0, 1.0)), "inside_after": inside_by_set(sets, fit),
            "seconds": round(time.perf_counter() - t0, 1),
            "loadavg": open("/proc/loadavg").read().split()[:3],
        }
        export_with_interval_scale(a.model, a.out, total, report)
    except LocresError as e:
        sys.exit(f"error: {e}")
    atomic_write_json(Path(a.report or str(Path(a.out).with_suffix("")) + "_calibration.json"), report)
    print(f"interval_scale {total[0]:.3f} {total[1]:.3f}; inside before {report['inside_before']}, "
          f"after {report['inside_after']}")


if __name__ == "__main__":
    main()
