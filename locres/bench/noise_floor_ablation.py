"""Does the single-map model use its noise-floor channels? select_model's validation maps scored with the
feature-version-5 noise floors as computed and with each channel replaced by its median over the maps.

    python -m locres.bench.noise_floor_ablation [MODEL.pt] --maps 40 --seed 5 --out FILE.json

Per group (all maps, coloured noise, white noise, coloured noise without flattening): the mean map MAE and
fraction of truths inside the 10-90 % interval, both ways. A model that ignores the channels scores the same.
"""

from __future__ import annotations

import numpy as np

from locres.bench.deepres2 import test_pool
from locres.bench.interval_by_condition import run_study, validation_study_parser
from locres.bench.select_model import map_scores, recipe_from_yaml
from locres.data.dense import fixed_examples_and_items
from locres.errors import LocresError
from locres.io.checkpoints import load_deepres
from locres.methods.deepres_dense import run_net_in_slabs
from locres.models.features import n_feature_channels

GROUPS = {
    "all": lambda i: True,
    "coloured noise": lambda i: i["noise_bfactor_a2"] > 0,
    "white noise": lambda i: i["noise_bfactor_a2"] == 0,
    "coloured noise, not flattened": lambda i: i["noise_bfactor_a2"] > 0 and not i["flattened"],
}


def ablation_rows(model: str, shards: str, n_maps: int, seed: int) -> list[dict]:
    net, meta = load_deepres(model)
    if getattr(net, "feature_version", 1) != 5 or meta.get("inputs") != "map":
        raise LocresError(f"{model} is not a single-map model of feature version 5 (no noise-floor channels)")
    first = n_feature_channels("map", int(net.net_config["n_bands"]), 2)  # the floor channels follow v2's
    pairs = list(fixed_examples_and_items(test_pool(shards, "val")[0], recipe_from_yaml(), "map",
                                          float(meta["voxel_size_a"]), n_maps, seed, 5))
    median = np.median(np.stack([item["x"].numpy()[first:, 0, 0, 0] for _, item in pairs]), axis=0)
    rows = []
    for ex, item in pairs:
        x = item["x"].numpy()
        ablated = x.copy()
        ablated[first:] = median[:, None, None, None]
        truth, mask = item["truth"].numpy(), item["mask"].numpy().astype(bool)
        a, b = (map_scores(run_net_in_slabs(net.eval(), v), truth, mask) for v in (x, ablated))
        rows.append({"info": ex.info, "mae_a": a["mae_a"], "mae_ablated_a": b["mae_a"],
                     "inside": a["inside"], "inside_ablated": b["inside"]})
    return rows


def group_means(rows: list[dict]) -> dict:
    out = {}
    for name, pick in GROUPS.items():
        sel = [r for r in rows if pick(r["info"])]
        out[name] = {"maps": len(sel), **{k: float(np.mean([r[k] for r in sel])) if sel else None
                                          for k in ("mae_a", "mae_ablated_a", "inside", "inside_ablated")}}
    return out


def main(argv: list[str] | None = None) -> None:
    a = validation_study_parser(__doc__.splitlines()[0],
                                "bench_results/deepres2/noise_floor_ablation.json").parse_args(argv)
    run_study("locres.bench.noise_floor_ablation", a, argv,
              lambda: ablation_rows(a.model, a.shards, a.maps, a.seed), group_means,
              lambda name, g: (f"{name:30s} {g['maps']:3d} maps  MAE {g['mae_a']:.3f} -> "
                               f"{g['mae_ablated_a']:.3f} A  inside {100 * g['inside']:.1f} -> "
                               f"{100 * g['inside_ablated']:.1f} %"))


if __name__ == "__main__":
    main()
