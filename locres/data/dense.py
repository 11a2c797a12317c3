"""Data for the dense DeepRes models: training maps made on the fly, features, truth and loss mask.

Each item is one whole training map (:func:`locres.simulate.training_maps.make_training_example` on one
to a few structures of the split, from data_prep shards), turned into what the network sees by the
same function inference uses (:func:`locres.models.features.dense_features`), with the truth and the
loss mask on the same half-resolution model grid. Items differ in shape, so batches hold one map
(accumulate gradients over maps in the Trainer if wanted). The validation and test sets are fixed
maps (fixed seeds) from structures never trained on (split by entry id).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from locres.core.maps import to_model_grid
from locres.data.shards import ShardModel, read_manifests
from locres.data.splits import split_of
from locres.errors import LocresError
from locres.models.features import FEATURE_VERSION, dense_features
from locres.simulate.training_maps import TrainingExample, TrainingMapRecipe, make_training_example

log = logging.getLogger(__name__)


def example_to_item(
    ex: TrainingExample, inputs: str, model_voxel_size_a: float, mask_dilate_a: float = 0.0,
    feature_version: int = FEATURE_VERSION,
) -> dict[str, torch.Tensor]:
    """Features (C, d, h, w), truth (d, h, w) in Angstrom and loss mask (d, h, w) of one training map."""
    x = dense_features(
        ex.voxel_size_a,
        model_voxel_size_a,
        map_zyx=ex.map,
        half1_zyx=ex.half1,
        half2_zyx=ex.half2,
        inputs=inputs,
        version=feature_version,
    )
    sub = (slice(None, None, 2),) * 3
    truth = to_model_grid(ex.truth_a, ex.voxel_size_a, model_voxel_size_a, lowpass=False)[sub]
    mask = (
        to_model_grid(ex.mask.astype(np.float32), ex.voxel_size_a, model_voxel_size_a, order=0, lowpass=False)
        > 0.5
    )
    it = int(round(mask_dilate_a / model_voxel_size_a))
    if it > 0:
        mask = ndimage.binary_dilation(mask, iterations=it)
    mask = mask[sub]
    return {
        "x": torch.from_numpy(x),
        "truth": torch.from_numpy(truth.astype(np.float32)),
        "mask": torch.from_numpy(mask),
    }


class StructurePool:
    """Clean densities of one split's structures (every stored view), drawn at random."""

    def __init__(self, shard_files: list[Path]):
        if not shard_files:
            raise LocresError("no structures in this split: run data_prep on more models")
        self.views = []
        for f in shard_files:
            s = ShardModel(f, load_maps=False)
            for i in range(s.n_views):
                v = s.view(i)
                self.views.append((v.density, v.mask.astype(bool), v.voxel_size_sim_a, s.entry))

    def draw(self, rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
        idx = rng.choice(len(self.views), size=n, replace=len(self.views) < n)
        return [self.views[i][:3] for i in idx]


class DenseMapStream(IterableDataset):
    """Endless training maps (``maps_per_epoch`` per epoch), each worker with its own seed."""

    def __init__(
        self,
        pool: StructurePool,
        recipe: TrainingMapRecipe,
        inputs: str,
        model_voxel_size_a: float,
        maps_per_epoch: int,
        seed: int,
        mask_dilate_range_a=(0.0, 3.0),
    ):
        self.pool, self.recipe, self.inputs = pool, recipe, inputs
        self.model_voxel_size_a, self.maps_per_epoch, self.seed = (
            model_voxel_size_a,
            int(maps_per_epoch),
            seed,
        )
        self.mask_dilate_range_a = mask_dilate_range_a
        self.feature_version = FEATURE_VERSION
        self.epoch = 0

    def examples_and_items(self):
        """This epoch's (training example, item) pairs: the item is what the net trains on, the example
        keeps the map's recipe draws (``ex.info``) for studies of where a model fails."""
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        torch.set_num_threads(1) if info else None
        rng = np.random.default_rng([self.seed, self.epoch, wid])
        self.epoch += 1
        for _ in range(wid, self.maps_per_epoch, nw):
            n = int(rng.integers(self.recipe.structures_range[0], self.recipe.structures_range[1] + 1))
            for _attempt in range(5):
                try:
                    ex = make_training_example(self.pool.draw(rng, n), self.recipe, rng)
                    yield ex, example_to_item(
                        ex,
                        self.inputs,
                        self.model_voxel_size_a,
                        float(rng.uniform(*self.mask_dilate_range_a)),
                        self.feature_version,
                    )
                    break
                except LocresError as exc:  # e.g. a box with no structure in it: draw again
                    log.debug("training map skipped: %s", exc)

    def __iter__(self):
        for _, item in self.examples_and_items():
            yield item


def fixed_examples_and_items(
    pool: StructurePool,
    recipe: TrainingMapRecipe,
    inputs: str,
    model_voxel_size_a: float,
    n_maps: int,
    seed: int,
    feature_version: int = FEATURE_VERSION,
) -> Iterator[tuple[TrainingExample, dict[str, torch.Tensor]]]:
    """A reproducible evaluation set of ``n_maps`` training-like maps, one at a time: each map's training
    example (its recipe draws in ``ex.info``) and the item the net reads."""
    stream = DenseMapStream(pool, recipe, inputs, model_voxel_size_a, n_maps, seed, (1.5, 1.5))
    stream.feature_version = feature_version
    return stream.examples_and_items()


def fixed_items(*args, **kwargs) -> list[dict[str, torch.Tensor]]:
    """The items of :func:`fixed_examples_and_items` (same arguments), as a list."""
    return [item for _, item in fixed_examples_and_items(*args, **kwargs)]


class DenseDataModule(L.LightningDataModule):
    """Training, validation and test maps for the dense models (see the module docstring).

    Parameters
    ----------
    shards_dir : data_prep output (the clean densities of every structure).
    inputs : "map" (single-map model) or "halves".
    recipe : keyword arguments of :class:`TrainingMapRecipe`.
    maps_per_epoch, val_maps, test_maps : how many maps each epoch / the fixed evaluation sets hold.
    box_size : ignored (train.py passes the net's box size to every DataModule).
    """

    def __init__(
        self,
        shards_dir: str,
        inputs: str = "map",
        model_voxel_size_a: float = 1.0,
        recipe: dict | None = None,
        maps_per_epoch: int = 200,
        val_maps: int = 24,
        test_maps: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        num_workers: int = 1,
        max_structures: int | None = None,
        seed: int = 0,
        box_size: int | None = None,
        feature_version: int = FEATURE_VERSION,
    ):
        super().__init__()
        self.shards_dir, self.inputs, self.model_voxel_size_a = shards_dir, inputs, float(model_voxel_size_a)
        self.recipe = TrainingMapRecipe.from_mapping(dict(recipe or {}))
        self.maps_per_epoch, self.val_maps, self.test_maps = (
            int(maps_per_epoch),
            int(val_maps),
            int(test_maps),
        )
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.num_workers, self.max_structures, self.seed = int(num_workers), max_structures, int(seed)
        self.feature_version = int(feature_version)
        self.train_set = self.val_set = self.test_set = None

    def recipe_dict(self) -> dict:
        return asdict(self.recipe)

    def pool(self, split: str) -> StructurePool:
        if not self.shards_dir:
            raise LocresError("data.shards_dir is not set: run data_prep/simulate_training_set.py first")
        man = read_manifests(self.shards_dir)
        names = sorted(
            e for e in man["shards"] if split_of(e, self.val_fraction, self.test_fraction) == split
        )
        if self.max_structures:
            names = names[: int(self.max_structures)]
        log.info("%s split: %d structures", split, len(names))
        return StructurePool([Path(self.shards_dir) / man["shards"][e]["file"] for e in names])

    def setup(self, stage: str | None = None) -> None:
        v = self.model_voxel_size_a
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = fixed_items(
                self.pool("val"), self.recipe, self.inputs, v, self.val_maps, self.seed + 1,
                self.feature_version,
            )
        if stage in (None, "fit") and self.train_set is None:
            rank = int(getattr(self.trainer, "global_rank", 0) or 0) if self.trainer is not None else 0
            self.train_set = DenseMapStream(
                self.pool("train"), self.recipe, self.inputs, v, self.maps_per_epoch, self.seed + 7919 * rank
            )
            self.train_set.feature_version = self.feature_version
        if stage in (None, "test") and self.test_set is None:
            self.test_set = fixed_items(
                self.pool("test"), self.recipe, self.inputs, v, self.test_maps, self.seed + 2,
                self.feature_version,
            )

    def train_dataloader(self) -> DataLoader:
        if self.trainer is not None:  # a resumed run draws new maps, not epoch 0's again
            self.train_set.epoch = int(self.trainer.current_epoch)
        return DataLoader(
            self.train_set,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=None, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=None, shuffle=False)
