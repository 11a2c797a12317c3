"""Training-set shards: one compressed ``.npz`` per atomic model, plus JSON manifests.

Layout of a shard folder (written by ``data_prep/simulate_training_set.py``)::

    OUT/manifest.json              (or manifest_<k>_of_<n>.json per cluster shard)
    OUT/<entry_id>.npz             one per model that simulated cleanly

Manifest: ``{"format": "locres-shards-v1", "recipe": {...}, "shards": {entry: {"file", "split", "views",
"maps_per_view", "shape_zyx", "seconds"}}, "failures": {entry: "message"}, "n_models": ...}``.

Each ``.npz`` holds, for views ``i = 0..V-1`` (one random rotation and simulation voxel size each):
``density_i`` (float16, unfiltered, at ``voxel_size_sim_a[i]``), ``mask_i`` (bool, same grid),
``maps_i`` (float16 ``(M, z, y, x)``, filtered at ``resolution_a[i]`` with ``bfactor_a2[i]`` and
resampled onto the model grid), ``map_mask_i`` (bool, model grid), optional ``label_<method>_i``
(float16 ``(M, z, y, x)`` analytical label maps), and the arrays ``voxel_size_sim_a (V,)``,
``rotation (V, 3, 3)``, ``resolution_a (V, M)``, ``bfactor_a2 (V, M)``, scalars ``voxel_size_a``
(model) and ``entry_id``. Writes are atomic (temporary file, then rename), so a file that exists is
complete and a resumed run skips it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from locres.data.simulated import View
from locres.errors import LocresError

log = logging.getLogger(__name__)

FORMAT = "locres-shards-v1"


def shard_path(out_dir: str | os.PathLike, entry: str) -> Path:
    return Path(out_dir) / f"{entry}.npz"


def manifest_name(shard: int = 0, num_shards: int = 1) -> str:
    return "manifest.json" if num_shards == 1 else f"manifest_{shard:03d}_of_{num_shards:03d}.json"


def read_manifests(shards_dir: str | os.PathLike) -> dict:
    """Merge every ``manifest*.json`` of a shard folder; raises a one-line error when there is none."""
    d = Path(shards_dir)
    if not d.is_dir():
        raise LocresError(
            f"shards folder not found: {d} (make one with data_prep/simulate_training_set.py "
            "or use data=simulate)"
        )
    files = sorted(d.glob("manifest*.json"))
    if not files:
        raise LocresError(f"no manifest*.json in {d}: run data_prep/simulate_training_set.py "
                          f"out_dir={d} first")
    merged: dict = {"format": FORMAT, "shards": {}, "failures": {}, "recipe": None}
    for f in files:
        try:
            m = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise LocresError(f"cannot read shard manifest {f}: {exc}") from None
        if m.get("format") != FORMAT:
            raise LocresError(f"{f} is not a locres shard manifest (format {m.get('format')!r})")
        merged["shards"].update(m.get("shards", {}))
        merged["failures"].update(m.get("failures", {}))
        merged["recipe"] = merged["recipe"] or m.get("recipe")
    merged["shards"] = {e: s for e, s in merged["shards"].items() if (d / s["file"]).exists()}
    if not merged["shards"]:
        raise LocresError(f"the shard folder {d} lists no finished shards")
    return merged


def views_to_arrays(entry: str, voxel_size_a: float, views: list[View], maps: list[np.ndarray],
                    map_masks: list[np.ndarray], resolution_a: np.ndarray, bfactor_a2: np.ndarray,
                    labels: dict[str, list[np.ndarray]] | None = None) -> dict[str, np.ndarray]:
    """Pack one model's views and filtered maps into the arrays of a shard."""
    out: dict[str, np.ndarray] = {
        "entry_id": np.array(entry),
        "voxel_size_a": np.float64(voxel_size_a),
        "voxel_size_sim_a": np.array([v.voxel_size_sim_a for v in views], dtype=np.float64),
        "rotation": np.stack([v.rotation for v in views]).astype(np.float64),
        "resolution_a": np.asarray(resolution_a, dtype=np.float32),
        "bfactor_a2": np.asarray(bfactor_a2, dtype=np.float32),
    }
    for i, v in enumerate(views):
        out[f"density_{i}"] = v.density.astype(np.float16)
        out[f"mask_{i}"] = v.mask.astype(bool)
        out[f"maps_{i}"] = np.asarray(maps[i], dtype=np.float16)
        out[f"map_mask_{i}"] = map_masks[i].astype(bool)
        for name, arrs in (labels or {}).items():
            out[f"label_{name}_{i}"] = np.asarray(arrs[i], dtype=np.float16)
    return out


class ShardModel:
    """One model's shard, loaded into memory (float16 kept, converted per use)."""

    def __init__(self, path: str | os.PathLike, load_maps: bool = True):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as z:
                keys = [k for k in z.files
                        if load_maps or not (k.startswith("maps_") or k.startswith("label_"))]
                self.arrays = {k: z[k] for k in keys}
        except (OSError, ValueError, EOFError, KeyError) as exc:
            raise LocresError(f"cannot read shard {self.path}: {exc} (delete it and re-run data_prep)"
                              ) from None
        self.entry = str(self.arrays["entry_id"])
        self.voxel_size_a = float(self.arrays["voxel_size_a"])
        self.n_views = len(self.arrays["voxel_size_sim_a"])
        self.resolution_a = self.arrays["resolution_a"]

    def view(self, i: int) -> View:
        a = self.arrays
        return View(density=a[f"density_{i}"].astype(np.float32), mask=a[f"mask_{i}"],
                    voxel_size_sim_a=float(a["voxel_size_sim_a"][i]), rotation=a["rotation"][i])

    def stored_map(self, i: int, k: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Pre-filtered map ``k`` of view ``i`` on the model grid: (map, mask, resolution_a)."""
        a = self.arrays
        return a[f"maps_{i}"][k].astype(np.float32), a[f"map_mask_{i}"], float(a["resolution_a"][i, k])

    def label_map(self, method: str, i: int, k: int) -> np.ndarray | None:
        key = f"label_{method}_{i}"
        return self.arrays[key][k].astype(np.float32) if key in self.arrays else None
