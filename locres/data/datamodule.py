"""LightningDataModule streaming standardised boxes (and their labels) from shards or simulated maps.

Every training map goes through the same steps as a map at inference: ``standardise_map`` on the whole
map with its mask, then boxes centred on mask voxels. Training draws a fresh random map per
``boxes_per_map`` boxes (random structure of the train split, view, resolution, B-factor, noise,
scale; and a random one of the 48 cube symmetries per batch). Validation and test sets are fixed:
every structure of their split at ``eval_resolutions`` resolutions spread evenly over the range,
``eval_boxes_per_map`` boxes each, made once with a fixed seed and no intensity augmentation.

Label sources (``labels``): ``filter`` -- the map's filter resolution (DeepRes); any analytical method
name (``monores``, ``blocres``, ``resmap``) -- the method's local-resolution map at each box centre,
read from the shard when data_prep stored it, otherwise computed with
``locres.methods.get_method(name).run`` on the map (cached per map, slow).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset, get_worker_info

from locres.data.shards import ShardModel, read_manifests
from locres.data.simulated import (
    Recipe,
    analytical_label_map,
    augment_intensity,
    cut_boxes,
    l2_normalise_boxes,
    render_map,
    sample_centres,
    simulate_view,
)
from locres.data.splits import split_model_files, split_of
from locres.errors import LocresError
from locres.models.normalise import standardise_map

log = logging.getLogger(__name__)

LABEL_SOURCES = ("filter", "monores", "blocres", "resmap", "monodir")


class MapSource:
    """Draws training maps: ``draw(rng, resolution_a=None, augment=True) -> (std_map, mask, label)``.

    ``label`` is a float (filter resolution) or a label map on the map's grid (0 = undefined).
    ``items`` are shard models (``source="shards"``) or gemmi structures (``source="simulate"``).
    """

    def __init__(self, items: list, recipe: Recipe, labels: str = "filter", refilter: bool = True,
                 simulate: bool = False, names: Sequence[str] | None = None):
        if labels not in LABEL_SOURCES:
            raise LocresError(f"unknown label source '{labels}': choose one of {', '.join(LABEL_SOURCES)}")
        if not items:
            raise LocresError("no structures to draw maps from: check the split and the data folder")
        self.items, self.recipe, self.labels = items, recipe, labels
        self.refilter, self.simulate = refilter, simulate
        self.names = list(names) if names is not None else [str(i) for i in range(len(items))]
        self._label_cache: dict = {}

    def __len__(self) -> int:
        return len(self.items)

    def draw(self, rng: np.random.Generator, index: int | None = None, resolution_a: float | None = None,
             augment: bool = True, view: int | None = None):
        index = int(rng.integers(len(self.items))) if index is None else index
        item = self.items[index]
        key = None
        if self.simulate:
            v = simulate_view(item, self.recipe, rng, jitter=None if augment else False)
        else:
            view = int(rng.integers(item.n_views)) if view is None else view
            v = item.view(view)
        # analytical labels are slow: shards then use their stored maps so labels are computed once per map
        use_stored = ((not self.simulate) and (not self.refilter or self.labels != "filter")
                      and resolution_a is None)
        if use_stored:
            k = int(rng.integers(item.resolution_a.shape[1]))
            m, mask, r = item.stored_map(view, k)
            if augment:
                m = augment_intensity(m, mask, self.recipe, rng)
            key = (index, view, k)
        else:
            r = self.recipe.draw_resolution(rng) if resolution_a is None else float(resolution_a)
            m, mask = render_map(v, r, self.recipe, rng, augment=augment)
        label: float | np.ndarray = r
        if self.labels != "filter":
            label = self._label_map(m, mask, rng, key, item)
        return standardise_map(m), mask, label  # no mask: exactly as inference standardises

    def _label_map(self, m, mask, rng, key, item) -> np.ndarray:
        if key is not None and key in self._label_cache:
            return self._label_cache[key]
        lab = None
        if key is not None and not self.simulate:
            lab = item.label_map(self.labels, key[1], key[2])
        if lab is None:
            lab = analytical_label_map(self.labels, m, mask, self.recipe.voxel_size_a, rng)
        if key is not None:
            self._label_cache[key] = lab
        return lab


def boxes_from_map(std_map: np.ndarray, mask: np.ndarray, label, n: int, box_size: int,
                   rng: np.random.Generator, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` boxes centred on mask voxels and their labels (Angstrom)."""
    valid = (label > 0) if isinstance(label, np.ndarray) else None
    centres = sample_centres(mask, n, box_size, rng, stride=stride, valid=valid)
    if len(centres) == 0:
        return np.zeros((0, box_size, box_size, box_size), np.float32), np.zeros((0,), np.float32)
    boxes = cut_boxes(std_map, centres, box_size)
    if isinstance(label, np.ndarray):
        y = label[centres[:, 0], centres[:, 1], centres[:, 2]].astype(np.float32)
    else:
        y = np.full(len(centres), label, dtype=np.float32)
    return boxes, y


