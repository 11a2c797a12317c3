"""Dense training data: items on the half-resolution grid, the same features inference computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from locres.data.dense import DenseDataModule, StructurePool, example_to_item
from locres.models.features import dense_features, n_feature_channels
from locres.simulate.phantom import molecule_mask, synthetic_density
from locres.simulate.training_maps import TrainingMapRecipe, make_training_example


def test_item_features_are_inference_features(shards_dir):
    pool = StructurePool(sorted(shards_dir.glob("*.npz")))
    rng = np.random.default_rng(1)
    ex = make_training_example(pool.draw(rng, 2), TrainingMapRecipe(), rng)
    item = example_to_item(ex, "map", 1.0)
    np.testing.assert_array_equal(item["x"].numpy(), dense_features(ex.voxel_size_a, 1.0, map_zyx=ex.map))
    assert item["x"].shape[0] == n_feature_channels("map")
    assert item["truth"].shape == item["mask"].shape == item["x"].shape[1:]
    assert item["mask"].any() and torch.all(item["truth"][item["mask"]] >= 2.0)


def test_datamodule_splits_and_fixed_evaluation_sets(shards_dir):
    dm = DenseDataModule(str(shards_dir), inputs="halves", maps_per_epoch=2, val_maps=2, test_maps=2,
                         num_workers=0)
    dm.setup("fit")
    assert len(dm.val_set) == 2
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape[0] == n_feature_channels("halves")
    again = DenseDataModule(str(shards_dir), inputs="halves", val_maps=2, num_workers=0)
    again.setup("validate")
    torch.testing.assert_close(again.val_set[0]["x"], dm.val_set[0]["x"])


def test_dense_recipe_trains_exports_and_loads(shards_dir, tmp_path):
    """train.py experiment=deepres2 on a tiny shard folder: a checkpoint the dense inference loads."""
    import sys

    from locres.cli import run_cli
    from locres.io.checkpoints import load_model
    from locres.methods import MethodInputs, deepres
    from locres.pipeline.execute import call_method

    repo = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(repo))
    import train as train_py

    run = tmp_path / "run"
    argv = ["experiment=deepres2", f"data.shards_dir={shards_dir}", f"hydra.run.dir={run}",
            "data.maps_per_epoch=2", "data.val_maps=1", "data.test_maps=1", "data.num_workers=0",
            "trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0", f"export={tmp_path / 'm.pt'}"]
    run_cli(train_py.train, "train", argv=argv)
    model = load_model(tmp_path / "m.pt")
    assert model.meta["target"] == "fsc_local" and model.meta["inputs"] == "map"
    assert model.net.feature_version == 5  # the shipped single-map model's (configs/experiment/deepres2.yaml)
    rng = np.random.default_rng(3)
    d = synthetic_density((30, 30, 30), 1.2, rng)
    out = call_method("deepres", deepres, MethodInputs(voxel_size_a=1.2, map=d, mask=molecule_mask(d, 1.2)),
                      {"checkpoint": str(tmp_path / "m.pt")})
    assert out.resolution_a.shape == d.shape and set(out.extra_maps) == {"lo", "hi"}


def test_half_map_recipe_fine_tunes_the_shipped_model(shards_dir, tmp_path):
    """init_from the shipped half-map model into a net of its feature version and width (an older or
    narrower model would grow: tests/models/test_dense.py), trained one step, exported, and run by the
    dense inference on half maps."""
    import sys

    from locres.cli import run_cli
    from locres.io.checkpoints import load_model
    from locres.methods import MethodInputs, deepres
    from locres.pipeline.execute import call_method

    repo = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(repo))
    import train as train_py

    shipped = repo / "locres" / "weights" / "deepres2_halves.pt"
    shipped_net = load_model(shipped).net
    version, width = shipped_net.feature_version, shipped_net.net_config["width"]
    assert version >= 3
    argv = ["experiment=deepres2_halves", f"data.shards_dir={shards_dir}",
            f"hydra.run.dir={tmp_path / 'run'}",
            "data.maps_per_epoch=1", "data.val_maps=1", "data.test_maps=1", "data.num_workers=0",
            f"data.feature_version={version}", f"model.width={width}", f"init_from={shipped}",
            "trainer.max_epochs=1", "trainer.accumulate_grad_batches=1", "test=false",
            "callbacks.progress_bar.refresh_rate=0", f"export={tmp_path / 'h.pt'}"]
    run_cli(train_py.train, "train", argv=argv)
    model = load_model(tmp_path / "h.pt")
    assert model.meta["inputs"] == "halves" and model.net.feature_version == version
    assert model.net.in_channels == n_feature_channels("halves", version=version)
    rng = np.random.default_rng(4)
    d = synthetic_density((30, 28, 26), 1.1, rng)
    h1, h2 = (d + 0.2 * float(d.std()) * rng.standard_normal(d.shape).astype(np.float32) for _ in range(2))
    out = call_method("deepres", deepres, MethodInputs(voxel_size_a=1.1, half1=h1, half2=h2),
                      {"checkpoint": str(tmp_path / "h.pt")})
    assert out.resolution_a.shape == d.shape and np.isfinite(out.resolution_a).all()
