"""Known-answer tests of the benchmark metrics and a one-case benchmark run with a fake method."""

from __future__ import annotations

import json

import numpy as np
import pytest

from locres.bench.common import Variant
from locres.bench.groundtruth import binned_metrics, error_metrics, spearman
from locres.bench.realmaps import atom_voxel_indices, sample_at_atoms
from locres.methods import LocalResolution


def test_prediction_one_angstrom_coarse_has_mae_one_and_bias_plus_one(rng):
    truth = rng.uniform(2.0, 15.0, size=(6, 7, 8))
    m = error_metrics(truth + 1.0, truth)
    assert m["mae_a"] == pytest.approx(1.0)
    assert m["bias_a"] == pytest.approx(1.0)
    assert m["spearman"] == pytest.approx(1.0)
    assert m["coverage"] == 1.0


def test_mae_and_bias_differ_for_mixed_errors():
    truth = np.full(4, 5.0)
    pred = truth + np.array([-2.0, 1.0, 1.0, 1.0])
    m = error_metrics(pred, truth)
    assert m["mae_a"] == pytest.approx(1.25)
    assert m["bias_a"] == pytest.approx(1.0)


def test_spearman_of_a_monotone_map_is_one(rng):
    x = rng.uniform(1, 10, 500)
    assert spearman(np.exp(x) + 3 * x, x) == pytest.approx(1.0)
    assert spearman(-x, x) == pytest.approx(-1.0)
    assert np.isnan(spearman(np.ones(10), x[:10]))


def test_coverage_counts_unestimated_mask_voxels_and_mae_ignores_them(rng):
    truth = rng.uniform(3, 8, size=(10, 10, 10))
    pred = truth.copy()
    pred[:5] = 0.0
    mask = np.ones(truth.shape, bool)
    mask[:, :, 5:] = False  # half the voxels outside the mask: not counted at all
    m = error_metrics(pred, truth, mask)
    assert m["coverage"] == pytest.approx(0.5)
    assert m["n_mask"] == 500
    assert m["mae_a"] == 0.0


def test_bins_split_voxels_by_true_resolution():
    truth = np.array([3.0, 5.0, 7.0, 10.0, 14.0])
    pred = truth + np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    b = binned_metrics(pred, truth)
    assert b["2-4"]["mae_a"] == pytest.approx(1.0)
    assert b["4-6"]["mae_a"] == pytest.approx(2.0)
    assert b["6-9"]["mae_a"] == pytest.approx(3.0)
    assert b["9-15"]["n_mask"] == 2 and b["9-15"]["mae_a"] == pytest.approx(4.5)
    assert b["goal 2.5-12"]["n_mask"] == 4  # 14 A lies outside 2.5-12 A
    assert b["all"]["mae_a"] == pytest.approx(3.0)


def test_atoms_are_sampled_in_map_geometry():
    # voxel centre (ix, iy, iz) sits at corner + index * voxel size; the grid is non-cubic
    shape_zyx, v, corner = (5, 6, 7), (2.0, 2.0, 2.0), np.array([10.0, -4.0, 3.0])
    vol = np.arange(np.prod(shape_zyx), dtype=np.float32).reshape(shape_zyx)
    xyz = np.array([[10.0 + 2 * 6, -4.0 + 2 * 1, 3.0 + 2 * 4], [0.0, 0.0, 0.0]])
    idx = atom_voxel_indices(xyz, corner, v, shape_zyx)
    assert idx[0].tolist() == [4, 1, 6]
    assert idx[1].tolist() == [-1, -1, -1]
    got = sample_at_atoms(vol, idx)
    assert got[0] == vol[4, 1, 6] and np.isnan(got[1])


def _truth_plus_one_from_map(inputs, **params):
    """A fake method that reads the phantom's truth from a side channel and adds 1 A."""
    res = np.where(inputs.mask, _truth_plus_one_from_map.truth + 1.0, 0.0).astype(np.float32)
    return LocalResolution(resolution_a=res)


def _broken(inputs, **params):
    raise RuntimeError("this method always fails")


