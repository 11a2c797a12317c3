"""Many maps: one folder per map, done markers, resume after a kill, one table; launchers and the extra."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from locres.cli import run_cli
from locres.core.maps import MapGeometry
from locres.errors import LocresError
from locres.io.maps import write_map
from locres.pipeline import batch
from locres.pipeline.outputs import partial_prefix
from locres.simulate.phantom import make_synthetic_phantom

REPO = Path(__file__).resolve().parents[2]
FAKE_SCRIPT = REPO / "tests" / "fake_methods.py"


def _load_fake():
    spec = importlib.util.spec_from_file_location("fake_methods", FAKE_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


fake = _load_fake()


@pytest.fixture
def fake_registered(monkeypatch, tmp_path):
    import locres.methods as registry

    monkeypatch.setitem(sys.modules, "locres.methods.fake", fake)
    monkeypatch.setattr(registry, "METHOD_NAMES", (*registry.METHOD_NAMES, "fake"))
    return fake.config_dir_with_fake(tmp_path / "cfg")


def _maps(folder: Path, n: int = 3, shape=(24, 24, 24), masked: int | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        ph = make_synthetic_phantom(shape, 1.2, (3.0, 8.0), seed=i)
        data = ph.map * ph.mask if i == masked else ph.map
        p = folder / f"m{i}.mrc"
        write_map(p, data, MapGeometry.new(shape, 1.2))
        paths.append(p)
    return paths


def _infer(cfg_dir, argv):
    from locres.pipeline import infer_from_config

    run_cli(lambda cfg: print(infer_from_config(cfg, config_dir=cfg_dir)["table"]), "infer",
            config_dir=cfg_dir, argv=argv)


def _table(out: Path) -> list[dict]:
    with open(out / "summary.csv") as fh:
        return list(csv.DictReader(fh))


def test_expand_maps_folder_glob_list_and_names(tmp_path):
    a, b, c = _maps(tmp_path / "d", 3, shape=(8, 8, 8))
    write_map(tmp_path / "d" / "m0_mask.mrc", np.ones((8, 8, 8), np.float32), MapGeometry.new((8, 8, 8), 1.2))
    (tmp_path / "d" / "notes.txt").write_text("x")
    assert batch.expand_maps(str(tmp_path / "d"), exclude=["*mask*"]) == [a, b, c]
    assert len(batch.expand_maps(str(tmp_path / "d"))) == 4
    assert batch.expand_maps(str(tmp_path / "d" / "m[12].mrc")) == [b, c]
    lst = tmp_path / "d" / "maps.txt"
    lst.write_text("# two maps\nm2.mrc\n\nm0.mrc  # first\n")
    assert batch.expand_maps(str(lst)) == [tmp_path / "d" / "m2.mrc", tmp_path / "d" / "m0.mrc"]
    assert batch.expand_maps([str(a), str(a), str(b)]) == [a, b]
    assert batch.map_name("x/emd_1.map.gz") == "emd_1" and batch.map_name("y.MRC") == "y"
    (tmp_path / "e").mkdir()
    write_map(tmp_path / "e" / "m0.map", np.ones((8, 8, 8), np.float32), MapGeometry.new((8, 8, 8), 1.2))
    with pytest.raises(LocresError, match="share the output folder 'm0'"):
        batch.expand_maps([str(a), str(tmp_path / "e" / "m0.map")])
    for bad, msg in ((tmp_path / "nothing", "neither"), (tmp_path / "*.nope", "no map file")):
        with pytest.raises(LocresError, match=msg):
            batch.expand_maps(str(bad))


def test_run_batch_markers_failures_and_resume_after_kill(tmp_path):
    maps = [tmp_path / f"{n}.mrc" for n in ("a", "b", "c")]
    calls = []

    def run(path, folder, kill_at=None, fail_at=None):
        calls.append(path.stem)
        folder.mkdir(parents=True, exist_ok=True)
        if path.stem == kill_at:  # what a killed OutputStage leaves (a process that is gone)
            (folder / f"{partial_prefix().rsplit('-', 2)[0]}-999999999-abc").mkdir()
            raise KeyboardInterrupt
        if path.stem == fail_at:
            raise LocresError(f"{path.stem} is broken")
        (folder / "fake.json").write_text(json.dumps({"median_a": 4.0 + len(calls), "advisories": [
            {"code": "masked", "message": "m"}]}))

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        batch.run_batch(maps, "fake", out, lambda p, f: run(p, f, kill_at="b"))
    assert batch.is_done(out / "a", "fake") and not batch.is_done(out / "b", "fake")
    assert [r["map"] for r in _table(out)] == ["a"]  # the killed map does not count
    calls.clear()
    with pytest.raises(LocresError, match="1 of 3 maps failed: c"):
        batch.run_batch(maps, "fake", out, lambda p, f: run(p, f, fail_at="c"))
    assert calls == ["b", "c"]  # a skipped, b finished now, c failed
    assert not list((out / "b").glob(".locres-partial-*"))  # the killed run's staging folder is gone
    rows = _table(out)
    assert [(r["map"], r["status"][:6]) for r in rows] == [("a", "done"), ("b", "done"), ("c", "failed")]
    assert rows[0]["advisories"] == "masked" and float(rows[1]["median_a"]) == 5.0
    calls.clear()
    batch.run_batch(maps, "fake", out, run)
    assert calls == ["c"] and all(r["status"] == "done" for r in _table(out))
    assert not (out / "c" / batch.FAILED / "fake.json").exists()
    assert json.loads((out / "summary.json").read_text())["maps"][2]["map"] == "c"


def test_infer_input_maps_end_to_end(fake_registered, tmp_path, capsys):
    _maps(tmp_path / "maps", 3, masked=1)
    out = tmp_path / "out"
    _infer(fake_registered, ["method=fake", f"input.maps={tmp_path / 'maps'}", f"output.dir={out}",
                             "output.plots=false"])
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["m0", "m1", "m2"]
    for name in ("m0", "m1", "m2"):
        assert {"fake.mrc", "fake.json", "fake.cxc"} <= {p.name for p in (out / name).iterdir()}
    summary = json.loads((out / "m1" / "fake.json").read_text())
    assert [a["code"] for a in summary["advisories"]][:1] == ["masked"]
    assert json.loads((out / "m0" / "fake.json").read_text())["advisories"] == []
    rows = _table(out)
    assert [r["map"] for r in rows] == ["m0", "m1", "m2"] and rows[1]["advisories"].startswith("masked")
    assert "m1" in capsys.readouterr().out
    stamp = (out / "m0" / "fake.mrc").stat().st_mtime_ns
    _infer(fake_registered, ["method=fake", f"input.maps={tmp_path / 'maps'}", f"output.dir={out}"])
    assert (out / "m0" / "fake.mrc").stat().st_mtime_ns == stamp  # done: skipped


def test_multirun_jobs_each_into_their_folder(fake_registered, tmp_path, capsys):
    a, b = _maps(tmp_path / "maps", 2)
    out = tmp_path / "out"
    _infer(fake_registered, ["-m", "method=fake", f"input.map={a},{b}", f"output.dir={out}",
                             "output.plots=false"])
    assert [r["map"] for r in _table(out)] == ["m0", "m1"]
    assert batch.is_done(out / "m0", "fake") and batch.is_done(out / "m1", "fake")
    assert (out / ".sweep").is_dir()  # Hydra's bookkeeping stays inside output.dir


def _subprocess(args, env_extra=None, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow  # two subprocess jobs: about 10 s on a quiet machine, minutes on a loaded one
@pytest.mark.parametrize("launcher,plugin", [("local", "hydra_joblib_launcher"),
                                             ("submitit_local", "hydra_submitit_launcher")])
def test_two_job_sweep_through_launcher(tmp_path, launcher, plugin):
    pytest.importorskip(f"hydra_plugins.{plugin}")
    a, b = _maps(tmp_path / "maps", 2, shape=(20, 20, 20))
    out = tmp_path / "out"
    proc = _subprocess(["infer.py", "-m", f"hydra/launcher={launcher}", "method=monores",
                        f"input.map={a},{b}", f"output.dir={out}", "output.plots=false",
                        "output.chimerax=false"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [r["map"] for r in _table(out)] == ["m0", "m1"]
    assert all(r["status"] == "done" and float(r["median_a"]) > 0 for r in _table(out))


def test_launcher_without_the_extra_names_it(tmp_path):
    shadow = tmp_path / "noplugins" / "hydra_plugins"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")  # a regular package hides the installed plugins
    env = {"PYTHONPATH": f"{shadow.parent}{os.pathsep}{REPO}"}
    for script, arg in (("train.py", "hydra/launcher=joblib"), ("infer.py", "hydra/launcher=slurm"),
                        ("train.py", "hydra/sweeper=train_optuna")):
        proc = _subprocess([script, "-m", arg, "seed=0,1"], env)
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-1500:]
        assert arg in errors[0] and 'pip install -e ".[cluster]"' in errors[0]
