"""Simulate a training set: a folder of atomic models -> one ``.npz`` shard per model + a manifest.

    python data_prep/simulate_training_set.py models_dir=DIR out_dir=OUT workers=2
    python data_prep/simulate_training_set.py ... shard=3 num_shards=10      # one part on a cluster

Parallel over ``workers`` processes; resumable (a shard that exists is skipped; shards are written
atomically); a model that fails to parse is skipped with a warning and counted in the manifest. The
shard format is documented in :mod:`locres.data.shards`; the recipe in ``configs/recipe/default.yaml``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from locres.cli import run_cli  # noqa: E402
from locres.data.shards import (  # noqa: E402
    FORMAT,
    manifest_name,
    shard_path,
    views_to_arrays,
)
from locres.data.simulated import Recipe, analytical_label_map, render_map, simulate_view  # noqa: E402
from locres.data.splits import model_files, split_of  # noqa: E402
from locres.errors import LocresError  # noqa: E402
from locres.io.atomic import atomic_write_json  # noqa: E402
from locres.io.models import entry_id, read_structure  # noqa: E402

log = logging.getLogger("data_prep.simulate_training_set")


def model_seed(entry: str, seed: int) -> int:
    return int(hashlib.sha1(f"{seed}:{entry}".encode()).hexdigest()[:8], 16)


def simulate_model(path: Path, out_dir: Path, recipe: Recipe, views: int, maps_per_view: int,
                   labels: list[str], seed: int) -> dict:
    """Simulate one model and write its shard. Returns a manifest record (or ``{"error": ...}``)."""
    t0 = time.perf_counter()
    entry = entry_id(path)
    try:
        structure = read_structure(path)
        rng = np.random.default_rng(model_seed(entry, seed))
        vs, maps, masks, res, bfs = [], [], [], [], []
        lab: dict[str, list] = {m: [] for m in labels}
        for i in range(views):
            view = simulate_view(structure, recipe, rng, jitter=(i > 0 and rng.random() < recipe.p_jitter))
            r = np.array([recipe.draw_resolution(rng) for _ in range(maps_per_view)], dtype=np.float32)
            b = np.array([float(rng.uniform(*recipe.bfactor_range_a2)) if rng.random() < recipe.p_bfactor
                          else 0.0 for _ in range(maps_per_view)], dtype=np.float32)
            rendered = [render_map(view, float(rk), recipe, rng, bfactor_a2=float(bk), augment=False)
                        for rk, bk in zip(r, b)]
            vs.append(view)
            maps.append(np.stack([m for m, _ in rendered]))
            masks.append(rendered[0][1])
            res.append(r)
            bfs.append(b)
            for name in labels:
                lab[name].append(np.stack([analytical_label_map(name, m, mk, recipe.voxel_size_a, rng)
                                           for m, mk in rendered]))
        arrays = views_to_arrays(entry, recipe.voxel_size_a, vs, maps, masks, np.stack(res), np.stack(bfs),
                                 lab)
        from locres.io.atomic import atomic_write_npz

        atomic_write_npz(shard_path(out_dir, entry), arrays)
        return {"entry": entry, "file": f"{entry}.npz", "views": views, "maps_per_view": maps_per_view,
                "shape_zyx": list(maps[0].shape[1:]), "labels": list(labels),
                "seconds": round(time.perf_counter() - t0, 3)}
    except LocresError as exc:
        return {"entry": entry, "error": str(exc)}
    except Exception as exc:  # a model gemmi reads but cannot simulate: skip it, count it
        return {"entry": entry, "error": f"{type(exc).__name__}: {exc}"}


def _work(args):
    return simulate_model(*args)


def prepare(cfg) -> dict:
    """Run data_prep for ``cfg`` (a DictConfig or dict). Returns the manifest written."""
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)) if not isinstance(cfg, dict) else \
        OmegaConf.create(cfg)
    recipe = Recipe(**{k: (tuple(v) if isinstance(v, list | tuple) or OmegaConf.is_list(v) else v)
                       for k, v in cfg.recipe.items()})
    if not (0 <= cfg.shard < cfg.num_shards):
        raise LocresError(f"shard must be in [0, num_shards), got shard={cfg.shard} "
                          f"num_shards={cfg.num_shards}")
    files = model_files(cfg.models_dir)
    files = [p for i, p in enumerate(files) if i % cfg.num_shards == cfg.shard]
    if cfg.limit:
        files = files[: int(cfg.limit)]
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = list(cfg.labels or [])
    todo, done = [], {}
    for p in files:
        if shard_path(out_dir, entry_id(p)).exists():
            done[entry_id(p)] = {"file": f"{entry_id(p)}.npz", "resumed": True}
        else:
            todo.append(p)
    log.info("%d models in this shard: %d already done, %d to simulate with %d workers",
             len(files), len(done), len(todo), cfg.workers)
    manifest_file = out_dir / manifest_name(cfg.shard, cfg.num_shards)
    old = {}
    if manifest_file.exists():
        import json

        try:
            old = json.loads(manifest_file.read_text()).get("shards", {})
        except (OSError, ValueError):
            old = {}
    shards = {e: old.get(e, rec) for e, rec in done.items()}
    failures: dict[str, str] = {}
    t0 = time.perf_counter()
    jobs = [(p, out_dir, recipe, int(cfg.views), int(cfg.maps_per_view), labels, int(cfg.seed)) for p in todo]

    def manifest() -> dict:
        return {"format": FORMAT, "recipe": OmegaConf.to_container(cfg.recipe), "views": int(cfg.views),
                "maps_per_view": int(cfg.maps_per_view), "labels": labels, "seed": int(cfg.seed),
                "shard": int(cfg.shard), "num_shards": int(cfg.num_shards), "models_dir": str(cfg.models_dir),
                "n_models": len(files), "n_shards": len(shards), "n_failures": len(failures),
                "shards": shards, "failures": failures, "seconds": round(time.perf_counter() - t0, 2)}

    bar = tqdm(total=len(jobs), desc="data_prep", unit="model", disable=not cfg.progress)

    def record(rec: dict) -> None:
        e = rec.pop("entry")
        if "error" in rec:
            log.warning("skipping %s: %s", e, rec["error"])
            failures[e] = rec["error"]
        else:
            rec["split"] = split_of(e)
            shards[e] = rec
        bar.update(1)
        atomic_write_json(manifest_file, manifest(), sort_keys=True)

    if int(cfg.workers) <= 1 or len(jobs) <= 1:
        for j in jobs:
            record(_work(j))
    else:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        with get_context("spawn" if sys.platform == "darwin" else "fork").Pool(int(cfg.workers)) as pool:
            for rec in pool.imap_unordered(_work, jobs):
                record(rec)
    bar.close()
    m = manifest()
    atomic_write_json(manifest_file, m, sort_keys=True)
    log.info("wrote %d shards (%d failed) to %s in %.1f s", len(shards), len(failures), out_dir, m["seconds"])
    if not shards:
        raise LocresError(f"no model of {cfg.models_dir} could be simulated ({len(failures)} failures)")
    return m


if __name__ == "__main__":
    run_cli(prepare, config_name="data_prep")