def test_one_case_bench_with_a_fake_method_writes_the_table(tmp_path, monkeypatch):
    from locres.bench import groundtruth, suite
    real_build = groundtruth.build_case

    def build(spec):
        out = real_build(spec)
        _truth_plus_one_from_map.truth = out[0].truth_a
        return out

    monkeypatch.setattr(groundtruth, "build_case", build)
    variants = [{"label": "fake", "method": "fake", "input": "map"},
                {"label": "broken", "method": "broken", "input": "halves"}]
    runners = {"fake": _truth_plus_one_from_map, "broken": _broken}
    real_variants = suite.variants_from_config
    monkeypatch.setattr(suite, "variants_from_config",
                        lambda items, ck=None: [Variant(**{**v.__dict__, "run": runners[v.label]})
                                                for v in real_variants(items, ck)])
    gt = {"models_dir": "synthetic", "n_models": 1, "max_box": 32, "error_map_cases": 1,
          "cases": [{"voxel_size_a": 1.0, "resolution_range_a": [3.0, 8.0], "snr": 2.0}]}
    res = suite.run_bench(str(tmp_path), variants, gt, {"enabled": False}, {"enabled": False},
                          learned_label="fake")
    s = res["groundtruth"]["summary"]
    assert s["fake"]["metrics"]["all"]["mae_a"] == pytest.approx(1.0, abs=1e-4)
    assert s["fake"]["metrics"]["all"]["bias_a"] == pytest.approx(1.0, abs=1e-4)
    assert s["fake"]["metrics"]["all"]["coverage"] == 1.0
    assert s["fake"]["metrics"]["all"]["spearman"] == pytest.approx(1.0)
    assert s["broken"]["n_cases_ok"] == 0 and "always fails" in s["broken"]["errors"][0]
    table = (tmp_path / "table.md").read_text()
    assert "| fake | map | 1.00 | +1.00 |" in table
    assert "broken" in table and "always fails" in table
    assert "not met (1.00 A, 0.50 A over)" in table.replace("**", "")
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["groundtruth"]["summary"]["fake"]["input"] == "map"
    assert (tmp_path / "pred_vs_true.png").stat().st_size > 0
    assert (tmp_path / "error_maps.png").stat().st_size > 0


def _line_of_atoms(origin, v):
    import gemmi

    st = gemmi.Structure()
    model, chain = gemmi.Model("1"), gemmi.Chain("A")
    for i in range(10):
        res = gemmi.Residue()
        res.name, res.seqid = "ALA", gemmi.SeqId(i + 1, " ")
        atom = gemmi.Atom()
        atom.name, atom.element = "CA", gemmi.Element("C")
        atom.pos = gemmi.Position(origin[0] + (2 + i) * v, origin[1] + 5 * v, origin[2] + 6 * v)
        atom.b_iso = 20.0 + 7.0 * i
        res.add_atom(atom)
        chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    return st


def test_real_map_comparison_finds_resolution_that_follows_b_factors():
    """Atoms whose B-factor grows with x on a map whose 'resolution' grows with x: Spearman over atoms 1."""
    from locres.bench.realmaps import compare_real_map
    from locres.core.maps import MapVolume

    shape_zyx, v, origin = (12, 14, 16), 1.5, (-6.0, 3.0, 9.0)
    vol = MapVolume.from_array(np.random.default_rng(0).normal(size=shape_zyx), v, origin)
    st = _line_of_atoms(origin, v)

    def fake(inputs, **params):
        x = np.arange(shape_zyx[2], dtype=np.float32)
        return LocalResolution(resolution_a=np.broadcast_to(3.0 + 0.1 * x, shape_zyx).copy())

    def flipped(inputs, **params):
        return LocalResolution(resolution_a=20.0 - fake(inputs).resolution_a)

    variants = [Variant("fake", "fake", "map", run=fake), Variant("flipped", "flipped", "map", run=flipped),
                Variant("halves_only", "x", "halves", run=fake)]
    out = compare_real_map(vol, st, variants, reported_resolution_a=3.2)
    assert out["atoms_in_map"] == 10
    assert out["variants"]["fake"]["spearman_bfactor"] == pytest.approx(1.0)
    assert out["variants"]["flipped"]["spearman_bfactor"] == pytest.approx(-1.0)
    assert out["pairwise_spearman"]["fake"]["flipped"] == pytest.approx(-1.0)
    assert "halves_only" not in out["variants"]  # a real map without half maps


