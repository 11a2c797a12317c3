"""infer.py end to end: outputs in register with the input, one-line errors, no partial outputs.

The estimator is the small ``fake`` method of tests/fake_methods.py (registered in-process, or by
running that file as a script), so these tests do not depend on any real method being installed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from locres.cli import run_cli
from locres.core.fourier import lowpass_raised_cosine
from locres.core.maps import MapGeometry
from locres.io.maps import read_map, write_map
from locres.methods import MethodInputs

REPO = Path(__file__).resolve().parents[1]
FAKE_SCRIPT = REPO / "tests" / "fake_methods.py"


def _load_fake():
    spec = importlib.util.spec_from_file_location("fake_methods", FAKE_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


fake = _load_fake()


@pytest.fixture
def fake_registered(monkeypatch, tmp_path):
    """Register the fake method in this process; returns a configs/ copy that has method/fake.yaml."""
    import locres.methods as registry

    monkeypatch.setitem(sys.modules, "locres.methods.fake", fake)
    monkeypatch.setattr(registry, "METHOD_NAMES", (*registry.METHOD_NAMES, "fake"))
    return fake.config_dir_with_fake(tmp_path / "cfg")


def _awkward_geometry(shape_zyx, voxel_size_a=1.3):
    """Odd, non-cubic grid with a non-zero origin, non-zero nstart and a permuted axis order."""
    g = MapGeometry.new(shape_zyx, voxel_size_a, origin_xyz_a=(12.5, -7.25, 3.0))
    return replace(g, nstart_xyz=(-5, 3, 7), axis_order=(2, 1, 3))


def _write_density(path, shape_zyx=(25, 30, 27), voxel_size_a=1.3, seed=0, geometry=None):
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape_zyx], indexing="ij")
    blob = np.exp(-(x**2 + y**2 + z**2) / 0.3)
    noise = rng.standard_normal(shape_zyx).astype(np.float32)
    data = lowpass_raised_cosine((noise * blob).astype(np.float32), voxel_size_a, 5.0) + 0.5 * blob
    write_map(path, data, geometry or _awkward_geometry(shape_zyx, voxel_size_a))
    return data


def _infer(cfg_dir, argv):
    from locres.pipeline import infer_from_config

    def task(cfg):  # what infer.py does: the library returns the table, the entry point prints it
        print(infer_from_config(cfg, config_dir=cfg_dir)["table"])

    run_cli(task, "infer", config_dir=cfg_dir, argv=argv)


def _error_lines(text):
    return [ln for ln in text.splitlines() if ln.startswith("error:")]


def test_infer_subprocess_writes_outputs_in_register(tmp_path):
    map_path = tmp_path / "odd map.mrc"
    data = _write_density(map_path)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(FAKE_SCRIPT), "method=fake", f"input.map={map_path}", f"output.dir={out}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    for suffix in (".mrc", ".json", ".png", ".cxc"):
        assert (out / f"fake{suffix}").stat().st_size > 0
    assert (out / "fake_mask.mrc").exists() and (out / "fake_local_frequency.mrc").exists()
    assert not list(out.glob(".locres-partial-*")) and not (tmp_path / "outputs").exists()
    assert not (tmp_path / ".hydra").exists()

    src, res = read_map(map_path), read_map(out / "fake.mrc")
    assert res.data.shape == src.data.shape == (25, 30, 27)
    gs, gr = src.geometry, res.geometry
    assert gr.voxel_size_xyz_a == pytest.approx(gs.voxel_size_xyz_a)
    assert gr.origin_xyz_a == pytest.approx(gs.origin_xyz_a)
    assert gr.nstart_xyz == gs.nstart_xyz == (-5, 3, 7)
    assert gr.axis_order == gs.axis_order == (2, 1, 3)
    with mrcfile.open(map_path) as a, mrcfile.open(out / "fake.mrc") as b:
        for key in (
            "nx",
            "ny",
            "nz",
            "mapc",
            "mapr",
            "maps",
            "nxstart",
            "nystart",
            "nzstart",
            "mx",
            "my",
            "mz",
        ):
            assert int(a.header[key]) == int(b.header[key]), key
        assert np.allclose(a.header.cella.tolist(), b.header.cella.tolist())
        assert np.allclose(a.header.origin.tolist(), b.header.origin.tolist())
    # in register voxel for voxel: the file equals the estimator run on the array read back
    expected = fake.run(MethodInputs(voxel_size_a=src.voxel_size_a, map=data)).resolution_a
    np.testing.assert_allclose(res.data, expected, rtol=1e-5, atol=1e-5)

    cxc = (out / "fake.cxc").read_text()
    opened = [ln.split(maxsplit=1)[1].strip('"') for ln in cxc.splitlines() if ln.startswith("open ")]
    assert opened == ["../odd map.mrc", "fake.mrc"]
    assert [(out / p).resolve() for p in opened] == [map_path.resolve(), (out / "fake.mrc").resolve()]

    summary = json.loads((out / "fake.json").read_text())
    est = expected[expected > 0]
    assert summary["method"] == "fake" and summary["voxels_estimated"] == est.size
    assert summary["median_a"] == pytest.approx(float(np.median(est)), rel=1e-5)
    assert summary["percentiles_a"]["95"] == pytest.approx(float(np.percentile(est, 95)), rel=1e-5)
    assert summary["voxel_size_a"] == pytest.approx(1.3)
    assert summary["mask_source"] == "method" and summary["locres_version"]
    assert summary["seconds"] >= 0 and summary["peak_memory_mb"] > 0
    assert "median" in proc.stdout and "fake" in proc.stdout


def test_subprocess_bad_input_one_error_line(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "infer.py"),
            "method=nosuch",
            f"input.map={tmp_path / 'missing.mrc'}",
            f"output.dir={out}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert len(_error_lines(proc.stderr)) == 1 and "unknown method 'nosuch'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def _bad_inputs(tmp_path):
    """(name, argv without output.dir, expected words in the error) for every kind of bad input."""
    good = tmp_path / "good.mrc"
    _write_density(good)
    cases = []
    notmrc = tmp_path / "notmrc.mrc"
    notmrc.write_bytes(b"this is not a map" * 10)
    nan = tmp_path / "nan.mrc"
    arr = np.ones((9, 10, 11), np.float32)
    arr[2, 3, 4] = np.nan
    write_map(nan, arr, MapGeometry.new(arr.shape, 1.0))
    const = tmp_path / "const.mrc"
    write_map(const, np.full((9, 10, 11), 3.0, np.float32), MapGeometry.new((9, 10, 11), 1.0))
    novox = tmp_path / "novox.mrc"
    with mrcfile.new(novox) as m:
        m.set_data(np.random.default_rng(0).random((9, 10, 11)).astype(np.float32))
        m.header.cella = (0.0, 0.0, 0.0)
    empty_mask = tmp_path / "empty_mask.mrc"
    write_map(empty_mask, np.zeros((25, 30, 27), np.float32), _awkward_geometry((25, 30, 27)))
    far_mask = tmp_path / "far_mask.mrc"
    write_map(
        far_mask, np.ones((10, 10, 10), np.float32), MapGeometry.new((10, 10, 10), 1.3, (900.0, 900.0, 900.0))
    )
    other_shape = tmp_path / "other_shape.mrc"
    _write_density(other_shape, shape_zyx=(25, 30, 29))
    other_vox = tmp_path / "other_vox.mrc"
    _write_density(other_vox, voxel_size_a=1.5)
    cases += [
        ("missing", ["method=fake", f"input.map={tmp_path / 'nope.mrc'}"], "not found"),
        ("not mrc", ["method=fake", f"input.map={notmrc}"], "not a readable"),
        ("nan", ["method=fake", f"input.map={nan}"], "NaN"),
        ("constant", ["method=fake", f"input.map={const}"], "constant"),
        ("no voxel size", ["method=fake", f"input.map={novox}"], "voxel size"),
        ("zero voxel size", ["method=fake", f"input.map={good}", "input.voxel_size=0"], "voxel_size"),
        ("empty mask", ["method=fake", f"input.map={good}", f"input.mask={empty_mask}"], "empty"),
        ("far mask", ["method=fake", f"input.map={good}", f"input.mask={far_mask}"], "overlap"),
        ("half shapes", ["method=fake", f"input.half1={good}", f"input.half2={other_shape}"], "shapes"),
        (
            "half voxel sizes",
            ["method=fake", f"input.half1={good}", f"input.half2={other_vox}"],
            "voxel sizes",
        ),
        ("one half", ["method=fake", f"input.half1={good}"], "both half maps"),
        ("unknown method", ["method=nosuch", f"input.map={good}"], "unknown method 'nosuch'"),
        ("unknown key", ["method=fake", f"input.mapp={good}"], "input.mapp"),
        ("method fails", ["method=fake", "method.fail=true", f"input.map={good}"], "fake failure"),
    ]
    return cases


def test_bad_inputs_one_error_line_and_no_output(fake_registered, tmp_path, capsys):
    for name, argv, words in _bad_inputs(tmp_path):
        out = tmp_path / ("out_" + re.sub(r"\W", "_", name))
        with pytest.raises(SystemExit) as exc:
            _infer(fake_registered, [*argv, f"output.dir={out}"])
        err = capsys.readouterr().err
        assert exc.value.code == 1, name
        lines = _error_lines(err)
        assert len(lines) == 1, (name, err)
        assert words.lower() in lines[0].lower(), (name, lines[0])
        assert "Traceback" not in err, name
        assert not out.exists(), name


def test_existing_output_dir_keeps_old_files_on_error(fake_registered, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    good = tmp_path / "good.mrc"
    _write_density(good)
    with pytest.raises(SystemExit):
        _infer(fake_registered, ["method=fake", "method.fail=true", f"input.map={good}", f"output.dir={out}"])
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_halves_need_method_that_takes_halves(fake_registered, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fake, "INPUTS", "halves")
    good = tmp_path / "good.mrc"
    _write_density(good)
    out = tmp_path / "out"
    with pytest.raises(SystemExit):
        _infer(fake_registered, ["method=fake", f"input.map={good}", f"output.dir={out}"])
    assert "needs two half maps" in capsys.readouterr().err and not out.exists()


def test_mask_on_other_grid_is_resampled(fake_registered, tmp_path, capsys):
    """A mask on a coarser grid with another origin lands on the map's voxels (binarised at 0.5)."""
    shape = (25, 30, 27)
    g = _awkward_geometry(shape)
    good = tmp_path / "good.mrc"
    _write_density(good, geometry=g)
    # a box mask in Angstrom coordinates, sampled on a grid with twice the voxel size and an offset corner
    corner = g.corner_xyz_a
    mg = MapGeometry.new((20, 20, 20), 2.6, origin_xyz_a=tuple(corner - 2.6 * 3 + 0.65))
    zz, yy, xx = np.mgrid[:20, :20, :20]
    box = ((xx >= 6) & (xx <= 12) & (yy >= 6) & (yy <= 12) & (zz >= 6) & (zz <= 12)).astype(np.float32)
    mask_path = tmp_path / "mask.mrc"
    write_map(mask_path, box, mg)
    out = tmp_path / "out"
    _infer(
        fake_registered, ["method=fake", f"input.map={good}", f"input.mask={mask_path}", f"output.dir={out}"]
    )
    res = read_map(out / "fake.mrc").data
    est = res > 0
    # trilinear mask >= 0.5 spans mask indices 5.5..12.5 -> corner + (7.15..25.35) A -> map voxels 5.5..19.5
    idx = np.argwhere(est)
    assert idx.min(axis=0).tolist() == [6, 6, 6] and idx.max(axis=0).tolist() == [19, 19, 19]
    assert not (out / "fake_mask.mrc").exists()  # the input mask was used, none made
    assert json.loads((out / "fake.json").read_text())["mask_source"] == "input"


