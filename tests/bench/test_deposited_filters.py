"""The deposited-map check (sharpened, soft low pass, flattened) on the split it is asked for."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from locres.bench.deposited_filters import main
from locres.data.splits import split_of

SHIPPED_MAP_MODEL = Path(__file__).resolve().parents[2] / "locres" / "weights" / "deepres2_map.pt"


def test_validation_check_draws_only_validation_structures(shards_dir, tmp_path):
    out = tmp_path / "deposited_val.json"
    main(["--shards", str(shards_dir), "--split", "val", "--maps", "1", "--checkpoints",
          str(SHIPPED_MAP_MODEL), "--out", str(out)])
    d = json.loads(out.read_text())
    assert "test_structures" not in d and d["val_structures"]
    assert all(split_of(e) == "val" for e in d["val_structures"])
    assert d["command"].endswith("--split val")
    row = d["maps"][0]
    assert row["global_bfactor_a2"] <= -80.0 and row["butterworth_order"] >= 18.0  # the forced filters
    assert np.isfinite(row[f"median_a[{SHIPPED_MAP_MODEL}]"]) and row["truth_median_a"] > 0


def test_models_of_different_feature_versions_are_compared_on_the_same_maps(shards_dir, tmp_path):
    """Each net reads its own feature version (the shipped model's and a version-2 net's) of the same
    maps: both score every map against one truth."""
    import torch

    from locres.io.checkpoints import export_slim
    from locres.models.dense import DenseQuantileNet

    torch.manual_seed(0)
    old = DenseQuantileNet(inputs="map", features=2, width=4, dilations=(1,))
    v2 = export_slim(tmp_path / "v2.pt", old, 1.0, (2.0, 20.0))
    out = tmp_path / "mixed.json"
    main(["--shards", str(shards_dir), "--split", "val", "--maps", "1", "--checkpoints",
          str(SHIPPED_MAP_MODEL), str(v2), "--out", str(out)])
    row = json.loads(out.read_text())["maps"][0]
    for c in (SHIPPED_MAP_MODEL, v2):
        assert np.isfinite(row[f"mae_a[{c}]"]) and row[f"median_a[{c}]"] >= 2.0
