"""The DeepRes 2 bench's estimate cache: an analytical variant runs once per exact input."""

from __future__ import annotations

import numpy as np

from locres.bench import deepres2
from locres.simulate.training_maps import TrainingExample


def _example(seed: int) -> TrainingExample:
    rng = np.random.default_rng(seed)
    half1, half2 = (rng.standard_normal((12, 12, 12)).astype(np.float32) for _ in range(2))
    mask = np.zeros((12, 12, 12), bool)
    mask[3:9, 3:9, 3:9] = True
    return TrainingExample(map=0.5 * (half1 + half2), half1=half1, half2=half2, mask=mask,
                           truth_a=np.full(mask.shape, 5.0, np.float32), voxel_size_a=1.0)


def test_cached_estimates_are_reused_for_the_same_input_only(tmp_path, monkeypatch):
    calls = []

    def fake_run(name, ex, mask, checkpoints=None):
        calls.append(name)
        return np.full(ex.map.shape, 3.0 + len(calls), np.float32), {"extra": {}, "info": {}}

    monkeypatch.setattr(deepres2, "run_variant", fake_run)
    ex = _example(0)
    first, _, _ = deepres2.cached_run_variant("blocres", ex, ex.mask, None, tmp_path)
    again, _, _ = deepres2.cached_run_variant("blocres", ex, ex.mask, None, tmp_path)
    np.testing.assert_array_equal(first, again)
    assert calls == ["blocres"]
    other = _example(1)  # other half maps: run again
    deepres2.cached_run_variant("blocres", other, other.mask, None, tmp_path)
    # a learned model is never cached: its weights change between runs
    deepres2.cached_run_variant("deepres2_halves", ex, ex.mask, None, tmp_path)
    deepres2.cached_run_variant("deepres2_halves", ex, ex.mask, None, tmp_path)
    assert calls == ["blocres", "blocres", "deepres2_halves", "deepres2_halves"]
    assert not list(tmp_path.rglob("*.tmp.npz"))