def test_real_map_methods_are_scored_against_the_local_model_map_fsc():
    """A method that returns the yardstick itself scores MAE 0 and Spearman 1; one 1 A coarser, bias +1."""
    from locres.bench.realmaps import compare_real_map
    from locres.core.maps import MapVolume
    from locres.methods.modelfsc import local_model_map_fsc
    from locres.simulate.density import model_map_in_frame

    shape_zyx, v, origin = (16, 18, 24), 1.0, (-6.0, 3.0, 9.0)
    vol = MapVolume.from_array(np.random.default_rng(0).normal(size=shape_zyx).astype(np.float32), v, origin)
    st = _line_of_atoms(origin, v)
    model_map, fp = model_map_in_frame(st, vol.geometry)
    vol = vol.with_data(model_map + 2.0 * vol.data * model_map.std())
    truth = local_model_map_fsc(vol.data, model_map, fp, v)
    assert np.ptp(truth[fp]) > 0

    def same(inputs, **params):
        return LocalResolution(resolution_a=truth.copy())

    def coarser(inputs, **params):
        return LocalResolution(resolution_a=np.where(truth > 0, truth + 1.0, 0.0))

    out = compare_real_map(vol, st, [Variant("same", "same", "map", run=same),
                                     Variant("coarser", "coarser", "map", run=coarser)])
    assert out["modelfsc"]["median_a"] == pytest.approx(float(np.median(truth[fp])))
    assert out["modelfsc"]["footprint_voxels"] == int(fp.sum())
    s, c = out["variants"]["same"], out["variants"]["coarser"]
    assert s["mae_vs_modelfsc_a"] == pytest.approx(0.0, abs=1e-6)
    assert s["spearman_modelfsc"] == pytest.approx(1.0)
    assert c["mae_vs_modelfsc_a"] == pytest.approx(1.0, abs=1e-5)
    assert c["bias_vs_modelfsc_a"] == pytest.approx(1.0, abs=1e-5)
    assert c["n_vs_modelfsc"] > 0.5 * fp.sum()  # footprint voxels inside the bench's 3 A model mask
    assert 0.0 <= out["modelfsc"]["at_cap_fraction"] < 1.0
    assert c["mae_vs_modelfsc_crossed_a"] == pytest.approx(1.0, abs=1e-5)
    from locres.bench.tables import realmaps_tables

    table = realmaps_tables({"maps": {"toy": out}})
    assert "| modelfsc (yardstick) |" in table and "MAE vs modelfsc" in table
    assert "| coarser |" in table and "| +1.00 |" in table  # the bias column

    def partial(inputs, **params):  # exact, but only on the first half of the slices
        out = truth.copy()
        out[shape_zyx[0] // 2:] = 0.0
        return LocalResolution(resolution_a=out)

    out = compare_real_map(vol, st, [Variant("coarser", "coarser", "map", run=coarser),
                                     Variant("partial", "partial", "map", run=partial)])
    (pair,) = out["paired_vs_modelfsc"]
    assert (pair["a"], pair["b"]) == ("coarser", "partial")
    n_partial, n_coarser = (out["variants"][k]["n_vs_modelfsc"] for k in ("partial", "coarser"))
    assert pair["voxels"] == n_partial < n_coarser
    assert pair["mae_a"] == pytest.approx(1.0, abs=1e-5) and pair["mae_b"] == pytest.approx(0.0, abs=1e-6)
    assert "| coarser / partial |" in realmaps_tables({"maps": {"toy": out}})


def test_scores_below_the_yardsticks_cap_leave_out_its_bound_only_voxels():
    """Voxels where the model-map FSC found no crossing (its cap) count in the headline, not below the cap."""
    from locres.bench.realmaps import against_reference

    reference = np.array([4.0, 5.0, 6.0, 20.0, 20.0], np.float32)
    estimate = np.array([4.0, 5.0, 6.0, 8.0, 7.0], np.float32)
    rec = against_reference(estimate, reference, np.ones(5, bool), cap_a=20.0)
    assert rec["mae_vs_modelfsc_a"] == pytest.approx(25.0 / 5)
    assert rec["mae_vs_modelfsc_crossed_a"] == pytest.approx(0.0)
    assert rec["spearman_modelfsc_crossed"] == pytest.approx(1.0)
    assert "mae_vs_modelfsc_crossed_a" not in against_reference(estimate, reference, np.ones(5, bool))


def test_equal_coverage_scores_both_modes_on_the_voxels_both_estimated():
    from locres.bench.common import Variant
    from locres.bench.groundtruth import equal_coverage

    truth = np.full(10, 5.0)
    # single map: estimates 0-5 (error +1); half maps: 3-9 (error +2 on 3-5, +0 beyond)
    single = np.where(np.arange(10) < 6, 6.0, 0.0)
    halves = np.where(np.arange(10) >= 3, np.where(np.arange(10) < 6, 7.0, 5.0), 0.0)
    variants = [Variant(label="m_single", method="m", input="map"),
                Variant(label="m_halves", method="m", input="halves"),
                Variant(label="other", method="o", input="map")]
    pooled = {"m_single": {"pred": [single], "truth": [truth]},
              "m_halves": {"pred": [halves], "truth": [truth]},
              "other": {"pred": [single], "truth": [truth]}}
    eq = equal_coverage(pooled, variants)
    assert list(eq) == ["m_single vs m_halves"]
    e = eq["m_single vs m_halves"]
    assert e["n_common"] == 3 and e["only_single"] == 3 and e["only_halves"] == 4
    assert np.isclose(e["common_coverage"], 0.3)
    assert np.isclose(e["single_metrics"]["mae_a"], 1.0) and np.isclose(e["halves_metrics"]["mae_a"], 2.0)
    # over each mode's own voxels the half maps look better (MAE 6/7): the common set reverses that
    from locres.bench.groundtruth import error_metrics
    assert error_metrics(halves, truth)["mae_a"] < 1.0