def test_voxel_size_override(fake_registered, tmp_path, capsys):
    good = tmp_path / "good.mrc"
    _write_density(good)
    out = tmp_path / "out"
    _infer(fake_registered, ["method=fake", f"input.map={good}", "input.voxel_size=2.0", f"output.dir={out}"])
    res = read_map(out / "fake.mrc")
    assert res.geometry.voxel_size_xyz_a == pytest.approx((2.0, 2.0, 2.0))
    assert json.loads((out / "fake.json").read_text())["voxel_size_a"] == pytest.approx(2.0)


def test_method_all_compares_and_skips_failures(fake_registered, tmp_path, capsys, monkeypatch):
    import locres.methods as registry

    monkeypatch.setattr(registry, "METHOD_NAMES", ("fake", "monotomo_missing_x"))
    monkeypatch.setattr(registry, "methods_for_inputs", lambda inputs: ["fake", "monotomo_missing_x"])
    good = tmp_path / "good.mrc"
    _write_density(good)
    out = tmp_path / "out"
    _infer(fake_registered, ["method=all", f"input.map={good}", f"output.dir={out}"])
    comp = json.loads((out / "compare.json").read_text())
    assert "monotomo_missing_x" in comp["skipped"] and "fake" in comp["methods"]
    assert (out / "compare.png").stat().st_size > 0 and (out / "fake.mrc").exists()
    assert "skipped" in capsys.readouterr().out


