"""The noise-floor ablation: with one map the median is that map's own floor, so nothing may change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from locres.bench.noise_floor_ablation import main

WEIGHTS = Path(__file__).resolve().parents[2] / "locres" / "weights"


def test_one_map_ablated_by_its_own_median_scores_the_same(shards_dir, tmp_path):
    out = tmp_path / "ablation.json"
    main([str(WEIGHTS / "deepres2_map.pt"), "--shards", str(shards_dir), "--maps", "1", "--out", str(out)])
    g = json.loads(out.read_text())["groups"]["all"]
    assert g["maps"] == 1
    assert g["mae_ablated_a"] == pytest.approx(g["mae_a"], abs=1e-6)


def test_a_model_without_noise_floor_channels_is_refused(shards_dir, tmp_path):
    with pytest.raises(SystemExit, match="feature version 5"):
        main([str(WEIGHTS / "deepres2_halves.pt"), "--shards", str(shards_dir), "--maps", "1",
              "--out", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()
