"""Model selection on validation maps: known scores, and the default recipe is the shipped models'."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import yaml

from locres.bench.select_model import DEFAULT_RECIPE, map_scores, recipe_from_yaml
from locres.simulate.training_maps import TrainingMapRecipe

WEIGHTS = Path(__file__).resolve().parents[2] / "locres" / "weights"


def test_map_scores_known_values():
    truth = np.array([4.0, 4.0, 8.0, 8.0])
    mask = np.array([True, True, True, False])
    q = np.stack([truth - 1.0, truth + np.array([1.0, -1.0, 2.0, 50.0]),
                  truth + np.array([2.0, 0.5, -0.5, 9.0])])
    s = map_scores(q, truth, mask)
    assert s["mae_a"] == pytest.approx(4.0 / 3.0)  # the unmasked voxel's 50 A error is left out
    assert s["bias_a"] == pytest.approx(2.0 / 3.0)
    assert s["inside"] == pytest.approx(2.0 / 3.0)  # the third voxel's truth lies above its interval


@pytest.mark.parametrize("name", ["deepres2_map", "deepres2_halves"])
def test_default_recipe_is_the_shipped_models_recipe(name):
    shipped = yaml.safe_load((WEIGHTS / f"{name}.yaml").read_text())["data"]["recipe"]
    expected = TrainingMapRecipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in shipped.items()})
    assert asdict(recipe_from_yaml(DEFAULT_RECIPE)) == asdict(expected)
