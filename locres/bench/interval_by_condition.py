"""Where a DeepRes 2 model fails, by the map's condition: select_model's validation maps grouped by their
recipe draws (coloured or white noise, flattening, global low pass, sharpening, SNR, degradation kind)
and by the shape of the half maps' global FSC (whether it climbs back over the threshold after its first
crossing, as it does where the noise is redder than the signal, so the SSNR rises with frequency).

    python -m locres.bench.interval_by_condition [MODEL.pt] --maps 40 --seed 5

The maps are exactly :mod:`locres.bench.select_model`'s (validation split, ``configs/data/dense.yaml``'s
recipe, model grid). Per map: the MAE and bias of the median and the fractions of true values inside,
below and above the 10-90 % interval; per group: the mean of each over its maps and how many maps hold
fewer than half their truths in the interval. Writes ``--out`` (JSON; default
``bench_results/deepres2/interval_by_condition.json``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from locres.bench.deepres2 import test_pool
from locres.bench.select_model import DEFAULT_RECIPE, map_scores, recipe_from_yaml
from locres.core.fourier import fsc_recovers
from locres.data.dense import fixed_examples_and_items
from locres.errors import LocresError
from locres.io.atomic import atomic_write_json
from locres.io.checkpoints import load_deepres
from locres.methods.deepres_dense import run_net_in_slabs
from locres.methods.fsc import fsc_raw

CONDITIONS: dict[str, Callable[[dict], bool]] = {  # name: which maps (by their recipe draws, ex.info)
    "coloured noise": lambda i: i["noise_bfactor_a2"] > 0,
    "white noise": lambda i: i["noise_bfactor_a2"] == 0,
    "flattened": lambda i: bool(i["flattened"]),
    "not flattened": lambda i: not i["flattened"],
    "global low pass": lambda i: i["global_lowpass_a"] > 0,
    "no global low pass": lambda i: i["global_lowpass_a"] == 0,
    "sharpened (global B < 0)": lambda i: i["global_bfactor_a2"] < 0,
    "blurred (global B > 0)": lambda i: i["global_bfactor_a2"] > 0,
    "SNR < 1": lambda i: i["snr"] < 1,
    "SNR >= 1": lambda i: i["snr"] >= 1,
    "sharp cuts": lambda i: i["kind"] == "cut",
    "envelopes": lambda i: i["kind"] == "envelope",
    "FSC recovers after its first 0.143 crossing": lambda i: bool(i["fsc_recovers"]),
    "FSC stays down after its first 0.143 crossing": lambda i: not i["fsc_recovers"],
}


def group_scores(rows: list[dict], conditions: dict[str, Callable[[dict], bool]] = CONDITIONS) -> dict:
    """Per condition: its maps' mean MAE, bias and inside/below/above fractions, and how many maps hold
    fewer than half their truths inside the interval."""
    out = {}
    for name, pick in conditions.items():
        sel = [r for r in rows if pick(r["info"])]
        if not sel:
            out[name] = {"maps": 0}
            continue
        out[name] = {"maps": len(sel), **{k: float(np.mean([r[k] for r in sel]))
                                          for k in ("mae_a", "bias_a", "inside", "below", "above")},
                     "maps_under_half_inside": int(sum(r["inside"] < 0.5 for r in sel))}
    return out


def score_maps(model: str, shards: str, recipe_path: str, n_maps: int, seed: int) -> list[dict]:
    net, meta = load_deepres(model)
    if meta.get("target") != "fsc_local":
        raise LocresError(f"{model} is not a DeepRes 2 (expected-local-FSC) model")
    pool = test_pool(shards, "val")[0]
    rows = []
    for ex, item in fixed_examples_and_items(pool, recipe_from_yaml(recipe_path), meta["inputs"],
                                             float(meta["voxel_size_a"]), n_maps, seed,
                                             int(getattr(net, "feature_version", 1))):
        q = run_net_in_slabs(net.eval(), item["x"].numpy())
        mask, truth = item["mask"].numpy().astype(bool), item["truth"].numpy()
        fsc = fsc_raw(ex.half1, ex.half2, ex.voxel_size_a)[1]
        rows.append({**map_scores(q, truth, mask), "truth_median_a": float(np.median(truth[mask])),
                     "info": {**ex.info, "fsc_recovers": fsc_recovers(fsc)}})
    return rows


def validation_study_parser(description: str, default_out: str) -> argparse.ArgumentParser:
    """The arguments of a study over select_model's validation maps: model, shards, maps, seed, out."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("model", nargs="?", default="locres/weights/deepres2_map.pt")
    p.add_argument("--shards", default="runs/training_set")
    p.add_argument("--maps", type=int, default=40)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--out", default=default_out)
    return p


def run_study(module: str, a: argparse.Namespace, argv: list[str] | None, rows_of: Callable[[], list[dict]],
              groups_of: Callable[[list[dict]], dict], line_of: Callable[[str, dict], str]) -> None:
    """Run a validation-map study: score the maps (``rows_of``; a LocresError is a one-line error and nothing
    is written), group them, print one line per non-empty group and write the JSON (command, model, maps,
    seed, time, load, groups, per map) to ``a.out``."""
    t0 = time.perf_counter()
    try:
        rows = rows_of()
    except LocresError as e:
        sys.exit(f"error: {e}")
    groups = groups_of(rows)
    for name, g in groups.items():
        if g["maps"]:
            print(line_of(name, g))
    args = argv if argv is not None else sys.argv[1:]
    atomic_write_json(Path(a.out), {"command": f"python -m {module} " + " ".join(args), "model": a.model,
                                    "split": "val", "maps": a.maps, "seed": a.seed,
                                    "seconds": round(time.perf_counter() - t0, 1),
                                    "loadavg": open("/proc/loadavg").read().split()[:3],
                                    "groups": groups, "per_map": rows})


def main(argv: list[str] | None = None) -> None:
    p = validation_study_parser(__doc__.splitlines()[0], "bench_results/deepres2/interval_by_condition.json")
    p.add_argument("--recipe", default=str(DEFAULT_RECIPE))
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    run_study("locres.bench.interval_by_condition", a, argv,
              lambda: score_maps(a.model, a.shards, a.recipe, a.maps, a.seed), group_scores,
              lambda name, g: (f"{name:26s} {g['maps']:3d} maps  inside {100 * g['inside']:5.1f} %  "
                               f"(under half: {g['maps_under_half_inside']})  "
                               f"MAE {g['mae_a']:.2f} A  bias {g['bias_a']:+.2f} A"))


if __name__ == "__main__":
    main()
