"""Single-map models on held-out maps filtered as EMD-3488 is: sharpened, steep soft low pass, flattened.

    python -m locres.bench.deposited_filters --shards runs/training_set [--checkpoints A.pt B.pt]
    python -m locres.bench.deposited_filters --split val --checkpoints A.pt B.pt   # may choose between models

Maps from the *test-split* structures, or with ``--split val`` the validation-split ones (written to
``runs/deposited_filters_val.json`` unless ``--out``), made by
:func:`locres.simulate.training_maps.make_training_example` with the training recipe of
``configs/data/dense.yaml``, forced to: global B -120 to -80 A^2, a Butterworth low pass of order 18-22 at
the 20-30th percentile of the truth, solvent flattening, SNR 1-3, 1.0-1.1 A/px; fixed seed. For each map:
the truth's median and each model's median over the mask. The test split writes
``bench_results/deepres2/deposited_filters.json``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from locres.bench.deepres2 import test_pool
from locres.bench.select_model import recipe_from_yaml
from locres.data.dense import example_to_item
from locres.io.atomic import atomic_write_json
from locres.io.checkpoints import load_deepres
from locres.simulate.training_maps import make_training_example

log = logging.getLogger(__name__)
FORCED = dict(p_global_lowpass=1.0, p_soft_lowpass=1.0, butterworth_order_range=(18.0, 22.0),
              lowpass_percentile_range=(20.0, 30.0), p_global_bfactor=1.0,
              global_bfactor_range_a2=(-120.0, -80.0),
              p_solvent_flatten=1.0, p_flatten_halves=0.0, p_fsc_weighting=0.0, voxel_size_range_a=(1.0, 1.1),
              snr_range=(1.0, 3.0))


def main(argv: list[str] | None = None) -> None:
    from locres.core.memory import reuse_freed_memory

    reuse_freed_memory()  # as the entry points do (locres.core.memory)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", default="runs/training_set")
    ap.add_argument("--checkpoints", nargs="+", default=["locres/weights/deepres2_map.pt"])
    ap.add_argument("--maps", type=int, default=8)
    ap.add_argument("--seed", type=int, default=77)
    ap.add_argument("--split", choices=("test", "val"), default="test")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = Path("bench_results/deepres2/deposited_filters.json" if args.split == "test"
                        else "runs/deposited_filters_val.json")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    recipe = replace(recipe_from_yaml(), **FORCED)
    pool, names = test_pool(args.shards, args.split)
    nets = {c: load_deepres(c)[0].eval() for c in args.checkpoints}
    rng = np.random.default_rng(args.seed)
    rows = []
    for i in range(args.maps):
        ex = make_training_example(pool.draw(rng, int(rng.integers(1, 5))), recipe, rng)
        # each net reads its own feature version; truth and mask are the same for all
        xs = {v: example_to_item(ex, "map", 1.0, 1.5, v)
              for v in {int(getattr(net, "feature_version", 1)) for net in nets.values()}}
        item = next(iter(xs.values()))
        m = item["mask"].bool()
        truth = item["truth"][m]
        row = {"map": i, "lowpass_a": ex.info["global_lowpass_a"],
               "butterworth_order": ex.info["butterworth_order"],
               "global_bfactor_a2": ex.info["global_bfactor_a2"], "truth_median_a": float(truth.median())}
        with torch.no_grad():
            for c, net in nets.items():
                pred = net(xs[int(getattr(net, "feature_version", 1))]["x"][None])[0, 1][m]
                row[f"median_a[{c}]"] = float(pred.median())
                row[f"mae_a[{c}]"] = float((pred - truth).abs().mean())
        rows.append(row)
        log.info("%s", row)

    def median_error(c: str) -> float:
        return float(np.median([r[f"median_a[{c}]"] - r["truth_median_a"] for r in rows]))

    summary = {c: {"median_error_a": median_error(c),
                   "mae_a": float(np.mean([r[f"mae_a[{c}]"] for r in rows]))} for c in args.checkpoints}
    cmd = "python -m locres.bench.deposited_filters --shards " + args.shards + " --checkpoints " + " ".join(
        args.checkpoints) + f" --maps {args.maps} --seed {args.seed} --split {args.split}"
    atomic_write_json(args.out, {"command": cmd, "forced_recipe": {k: list(v) if isinstance(v, tuple) else v
                                                                  for k, v in FORCED.items()},
                                 f"{args.split}_structures": names, "maps": rows, "summary": summary})
    log.info("summary %s; wrote %s", summary, args.out)


if __name__ == "__main__":
    main()
