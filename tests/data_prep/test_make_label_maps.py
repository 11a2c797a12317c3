"""make_label_maps: finds maps, half pairs and masks in a folder, writes label maps, resumes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from locres.cli import run_cli
from locres.core.maps import MapGeometry
from locres.io.maps import read_map, write_map

REPO = Path(__file__).resolve().parents[2]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


fake = _load("fake_methods", REPO / "tests" / "fake_methods.py")
mlm = _load("make_label_maps", REPO / "data_prep" / "make_label_maps.py")


def test_folder_jobs_run_and_resume(tmp_path, monkeypatch, capsys, rng):
    import locres.methods as registry

    monkeypatch.setitem(sys.modules, "locres.methods.fake", fake)
    monkeypatch.setattr(registry, "METHOD_NAMES", (*registry.METHOD_NAMES, "fake"))
    cfg_dir = fake.config_dir_with_fake(tmp_path / "cfg")
    data = tmp_path / "maps"
    g = MapGeometry.new((12, 14, 13), 1.5, origin_xyz_a=(3.0, 0.0, -6.0))
    for rel in ("a/a.mrc", "a/a_mask.mrc", "b/b_half1.mrc", "b/b_half2.mrc", "c.map"):
        arr = rng.standard_normal(g.shape_zyx).astype(np.float32)
        if "mask" in rel:
            arr = np.zeros(g.shape_zyx, np.float32)
            arr[3:9, 3:10, 3:10] = 1
        write_map(data / rel, arr, g)
    jobs = mlm.jobs_in_folder(data)
    assert [j["key"] for j in jobs] == ["a__a", "b__b_half", "c"]
    assert jobs[0]["mask"].name == "a_mask.mrc" and jobs[1]["half2"].name == "b_half2.mrc"

    out = tmp_path / "labels"
    argv = [f"inputs={data}", "method=fake", f"out_dir={out}"]
    run_cli(mlm.main, "label_maps", cfg_dir, argv=argv)
    manifest = json.loads((out / "label_maps.json").read_text())
    assert [j["status"] for j in manifest["jobs"]] == ["done"] * 3
    label = read_map(out / "a__a" / "fake.mrc")
    assert label.data.shape == (12, 14, 13) and label.geometry.same_grid(g)
    assert np.count_nonzero(label.data) == 6 * 7 * 7  # the folder's mask was used
    run_cli(mlm.main, "label_maps", cfg_dir, argv=argv)  # second run: everything is skipped
    manifest = json.loads((out / "label_maps.json").read_text())
    assert [j["status"] for j in manifest["jobs"]] == ["done before"] * 3


def test_modelfsc_labels_use_the_model_beside_the_map(tmp_path):
    from locres.io.models import read_structure
    from locres.simulate.density import atom_positions_a, model_footprint, simulate_map_in_frame

    st = read_structure(REPO / "locres" / "examples" / "emd_3488" / "5me2.pdb")
    while len(st[0]) > 1:
        del st[0][len(st[0]) - 1]
    data = tmp_path / "maps" / "emd"
    data.mkdir(parents=True)
    st.write_pdb(str(data / "chainA.pdb"))
    lo, hi = atom_positions_a(st).min(0) - 5.0, atom_positions_a(st).max(0) + 5.0
    n = np.ceil((hi - lo) / 1.5).astype(int)
    g = MapGeometry.new(tuple(int(k) for k in n[::-1]), 1.5, origin_xyz_a=tuple(lo))
    write_map(data / "emd.mrc", simulate_map_in_frame(st, g, b_factor_a2=60.0), g)
    (jobs,) = mlm.jobs_in_folder(tmp_path / "maps")
    assert jobs["model"].name == "chainA.pdb"
    listed = tmp_path / "jobs.txt"
    listed.write_text(f"{data / 'emd.mrc'} model={data / 'chainA.pdb'}  # one map and its model\n")
    assert mlm.jobs_from_list(listed)[0]["model"] == data / "chainA.pdb"

    out = tmp_path / "labels"
    run_cli(mlm.main, "label_maps", REPO / "configs", argv=[f"list_file={listed}", "method=modelfsc",
                                                            f"out_dir={out}"])
    label = read_map(out / "emd" / "modelfsc.mrc")
    assert label.geometry.same_grid(g)
    assert np.array_equal(label.data > 0, model_footprint(st, g))  # labels inside the model's footprint