def random_cube_symmetry(boxes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random element of the cube's 48 symmetries (axis permutation + flips) on (k, b, b, b)."""
    perm = rng.permutation(3)
    out = np.transpose(boxes, (0, *(1 + perm)))
    flips = tuple(1 + i for i in range(3) if rng.random() < 0.5)
    if flips:
        out = np.flip(out, axis=flips)
    return np.ascontiguousarray(out)


class BoxStream(IterableDataset):
    """Endless-per-epoch stream of training batches ``(x (B,1,b,b,b), y (B,))``; ``steps`` per epoch."""

    def __init__(self, source: MapSource, box_size: int, batch_size: int, boxes_per_map: int, steps: int,
                 stride: int = 1, box_norm: str = "none", symmetry: bool = True, seed: int = 0):
        self.source, self.box_size, self.batch_size = source, int(box_size), int(batch_size)
        self.boxes_per_map, self.steps, self.stride = int(boxes_per_map), int(steps), int(stride)
        self.box_norm, self.symmetry, self.seed = box_norm, symmetry, int(seed)
        self._calls = 0

    def __len__(self) -> int:
        return self.steps

    def make_batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys, n, misses = [], [], 0, 0
        while n < self.batch_size:
            std_map, mask, label = self.source.draw(rng)
            bx, by = boxes_from_map(std_map, mask, label, min(self.boxes_per_map, self.batch_size - n),
                                    self.box_size, rng, self.stride)
            if len(bx) == 0:
                misses += 1
                if misses > 50:
                    raise LocresError(
                        f"no box of {self.box_size} voxels fits inside the training maps' masks: "
                        "the box is larger than the maps; use a smaller model box or more padding")
                continue
            xs.append(bx)
            ys.append(by)
            n += len(bx)
        x = np.concatenate(xs)
        if self.symmetry:
            x = random_cube_symmetry(x, rng)
        if self.box_norm == "l2":
            x = l2_normalise_boxes(x)
        return torch.from_numpy(x[:, None]), torch.from_numpy(np.concatenate(ys))

    def __iter__(self):
        info = get_worker_info()
        if info is None:
            seed, steps = [self.seed, self._calls], self.steps
            self._calls += 1
        else:
            seed = [self.seed, info.seed % (2**32)]
            steps = self.steps // info.num_workers + (info.id < self.steps % info.num_workers)
        rng = np.random.default_rng(seed)
        for _ in range(steps):
            yield self.make_batch(rng)


def fixed_box_set(source: MapSource, box_size: int, resolutions_a: Sequence[float], boxes_per_map: int,
                  seed: int = 0, stride: int = 1, box_norm: str = "none") -> TensorDataset:
    """Every structure of ``source`` at every resolution (view 0, no augmentation): a TensorDataset of
    ``(x (N,1,b,b,b), y (N,), structure index (N,))``."""
    rng = np.random.default_rng(seed)
    xs, ys, ids = [], [], []
    for i in range(len(source)):
        for r in resolutions_a:
            view = None if source.simulate else 0
            std_map, mask, label = source.draw(rng, index=i, resolution_a=float(r), augment=False, view=view)
            bx, by = boxes_from_map(std_map, mask, label, boxes_per_map, box_size, rng, stride)
            xs.append(bx)
            ys.append(by)
            ids.append(np.full(len(by), i, dtype=np.int64))
    x = np.concatenate(xs)
    if len(x) == 0:
        raise LocresError(f"no box of {box_size} voxels fits inside the evaluation maps: the box is larger "
                          "than the maps")
    if box_norm == "l2":
        x = l2_normalise_boxes(x)
    return TensorDataset(torch.from_numpy(x[:, None]), torch.from_numpy(np.concatenate(ys)),
                         torch.from_numpy(np.concatenate(ids)))


class DeepResDataModule(L.LightningDataModule):
    """Boxes for training the resolution nets (see the module docstring).

    Parameters
    ----------
    source : ``"shards"`` (data_prep output in ``shards_dir``) or ``"simulate"`` (on the fly from
        ``models_dir``).
    box_size : odd box edge in voxels (the net's ``box_size``; ``train.py`` fills it in).
    recipe : keyword arguments of :class:`locres.data.simulated.Recipe` (resolution range, augmentation).
    refilter : shards only: low-pass the stored unfiltered density at a fresh random resolution for every
        map (True) or use the pre-filtered maps stored by data_prep (False).
    """

    def __init__(self, source: str = "shards", shards_dir: str | None = None, models_dir: str | None = None,
                 box_size: int = 13, batch_size: int = 128, boxes_per_map: int = 32, stride: int = 1,
                 box_norm: str = "none", labels: str = "filter", refilter: bool = True,
                 recipe: dict | None = None, steps_per_epoch: int = 200, eval_resolutions: int = 12,
                 eval_boxes_per_map: int = 32, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 max_structures: int | None = None, num_workers: int = 0, symmetry: bool = True,
                 seed: int = 0):
        super().__init__()
        if source not in ("shards", "simulate"):
            raise LocresError(f"data.source must be shards or simulate, got '{source}'")
        if box_norm not in ("none", "l2"):
            raise LocresError(f"data.box_norm must be none or l2, got '{box_norm}'")
        if int(box_size) % 2 != 1 or int(box_size) < 3:
            raise LocresError(f"box size must be odd and at least 3, got {box_size}")
        self.source, self.shards_dir, self.models_dir = source, shards_dir, models_dir
        self.box_size, self.batch_size = int(box_size), int(batch_size)
        self.boxes_per_map = int(boxes_per_map)
        self.stride, self.box_norm, self.labels, self.refilter = int(stride), box_norm, labels, bool(refilter)
        self.recipe = Recipe(**{k: (tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v)
                                for k, v in dict(recipe or {}).items()})
        self.steps_per_epoch, self.eval_resolutions = int(steps_per_epoch), int(eval_resolutions)
        self.eval_boxes_per_map = int(eval_boxes_per_map)
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.max_structures, self.num_workers = max_structures, int(num_workers)
        self.symmetry, self.seed = bool(symmetry), int(seed)
        self.sources: dict[str, MapSource] = {}
        self.train_set = self.val_set = self.test_set = None

    # -- structures per split ---------------------------------------------------------------------------
    def _items(self, split: str) -> tuple[list, list[str]]:
        if self.source == "shards":
            if not self.shards_dir:
                raise LocresError("data.source=shards needs data.shards_dir (or use data.source=simulate)")
            man = read_manifests(self.shards_dir)
            names = sorted(e for e in man["shards"]
                           if split_of(e, self.val_fraction, self.test_fraction) == split)
            if self.max_structures:
                names = names[: int(self.max_structures)]
            items = [ShardModel(Path(self.shards_dir) / man["shards"][e]["file"],
                                load_maps=not self.refilter or split != "train" or self.labels != "filter")
                     for e in names]
            for it in items:
                if abs(it.voxel_size_a - self.recipe.voxel_size_a) > 1e-3:
                    raise LocresError(f"shard {it.path} was made at voxel size {it.voxel_size_a} A but the "
                                      f"recipe asks for {self.recipe.voxel_size_a} A: re-run data_prep "
                                      "or fix data.recipe")
            return items, names
        if not self.models_dir:
            raise LocresError("data.source=simulate needs data.models_dir (a folder of PDB/mmCIF files)")
        from locres.io.models import entry_id, read_structure

        files = split_model_files(self.models_dir, self.val_fraction, self.test_fraction)[split]
        if self.max_structures:
            files = files[: int(self.max_structures)]
        items, names = [], []
        for p in files:
            try:
                items.append(read_structure(p))
                names.append(entry_id(p))
            except LocresError as exc:
                log.warning("skipping %s: %s", p.name, exc)
        return items, names

    def make_source(self, split: str) -> MapSource:
        if split not in self.sources:
            items, names = self._items(split)
            if not items:
                raise LocresError(f"the {split} split is empty: add structures to the data folder "
                                  "(splits are by entry id, see locres/data/splits.py)")
            self.sources[split] = MapSource(items, self.recipe, self.labels, self.refilter,
                                            simulate=self.source == "simulate", names=names)
            log.info("%s split: %d structures", split, len(items))
        return self.sources[split]

    def eval_resolutions_a(self) -> np.ndarray:
        lo, hi = self.recipe.resolution_range_a
        return np.linspace(lo, hi, self.eval_resolutions)

    def eval_set(self, split: str, seed_offset: int = 0) -> TensorDataset:
        return fixed_box_set(self.make_source(split), self.box_size, self.eval_resolutions_a(),
                             self.eval_boxes_per_map, seed=self.seed + 1000 + seed_offset, stride=self.stride,
                             box_norm=self.box_norm)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = self.eval_set("val")
        if stage in (None, "fit") and self.train_set is None:
            # each DDP rank streams different maps (the seed is the same on every rank otherwise)
            rank = int(getattr(self.trainer, "global_rank", 0) or 0) if self.trainer is not None else 0
            self.train_set = BoxStream(self.make_source("train"), self.box_size, self.batch_size,
                                       self.boxes_per_map, self.steps_per_epoch, self.stride, self.box_norm,
                                       self.symmetry, self.seed + 7919 * rank)
        if stage in (None, "test") and self.test_set is None:
            self.test_set = self.eval_set("test", seed_offset=1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=None, num_workers=self.num_workers,
                          persistent_workers=False)

    def _eval_loader(self, ds) -> DataLoader:
        return DataLoader(ds, batch_size=max(self.batch_size, 256), shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)


def batches_per_epoch(n_boxes: int, batch_size: int) -> int:
    return math.ceil(n_boxes / batch_size)
