"""blocres: the spec's known answers, fast path vs box-by-box reference, tracking a phantom's truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from locres.core.fourier import lowpass_raised_cosine
from locres.errors import LocresError
from locres.methods import MethodInputs, blocres
from locres.simulate.phantom import make_synthetic_phantom


@pytest.fixture(scope="module")
def smooth_map():
    rng = np.random.default_rng(5)
    return lowpass_raised_cosine(rng.standard_normal((32, 32, 32)).astype(np.float32), 1.0, 3.0)


@pytest.fixture(scope="module")
def phantom():
    return make_synthetic_phantom((48, 48, 48), 1.0, (3.0, 8.0), "radial", snr=2.0, seed=1)


def test_identical_halves_give_the_shell_limit(smooth_map):
    pts = np.array([[16, 16, 16], [12, 20, 14]])
    # -maxresolution 2, u = 1, B = 20, p = 1: maxrad = 22, 40/21 = 1.905 clamped to 2
    ref = blocres.local_fsc_reference(smooth_map, smooth_map, 1.0, 20, pts, [0.5], max_resolution_a=2.0)
    np.testing.assert_allclose(ref, 2.0, rtol=1e-6)
    # default limit: 2u/sqrt(3) everywhere (u = 1.3)
    ref = blocres.local_fsc_reference(smooth_map, smooth_map, 1.3, 20, pts, [0.5, 0.143])
    np.testing.assert_allclose(ref, 2.0 * 1.3 / np.sqrt(3.0), rtol=1e-5)
    white = np.random.default_rng(3).standard_normal((32, 32, 32)).astype(np.float32)
    fast = blocres.local_fsc_fast(white, white, 1.3, 20, [0.5])
    np.testing.assert_allclose(fast[0][10:23, 10:23, 10:23], 2.0 * 1.3 / np.sqrt(3.0), rtol=1e-5)


def test_anticorrelated_halves(smooth_map):
    # FSC_i = -1 for i >= 1 -> s* = s_1 (1 - c) / 2; B = 20, p = 1, u = 1: 160 A (c = 0.5), 93.35 A (0.143)
    pts = np.array([[16, 16, 16]])
    ref = blocres.local_fsc_reference(smooth_map, -smooth_map, 1.0, 20, pts, [0.5, 0.143])
    np.testing.assert_allclose(ref[:, 0], [160.0, 93.35], atol=0.01)
    fast = blocres.local_fsc_fast(smooth_map, -smooth_map, 1.0, 20, [0.5, 0.143])
    np.testing.assert_allclose(fast[:, 16, 16, 16], [160.0, 93.35], atol=0.01)


def test_cut_takes_the_last_crossing():
    s = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    got = blocres.cut_last_crossing(s, np.array([[1.0, 0.8, 0.4, 0.6, 0.3]]), 0.5)
    np.testing.assert_allclose(got, [1.0 / 3.0], rtol=1e-9)  # 3.0 A, not 0.175 (the first crossing)
    never = blocres.cut_last_crossing(s, np.array([[1.0, 0.9, 0.8, 0.7, 0.6]]), 0.5)
    np.testing.assert_allclose(never, [0.4])
    # QUIRK: crossing below s_1 while the last value is above c -> s_last
    quirk = blocres.cut_last_crossing(s, np.array([[1.0, 0.2, 0.6, 0.7, 0.8]]), 0.5)
    np.testing.assert_allclose(quirk, [0.4])


def test_edges_and_gap_filling():
    nodes = blocres.computed_nodes((200, 30, 30), 1, 10)
    z = np.nonzero(nodes[:, 15, 15])[0]
    assert z[0] == 10 and z[-1] == 190 and len(z) == 181
    vals = np.arange(4 * 4 * 4, dtype=np.float64).reshape(4, 4, 4) ** 1.5
    out = blocres.interpolate_nodes(vals, np.ones_like(vals, bool), (8, 8, 8), 2)
    np.testing.assert_allclose(out[2, 2, 3], 0.5 * (vals[1, 1, 1] + vals[1, 1, 2]), rtol=1e-6)
    np.testing.assert_allclose(out[4, 6, 2], vals[2, 3, 1], rtol=1e-6)


def test_fast_path_agrees_with_the_reference(phantom):
    """Tolerance: median |fast - ref| / ref < 5 %, 90th percentile < 15 %, Spearman > 0.8 (200 voxels)."""
    box = 12
    rng = np.random.default_rng(0)
    pts = np.argwhere(phantom.mask)
    pts = pts[((pts >= box // 2) & (pts <= 48 - box // 2)).all(axis=1)]
    pts = pts[rng.choice(len(pts), 200, replace=False)]
    ref = blocres.local_fsc_reference(phantom.half1, phantom.half2, 1.0, box, pts, [0.5])[0]
    fast = blocres.local_fsc_fast(phantom.half1, phantom.half2, 1.0, box, [0.5])[0][tuple(pts.T)]
    rel = np.abs(fast - ref) / ref
    assert np.median(rel) < 0.05, np.median(rel)
    assert np.percentile(rel, 90) < 0.15, np.percentile(rel, 90)
    assert spearmanr(fast, ref)[0] > 0.8


def test_tracks_phantom_truth(phantom):
    """On a radial phantom (3-8 A): Spearman with the truth > 0.7 and MAE < 2 A inside the mask."""
    inputs = MethodInputs(voxel_size_a=1.0, half1=phantom.half1, half2=phantom.half2, mask=phantom.mask)
    out = blocres.run(inputs, box=12)
    sel = out.resolution_a > 0
    assert sel.sum() > 0.5 * phantom.mask.sum()
    assert not (out.resolution_a[~phantom.mask] > 0).any()
    est, truth = out.resolution_a[sel], phantom.truth_a[sel]
    assert spearmanr(est, truth)[0] > 0.7
    assert np.abs(est - truth).mean() < 2.0


def test_run_step_automask_and_default_box(phantom):
    inputs = MethodInputs(voxel_size_a=1.0, half1=phantom.half1, half2=phantom.half2)
    out = blocres.run(inputs, step=2, cutoff=[0.5, "half_bit"])
    assert out.mask is not None and out.mask.any()
    assert 8 <= out.info["box"] <= 24 and out.info["global_resolution_a"] > 0
    res = out.resolution_a
    assert (res[~out.mask] == 0).all()
    hi = 2.0 / np.sqrt(3.0)
    assert res[out.mask].min() >= hi - 1e-5 and res[out.mask].max() <= 200.0
    assert "cutoff_half_bit" in out.extra_maps


@pytest.mark.parametrize("params", [{"box": 60}, {"box": 12, "cutoff": 0.0}, {"box": 12, "cutoff": 1.2},
                                    {"box": 12, "cutoff": "fsc"}, {"box": 12, "mode": "cube"},
                                    {"box": 12, "bogus": 1}])
def test_bad_inputs(phantom, params):
    from locres.pipeline.execute import call_method  # as the pipeline calls it: unknown keys refused there

    inputs = MethodInputs(voxel_size_a=1.0, half1=phantom.half1, half2=phantom.half2, mask=phantom.mask)
    with pytest.raises(LocresError):
        call_method("blocres", blocres, inputs, params)


def test_shell_mode_counts_and_trend(phantom):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 16, 200)).astype(np.float32)
    prof = blocres.shell_fsc_profile(x, x + rng.standard_normal(x.shape).astype(np.float32), 1.0, 10, 10)
    assert len(prof["resolution_a"]) == 11  # x = 200, step 10, radii 0..100
    # radial phantom: finest at the centre -> resolution coarsens outwards
    inputs = MethodInputs(voxel_size_a=1.0, half1=phantom.half1, half2=phantom.half2, mask=phantom.mask)
    out = blocres.run(inputs, mode="shell", shell_width=6, step=2, radii=[2, 16])
    prof = out.info["shell_profile"]
    vals = [(r, v) for r, v in zip(prof["radius_vox"], prof["resolution_a"]) if v is not None]
    assert len(vals) >= 6
    assert spearmanr(*zip(*vals))[0] > 0.8
    assert (out.resolution_a[~phantom.mask] == 0).all() and out.resolution_a.max() > 0


@pytest.mark.gpu
def test_fast_path_on_cuda_matches_cpu(phantom):
    cpu = blocres.local_fsc_fast(phantom.half1, phantom.half2, 1.0, 12, [0.5])
    gpu = blocres.local_fsc_fast(phantom.half1, phantom.half2, 1.0, 12, [0.5], device="cuda")
    inner = (slice(6, 42),) * 3
    assert np.median(np.abs(cpu[0][inner] - gpu[0][inner])) < 1e-3