def test_sharpening_check_end_to_end(fake_registered, tmp_path, capsys):
    """Strong sharpening (B = -400 A^2) of a noisy map reads as over-sharpened; blurring as under."""
    from locres.core.fourier import apply_bfactor

    v, n = 1.0, 40
    geo = MapGeometry.new((n, n, n), v)
    rng = np.random.default_rng(1)
    z, y, x = np.mgrid[:n, :n, :n] - n / 2
    blob = np.exp(-(x**2 + y**2 + z**2) / (2 * 8.0**2))
    clean = lowpass_raised_cosine((rng.standard_normal(geo.shape_zyx) * blob).astype(np.float32), v, 4.0)
    noisy = clean / clean.std() + 0.2 * rng.standard_normal(geo.shape_zyx).astype(np.float32)
    orig = apply_bfactor(noisy, v, 100.0)  # the unsharpened map, blurred as deposited
    write_map(tmp_path / "orig.mrc", orig, geo)
    write_map(tmp_path / "mask.mrc", (blob > 0.3).astype(np.float32), geo)
    write_map(tmp_path / "sharp.mrc", apply_bfactor(orig, v, -400.0), geo)
    write_map(tmp_path / "blur.mrc", apply_bfactor(orig, v, 150.0), geo)
    verdicts = {}
    for name in ("sharp", "blur"):
        out = tmp_path / f"out_{name}"
        _infer(
            fake_registered,
            [
                "method=fake",
                f"input.map={tmp_path / f'{name}.mrc'}",
                f"input.reference_map={tmp_path / 'orig.mrc'}",
                f"input.mask={tmp_path / 'mask.mrc'}",
                f"output.dir={out}",
            ],
        )
        check = json.loads((out / "sharpening.json").read_text())
        verdicts[name] = check["verdict"]
        assert (out / "sharpening.png").exists() and (out / "fake_reference.mrc").exists()
    assert verdicts == {"sharp": "over-sharpened", "blur": "under-sharpened"}
    assert "sharpening check: under-sharpened" in capsys.readouterr().out


