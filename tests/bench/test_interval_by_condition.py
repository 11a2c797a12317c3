"""Failure study by map condition: groups partition the maps, and scores are select_model's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from locres.bench.interval_by_condition import CONDITIONS, group_scores, main
from locres.core.fourier import fsc_recovers
from locres.data.dense import fixed_examples_and_items, fixed_items

WEIGHTS = Path(__file__).resolve().parents[2] / "locres" / "weights"


def _row(inside, coloured, mae=1.0):
    info = {"noise_bfactor_a2": 50.0 if coloured else 0.0, "flattened": False, "global_lowpass_a": 0.0,
            "global_bfactor_a2": 0.0, "snr": 2.0, "kind": "cut", "fsc_recovers": False}
    return {"mae_a": mae, "bias_a": 0.0, "inside": inside, "below": 0.0, "above": 1 - inside, "info": info}


def test_group_scores_known_values():
    rows = [_row(0.2, True, 3.0), _row(0.4, True, 1.0), _row(1.0, False)]
    g = group_scores(rows)
    assert g["coloured noise"]["maps"] == 2 and g["white noise"]["maps"] == 1
    assert g["coloured noise"]["inside"] == pytest.approx(0.3)
    assert g["coloured noise"]["mae_a"] == pytest.approx(2.0)
    assert g["coloured noise"]["maps_under_half_inside"] == 2
    assert g["flattened"] == {"maps": 0}


def test_same_maps_as_select_model_and_groups_partition_them(shards_dir, tmp_path):
    from locres.bench.deepres2 import test_pool
    from locres.bench.select_model import recipe_from_yaml

    pool = test_pool(str(shards_dir), "val")[0]
    plain = fixed_items(pool, recipe_from_yaml(), "map", 1.0, 2, 5, 2)
    paired = list(fixed_examples_and_items(pool, recipe_from_yaml(), "map", 1.0, 2, 5, 2))
    for a, (ex, b) in zip(plain, paired, strict=True):
        assert (a["x"] == b["x"]).all() and (a["truth"] == b["truth"]).all() and "snr" in ex.info
    out = tmp_path / "study.json"
    main([str(WEIGHTS / "deepres2_map.pt"), "--shards", str(shards_dir), "--maps", "2", "--out", str(out)])
    study = json.loads(out.read_text())
    assert len(study["per_map"]) == 2
    pairs = [("coloured noise", "white noise"), ("flattened", "not flattened"),
             ("global low pass", "no global low pass"), ("SNR < 1", "SNR >= 1"), ("sharp cuts", "envelopes"),
             ("FSC recovers after its first 0.143 crossing", "FSC stays down after its first 0.143 crossing")]
    assert {n for pair in pairs for n in pair} < set(CONDITIONS)
    for yes, no in pairs:  # each condition and its complement hold every map once
        assert study["groups"][yes]["maps"] + study["groups"][no]["maps"] == 2


def test_fsc_recovers_known_curves():
    shells = np.linspace(0.0, 1.0, 40)
    falling = 1.0 / (1.0 + np.exp((shells - 0.5) / 0.05))  # crosses 0.143 once, near shell 0.59
    assert not fsc_recovers(falling)
    dip = np.where((shells > 0.3) & (shells < 0.45), 0.05, 0.9)  # noise-dominated band, signal beyond
    assert fsc_recovers(dip)
    blip = falling.copy()
    blip[30] = 0.6  # one noisy shell is not a recovery
    assert not fsc_recovers(blip)
    assert not fsc_recovers(np.full(40, 0.9))  # never crosses
