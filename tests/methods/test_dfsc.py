"""Directional FSC: a map blurred along one axis reads coarser along it only; isotropic maps are spherical."""

from __future__ import annotations

import numpy as np
import pytest

from locres.core.fourier import apply_fourier_filter
from locres.errors import LocresError
from locres.methods import MethodInputs, dfsc

N, VOXEL_A = 48, 1.0


def _halves(blur_z_a: float | None, seed: int = 0):
    """Half maps: a shared white signal, flat to Nyquist, plus independent noise (FSC ~0.8 everywhere);
    ``blur_z_a`` cuts the shared signal beyond 1/blur_z_a along u_z (the noise stays white)."""
    rng = np.random.default_rng(seed)
    shape = (N, N, N)
    sig = rng.standard_normal(shape).astype(np.float32)
    if blur_z_a is not None:
        fz = np.abs(np.fft.fftfreq(N, d=VOXEL_A))[:, None, None] * np.ones((1, N, N // 2 + 1))
        sig = apply_fourier_filter(sig, (fz < 1.0 / blur_z_a).astype(np.float32))
    return [sig + 0.5 * rng.standard_normal(shape).astype(np.float32) for _ in range(2)]


def _res_by_tilt(out):
    rt = np.array(out.info["directions_rot_tilt_deg"])
    res = np.array(out.info["resolution_per_direction_a"])
    return res[rt[:, 1] < 15], res[rt[:, 1] > 75]


def test_isotropic_half_maps_give_sphericity_near_one_and_nyquist_everywhere():
    h1, h2 = _halves(None)
    out = dfsc.estimate_dfsc(h1, h2, VOXEL_A, n_directions=100)
    res = np.array(out.info["resolution_per_direction_a"])
    assert out.info["sphericity"] > 0.97, out.info["sphericity"]
    assert np.all(res < 2.2), res.max()  # FSC ~0.8 up to Nyquist (2 A)
    vol = out.extra_maps["3dfsc"]
    assert vol.shape == (N, N, N)
    assert vol[N // 2, N // 2, N // 2] == 1.0
    assert 0.6 < np.median(vol[N // 2, N // 2, N // 2 + 5:N // 2 + 20]) < 0.95


def test_blur_along_z_reads_coarser_along_z_only():
    h1, h2 = _halves(6.0)
    out = dfsc.estimate_dfsc(h1, h2, VOXEL_A, n_directions=100)
    along_z, across = _res_by_tilt(out)
    # the cone around z holds signal only below 1/6 A^-1 (its 20 degree rim reaches a bit further)
    assert np.all((along_z > 5.0) & (along_z < 7.0)), along_z
    assert np.all(across < 2.3), across
    assert out.info["sphericity"] < 0.9
    # the 3D FSC volume: along u_z beyond 1/6 A^-1 the FSC is ~0, along u_x it stays high
    vol = out.extra_maps["3dfsc"]
    c = N // 2
    assert np.abs(vol[c + 12:c + 20, c, c]).max() < 0.3
    assert vol[c, c, c + 12:c + 20].min() > 0.6


def test_non_cubic_box_and_mask():
    rng = np.random.default_rng(1)
    sig = rng.standard_normal((40, 48, 56)).astype(np.float32)
    h1, h2 = (sig + 0.5 * rng.standard_normal(sig.shape).astype(np.float32) for _ in range(2))
    mask = np.zeros(sig.shape, bool)
    mask[5:35, 6:42, 8:48] = True
    out = dfsc.run(MethodInputs(VOXEL_A, half1=h1, half2=h2, mask=mask), n_directions=60)
    assert out.extra_maps["3dfsc"].shape == sig.shape
    assert np.all(out.resolution_a[~mask] == 0)
    assert np.all(out.resolution_a[mask] == out.info["global_resolution_a"])
    assert out.info["sphericity"] > 0.95


@pytest.mark.parametrize("case, msg",
                         [("grid", "one grid"), ("small", "too small"), ("mask", "leaves nothing")])
def test_bad_input_is_a_one_line_error(case, msg):
    h1, h2 = _halves(None)
    mask = None
    if case == "grid":
        h2 = h2[:, :, :40]
    elif case == "small":
        h1, h2 = h1[:24, :24, :24], h2[:24, :24, :24]
    else:
        mask = np.zeros(h1.shape, bool)
    with pytest.raises(LocresError, match=msg) as err:
        dfsc.run(MethodInputs(VOXEL_A, half1=h1, half2=h2, mask=mask))
    assert "\n" not in str(err.value)


def _infer(argv):
    from pathlib import Path

    from locres.cli import run_cli
    from locres.pipeline.infer import infer_from_config

    cfg = Path(__file__).resolve().parents[2] / "configs"
    run_cli(lambda c: infer_from_config(c, config_dir=cfg), "infer", config_dir=cfg, argv=argv)


def test_infer_end_to_end_writes_the_3dfsc_volume_on_the_half_maps_grid(tmp_path):
    from locres.core.maps import MapGeometry
    from locres.io.maps import read_map, write_map

    h1, h2 = _halves(6.0)
    geom = MapGeometry.new(h1.shape, VOXEL_A, origin_xyz_a=(3.0, -2.0, 1.5))
    write_map(tmp_path / "h1.mrc", h1, geom)
    write_map(tmp_path / "h2.mrc", h2, geom)
    out = tmp_path / "out"
    _infer(["method=dfsc", f"input.half1={tmp_path / 'h1.mrc'}", f"input.half2={tmp_path / 'h2.mrc'}",
            f"output.dir={out}", "method.n_directions=40"])
    vol = read_map(out / "dfsc_3dfsc.mrc")
    assert vol.data.shape == h1.shape
    assert np.allclose(vol.geometry.origin_xyz_a, (3.0, -2.0, 1.5))
    assert (out / "dfsc.json").exists() and (out / "dfsc.mrc").exists()
    png = (out / "dfsc_directional.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    import json
    assert "dfsc_directional.png" in json.loads((out / "dfsc.json").read_text())["outputs"]


def test_method_all_puts_dfsc_beside_monodir(tmp_path):
    """method=all with half maps: monodir_dfsc.png and a dfsc section in monodir.json whose numbers are
    dfsc's own."""
    import json

    from locres.core.fourier import lowpass_raised_cosine
    from locres.core.maps import MapGeometry
    from locres.io.maps import write_map
    from locres.methods.monogenic import centred_radius
    from locres.pipeline.infer import run_infer

    rng = np.random.default_rng(0)
    shape = (N, N, N)
    mask = centred_radius(shape) < 9
    vol = np.zeros(shape, np.float32)
    idx = np.flatnonzero((centred_radius(shape) < 8).ravel())
    np.add.at(vol.reshape(-1), idx[rng.integers(0, idx.size, idx.size // 6)], 1.0)
    sig = lowpass_raised_cosine(vol, 1.5, 4.5)
    sig /= sig[mask].std()
    geom = MapGeometry.new(shape, 1.5)
    for k in (1, 2):
        write_map(tmp_path / f"h{k}.mrc", sig + 0.1 * rng.standard_normal(shape, dtype=np.float32), geom)
    write_map(tmp_path / "m.mrc", mask.astype(np.float32), geom)
    out = tmp_path / "out"
    run_infer("all", {"monodir": {"n_directions": 15, "max_resolution_a": 9.0, "run_monores": False},
                      "dfsc": {"n_directions": 40}}, out, half1_path=str(tmp_path / "h1.mrc"),
              half2_path=str(tmp_path / "h2.mrc"), mask_path=str(tmp_path / "m.mrc"), device="cpu",
              only=["monodir", "dfsc"])
    md = json.loads((out / "monodir.json").read_text())
    df = json.loads((out / "dfsc.json").read_text())
    assert md["dfsc"]["sphericity"] == df["info"]["sphericity"]
    assert md["dfsc"]["global_resolution_a"] == df["info"]["global_resolution_a"]
    assert md["dfsc"]["monodir_median_anisotropy_a"] == md["info"]["median_anisotropy_a"]
    assert "monodir_dfsc.png" in md["outputs"]
    assert (out / "monodir_dfsc.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("case, words", [("grid", "shape"), ("small", "too small"), ("mask", "empty")])
def test_infer_bad_input_one_error_line_nothing_written(tmp_path, capsys, case, words):
    from locres.core.maps import MapGeometry
    from locres.io.maps import write_map

    h1, h2 = _halves(None)
    if case == "small":
        h1, h2 = h1[:24, :24, :24], h2[:24, :24, :24]
    write_map(tmp_path / "h1.mrc", h1, MapGeometry.new(h1.shape, VOXEL_A))
    h2 = h2[:, :, :40] if case == "grid" else h2
    write_map(tmp_path / "h2.mrc", h2, MapGeometry.new(h2.shape, VOXEL_A))
    argv = ["method=dfsc", f"input.half1={tmp_path / 'h1.mrc'}", f"input.half2={tmp_path / 'h2.mrc'}"]
    if case == "mask":
        write_map(tmp_path / "m.mrc", np.zeros(h1.shape, np.float32), MapGeometry.new(h1.shape, VOXEL_A))
        argv.append(f"input.mask={tmp_path / 'm.mrc'}")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        _infer([*argv, f"output.dir={out}"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert exc.value.code == 1 and len(lines) == 1 and words in lines[0].lower(), err
    assert not out.exists()


def test_cone_sums_by_shell_blocks_equal_one_pass_per_axis():
    """The blocked products give the per-axis loop's sums and nearest axes (what they replaced)."""
    import torch

    from locres.methods.monodir import hemisphere_directions

    rng = np.random.default_rng(5)
    m, n_shells = 5000, 7
    unit = rng.standard_normal((3, m))
    unit = torch.tensor(unit / np.linalg.norm(unit, axis=0), dtype=torch.float32)
    shells = torch.tensor(rng.integers(1, n_shells, m))
    vals = torch.tensor(rng.standard_normal((m, 4)))
    dirs = hemisphere_directions(30)
    cos_cone = float(np.cos(np.deg2rad(20.0)))
    sums, nearest = dfsc.cone_shell_sums(unit, shells, vals, dirs, cos_cone, n_shells, chunk=333)
    cos = np.abs(unit.double().numpy().T @ dirs.astype(np.float64).T)  # (M, D)
    want = np.zeros((len(dirs), n_shells, 4))
    for k in range(len(dirs)):
        sel = cos[:, k] >= cos_cone
        np.add.at(want[k], shells.numpy()[sel], vals.numpy()[sel])
    assert np.allclose(sums.numpy(), want, atol=1e-9)
    assert np.array_equal(nearest.numpy(), np.argmax(cos, axis=1))
