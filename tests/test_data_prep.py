"""data_prep/simulate_training_set.py: shards + manifest, failures counted, resumable, cluster shards."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from locres.data.shards import ShardModel, read_manifests
from locres.errors import LocresError

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "locres" / "examples" / "emd_3488" / "5me2.pdb"


def _prepare():
    spec = importlib.util.spec_from_file_location("simulate_training_set",
                                                  REPO / "data_prep" / "simulate_training_set.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.prepare


def _cfg(models_dir, out_dir, **kw):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base=None):
        cfg = OmegaConf.create(OmegaConf.to_container(compose(config_name="data_prep")))  # recipe included
    cfg.models_dir, cfg.out_dir = str(models_dir), str(out_dir)
    cfg.views, cfg.maps_per_view, cfg.workers, cfg.progress = 1, 2, 1, False
    for k, v in kw.items():
        OmegaConf.update(cfg, k, v)
    return cfg


@pytest.fixture
def models_dir(tmp_path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    shutil.copy(MODEL, d / "5me2.pdb")
    shutil.copy(MODEL, d / "9xyz.pdb")
    (d / "broken.cif").write_text("data_broken\nthis is not an mmCIF file at all\n")
    return d


def test_shards_manifest_failures_and_resume(models_dir, tmp_path):
    prepare = _prepare()
    out = tmp_path / "shards"
    m = prepare(_cfg(models_dir, out))
    assert set(m["shards"]) == {"5me2", "9xyz"}
    assert set(m["failures"]) == {"broken"} and m["n_failures"] == 1
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))
    merged = read_manifests(out)
    assert set(merged["shards"]) == {"5me2", "9xyz"}
    shard = ShardModel(out / "5me2.npz")
    m0, mask, res = shard.stored_map(0, 0)
    lo, hi = m["recipe"]["resolution_range_a"]
    assert lo <= res <= hi and mask.shape == m0.shape and mask.any()
    # the stored label is the filter resolution: no power beyond 1/res (float16 storage noise aside)
    from locres.core.fourier import frequency_grid_per_a

    p = np.abs(np.fft.rfftn(m0)) ** 2
    f = frequency_grid_per_a(m0.shape, 1.0)
    assert p[f > 1.0 / res + 0.02].sum() < 1e-5 * p.sum()
    # resumable: a second run skips finished shards and leaves them untouched
    mtime = (out / "5me2.npz").stat().st_mtime_ns
    m2 = prepare(_cfg(models_dir, out))
    assert (out / "5me2.npz").stat().st_mtime_ns == mtime
    assert set(m2["shards"]) == {"5me2", "9xyz"}


def test_cluster_shards_cover_the_folder_once(models_dir, tmp_path):
    prepare = _prepare()
    out = tmp_path / "shards"
    a = prepare(_cfg(models_dir, out, shard=0, num_shards=2))
    b = prepare(_cfg(models_dir, out, shard=1, num_shards=2))
    done = set(a["shards"]) | set(a["failures"]), set(b["shards"]) | set(b["failures"])
    assert not (done[0] & done[1]) and done[0] | done[1] == {"5me2", "9xyz", "broken"}
    assert len(list(out.glob("manifest_*_of_002.json"))) == 2
    assert set(read_manifests(out)["shards"]) == {"5me2", "9xyz"}


def test_bad_inputs_are_one_line_errors(tmp_path):
    prepare = _prepare()
    with pytest.raises(LocresError, match="not found"):
        prepare(_cfg(tmp_path / "missing", tmp_path / "o"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(LocresError, match="no atomic models"):
        prepare(_cfg(tmp_path / "empty", tmp_path / "o"))
    with pytest.raises(LocresError, match="no manifest"):
        read_manifests(tmp_path / "empty")
    r = subprocess.run([sys.executable, str(REPO / "data_prep" / "simulate_training_set.py"),
                        f"models_dir={tmp_path / 'missing'}", f"out_dir={tmp_path / 'o'}"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error: models folder not found")
    assert len(r.stderr.strip().splitlines()) == 1


def test_manifest_json_is_plain(models_dir, tmp_path):
    prepare = _prepare()
    out = tmp_path / "s"
    prepare(_cfg(models_dir, out, limit=1))
    m = json.loads((out / "manifest.json").read_text())
    assert m["format"] == "locres-shards-v1" and m["n_models"] == 1
