"""infer.py method=modelfsc input.model=...: outputs in register, and bad models refused in one line."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import gemmi
import numpy as np
import pytest

from locres.cli import run_cli
from locres.core.maps import MapGeometry
from locres.io.maps import read_map, write_map
from locres.io.models import read_structure
from locres.simulate.density import atom_positions_a, model_footprint, simulate_map_in_frame

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
EXAMPLE_MODEL = REPO / "locres" / "examples" / "emd_3488" / "5me2.pdb"
V = 1.5


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One chain of the bundled model and a noisy map of it on an awkward grid (origin, nstart, axes)."""
    d = tmp_path_factory.mktemp("modelfsc")
    st = read_structure(EXAMPLE_MODEL)
    while len(st[0]) > 1:
        del st[0][len(st[0]) - 1]
    model = d / "chainA.pdb"
    st.write_pdb(str(model))
    lo, hi = atom_positions_a(st).min(0) - 6.0, atom_positions_a(st).max(0) + 6.0
    n_xyz = np.ceil((hi - lo) / V).astype(int)
    corner = lo
    geom = MapGeometry.new(tuple(int(n) for n in n_xyz[::-1]), V, origin_xyz_a=tuple(corner))
    geom = replace(geom, nstart_xyz=(-7, 4, 2), axis_order=(2, 1, 3))  # the ORIGIN places it
    clean = simulate_map_in_frame(st, geom, b_factor_a2=60.0)
    noise = np.random.default_rng(3).standard_normal(clean.shape).astype(np.float32)
    noisy = clean + 0.3 * clean.std() * noise
    path = d / "map.mrc"
    write_map(path, noisy, geom)
    return {"dir": d, "map": path, "model": model, "structure": st, "geometry": geom}


def _infer(argv):
    from locres.pipeline import infer_from_config

    def task(cfg):  # what infer.py does
        print(infer_from_config(cfg, config_dir=CONFIGS)["table"])

    run_cli(task, "infer", config_dir=CONFIGS, argv=argv)


def test_modelfsc_writes_its_map_in_register_inside_the_footprint(fitted, tmp_path):
    out = tmp_path / "out"
    _infer(["method=modelfsc", f"input.map={fitted['map']}", f"input.model={fitted['model']}",
            f"output.dir={out}"])
    for ext in ("mrc", "json", "png", "cxc"):
        assert (out / f"modelfsc.{ext}").stat().st_size > 0
    src, res = read_map(fitted["map"]), read_map(out / "modelfsc.mrc")
    assert res.data.shape == src.data.shape
    assert res.geometry.origin_xyz_a == src.geometry.origin_xyz_a
    assert res.geometry.nstart_xyz == src.geometry.nstart_xyz and res.geometry.axis_order == (2, 1, 3)
    assert res.geometry.voxel_size_xyz_a == pytest.approx(src.geometry.voxel_size_xyz_a)
    fp = model_footprint(fitted["structure"], src.geometry)
    assert np.array_equal(res.data > 0, fp)  # 0 outside the footprint, estimated inside
    summary = json.loads((out / "modelfsc.json").read_text())
    assert summary["inputs"]["model"] == str(fitted["model"])
    assert 2 * V <= summary["median_a"] < 6.0  # a B = 60 map at SNR ~ 10 agrees with its model


def test_method_all_includes_modelfsc_only_with_a_model(fitted, tmp_path):
    skip = "[deepres,blocres,resmap,monores,monodir]"
    out = tmp_path / "all"
    _infer(["method=all", f"method.skip={skip}", f"input.map={fitted['map']}",
            f"input.model={fitted['model']}", f"output.dir={out}"])
    assert "modelfsc" in json.loads((out / "compare.json").read_text())["methods"]
    from locres.methods import MethodInputs, methods_for_inputs

    m = np.zeros((4, 4, 4), np.float32)
    assert "modelfsc" not in methods_for_inputs(MethodInputs(voxel_size_a=1.0, map=m))
    assert "modelfsc" in methods_for_inputs(MethodInputs(voxel_size_a=1.0, map=m, model_map=m))


def _bad_models(fitted, d):
    far = fitted["structure"].clone()
    far[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(400.0, 0.0, 0.0)))
    far_path = d / "far.pdb"
    far.write_pdb(str(far_path))
    text = d / "notes.pdb"
    text.write_text("this is not a structure\njust some words\n")
    binary = d / "map_as_model.cif"
    binary.write_bytes(fitted["map"].read_bytes())
    m = f"input.map={fitted['map']}"
    return [
        ("far model", ["method=modelfsc", m, f"input.model={far_path}"], "does not overlap"),
        ("text", ["method=modelfsc", m, f"input.model={text}"], "atomic model"),
        ("binary", ["method=modelfsc", m, f"input.model={binary}"], "atomic model"),
        ("missing", ["method=modelfsc", m, f"input.model={d / 'nope.pdb'}"], "not found"),
        ("no model", ["method=modelfsc", m], "input.model="),
    ]


def test_bad_models_one_error_line_and_nothing_written(fitted, tmp_path, capsys):
    for name, argv, words in _bad_models(fitted, tmp_path):
        out = tmp_path / ("out_" + re.sub(r"\W", "_", name))
        with pytest.raises(SystemExit) as exc:
            _infer([*argv, f"output.dir={out}"])
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert exc.value.code == 1, name
        assert len(lines) == 1 and words.lower() in lines[0].lower(), (name, err)
        assert "Traceback" not in err, name
        assert not out.exists(), name
