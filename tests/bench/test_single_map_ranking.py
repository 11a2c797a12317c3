"""The single-map ranking study: the floor crossing on the map's grid, group means, one case end to end."""

from __future__ import annotations

import json
import math

import numpy as np

from locres.bench.single_map_ranking import floor_crossing_map_a, group_means, main
from locres.core.fourier import lowpass_raised_cosine
from locres.simulate.noise import make_noise
from locres.simulate.phantom import synthetic_density


def test_floor_crossing_is_on_the_maps_grid_and_coarser_for_a_coarser_map():
    """At 1.5 A voxels in an odd, non-cubic box the crossing comes back on the map's own grid; inside the
    molecule the 9 A low-pass crosses coarser than the 4.5 A one (medians)."""
    d = synthetic_density((33, 30, 35), 1.5, np.random.default_rng(4))
    noise = make_noise(d.shape, 0.1 * float(d.std()), np.random.default_rng(5))
    inside = np.abs(d) > 0.2 * np.abs(d).max()
    medians = []
    for cut in (4.5, 9.0):
        r = floor_crossing_map_a(lowpass_raised_cosine(d, 1.5, cut) + noise, 1.5)
        assert r.shape == d.shape and np.all(np.isfinite(r))
        medians.append(float(np.median(r[inside])))
    assert medians[0] < medians[1]


def test_group_means_average_each_group_and_skip_constant_estimates():
    rows = [{"snr": s, "pattern": p, "kind": "cut", "truth_iqr_a": iqr,
             "spearman": {"single_map_model": a, "floor_crossing": b}}
            for s, p, iqr, a, b in ((0.5, "radial", 1.0, 0.2, float("nan")), (0.5, "linear", 0.2, 0.4, 0.6),
                                    (2.0, "radial", 0.4, 0.9, 0.8))]
    g = group_means(rows)
    assert g["all"]["cases"] == 3 and math.isclose(g["all"]["single_map_model"], 0.5)
    assert math.isclose(g["all"]["floor_crossing"], 0.7)  # the constant (nan) case is left out
    assert math.isclose(g["snr 0.5"]["single_map_model"], 0.3) and g["snr 0.5"]["cases"] == 2
    assert math.isclose(g["pattern radial"]["truth_iqr_a_median"], 0.7)


def test_one_case_end_to_end(shards_dir, tmp_path):
    out = tmp_path / "ranking.json"
    main(["--shards", str(shards_dir), "--cases", "2", "--out", str(out)])
    r = json.loads(out.read_text())
    assert r["split"] == "val" and len(r["cases"]) == 2
    for v in r["cases"][0]["spearman"].values():
        assert math.isnan(v) or -1.0 <= v <= 1.0
    assert r["cases"][0]["truth_iqr_a"] >= 0.0
