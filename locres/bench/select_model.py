"""Choose between DeepRes 2 checkpoints on validation-split maps only (never the test split).

``python -m locres.bench.select_model A.pt B.ckpt ... --shards runs/training_set --maps 40 --seed 5``

Every checkpoint is scored on the same ``--maps`` training-recipe maps (:mod:`locres.data.dense`'s
fixed evaluation set, from the validation-split structures, rng ``--seed``), each through its own
feature version, on the model grid's half-resolution grid as in training: per map the MAE and bias
of the median and the fraction of true values inside the 10-90 % interval over the loss mask; the
summary is the mean over maps (and the median map MAE). The recipe is ``recipe:`` of
``configs/data/dense.yaml`` (the one the shipped models train on) unless ``--recipe`` names another YAML
file (its ``recipe:`` key, or its top level). Writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from locres.bench.deepres2 import test_pool
from locres.data.dense import StructurePool, fixed_items
from locres.errors import LocresError
from locres.io.atomic import atomic_write_json
from locres.io.checkpoints import load_deepres
from locres.methods.deepres_dense import run_net_in_slabs
from locres.simulate.training_maps import TrainingMapRecipe

DEFAULT_RECIPE = Path(__file__).resolve().parents[2] / "configs" / "data" / "dense.yaml"


def recipe_from_yaml(path: str | Path = DEFAULT_RECIPE) -> TrainingMapRecipe:
    """The training-map recipe of a YAML file (its ``recipe:`` key, or its top level)."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    return TrainingMapRecipe.from_mapping(raw.get("recipe", raw))


def map_scores(quantiles_a: np.ndarray, truth_a: np.ndarray, mask: np.ndarray) -> dict:
    """(3, ...) quantiles against the truth over ``mask``: MAE and bias of the median, and the fractions of
    true values inside, below and above the interval."""
    lo, mid, hi = (q[mask] for q in quantiles_a)
    t = truth_a[mask]
    return {"mae_a": float(np.mean(np.abs(mid - t))), "bias_a": float(np.mean(mid - t)),
            "inside": float(np.mean((t >= lo) & (t <= hi))), "below": float(np.mean(t < lo)),
            "above": float(np.mean(t > hi))}


def score_checkpoint(path: str, pool: StructurePool, recipe: TrainingMapRecipe, n_maps: int,
                     seed: int) -> dict:
    net, meta = load_deepres(path)
    if meta.get("target") != "fsc_local":
        raise LocresError(f"{path} is not a DeepRes 2 (expected-local-FSC) model")
    items = fixed_items(pool, recipe, meta["inputs"], float(meta["voxel_size_a"]), n_maps, seed,
                        int(getattr(net, "feature_version", 1)))
    per_map = []
    for item in items:
        q = run_net_in_slabs(net.eval(), item["x"].numpy())
        per_map.append(map_scores(q, item["truth"].numpy(), item["mask"].numpy().astype(bool)))
    maes = [m["mae_a"] for m in per_map]
    return {"inputs": meta["inputs"], "maps": len(per_map), "mae_a": float(np.mean(maes)),
            "median_map_mae_a": float(np.median(maes)),
            "bias_a": float(np.mean([m["bias_a"] for m in per_map])),
            "inside": float(np.mean([m["inside"] for m in per_map])), "per_map": per_map}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--shards", default="runs/training_set")
    p.add_argument("--maps", type=int, default=40)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--recipe", default=str(DEFAULT_RECIPE))
    p.add_argument("--out", default=None, help="JSON file for the scores (default: print only)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    pool, recipe = test_pool(a.shards, "val")[0], recipe_from_yaml(a.recipe)
    t0 = time.perf_counter()
    scores = {c: score_checkpoint(c, pool, recipe, a.maps, a.seed) for c in a.checkpoints}
    for c, s in scores.items():
        print(f"{c}: MAE {s['mae_a']:.3f} A (median map {s['median_map_mae_a']:.3f}), "
              f"bias {s['bias_a']:+.3f} A, inside 10-90 % {100 * s['inside']:.1f} %  ({s['maps']} maps)")
    if a.out:
        cmd = "python -m locres.bench.select_model " + " ".join(argv if argv is not None else sys.argv[1:])
        atomic_write_json(Path(a.out), {
            "command": cmd, "split": "val", "maps": a.maps, "seed": a.seed,
            "seconds": round(time.perf_counter() - t0, 1),
            "loadavg": open("/proc/loadavg").read().split()[:3], "scores": scores})


if __name__ == "__main__":
    main()