def _deepres_checkpoint(tmp_path) -> Path:
    """The bundled checkpoint when it exists, else an untrained compact net (geometry does not need skill)."""
    from locres.pipeline.infer import DEMO_CHECKPOINT

    if DEMO_CHECKPOINT.exists():
        return DEMO_CHECKPOINT
    import torch

    from locres.io.checkpoints import export_slim
    from locres.models.nets import CompactResNet

    torch.manual_seed(0)
    net = CompactResNet()
    cfg = {"_target_": "locres.models.nets.CompactResNet"}
    return export_slim(tmp_path / "untrained.pt", net, 1.0, (2.0, 15.0), net_config=cfg)


@pytest.mark.slow
@pytest.mark.shared
def test_shared_maps_deepres_with_and_without_mask_overlay_input(shared_data, tmp_path, capsys):
    """Every shared map through method=deepres, without a mask and then with one (the given mask, or the
    automatic mask written by the first run): every output map overlays the input exactly."""
    ckpt = _deepres_checkpoint(tmp_path)
    maps = sorted(
        p for p in (shared_data / "maps").rglob("*") if p.suffix in (".mrc", ".map") and "mask" not in p.name
    )
    assert len(maps) >= 7
    for path in maps:
        src = read_map(path)
        given = [m for m in path.parent.iterdir() if "mask" in m.name]
        for with_mask in (False, True):
            out = tmp_path / f"{path.stem}_{'mask' if with_mask else 'auto'}"
            argv = ["method=deepres", f"method.checkpoint={ckpt}", f"input.map={path}", f"output.dir={out}"]
            if with_mask:
                mask = given[0] if given else tmp_path / f"{path.stem}_auto" / "deepres_mask.mrc"
                argv.append(f"input.mask={mask}")
            run_cli(
                lambda cfg: __import__("locres.pipeline", fromlist=["x"]).infer_from_config(
                    cfg, REPO / "configs"
                ),
                "infer",
                REPO / "configs",
                argv=argv,
            )
            for written in sorted(out.glob("deepres*.mrc")):
                res = read_map(written)
                assert res.data.shape == src.data.shape, written
                assert res.geometry.same_grid(src.geometry), written
                assert res.geometry.nstart_xyz == src.geometry.nstart_xyz, written
                assert res.geometry.axis_order == src.geometry.axis_order, written
                assert res.geometry.origin_xyz_a == pytest.approx(src.geometry.origin_xyz_a), written
            summary = json.loads((out / "deepres.json").read_text())
            assert summary["voxels_estimated"] > 0 and summary["median_a"] is not None, path
            assert summary["mask_source"] == ("input" if with_mask else "method")
