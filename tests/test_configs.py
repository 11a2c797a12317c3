"""Every option of every training config group composes and instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def _compose(*overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        return compose(config_name="train", overrides=[f"run_dir={REPO / 'runs' / 'test_configs'}",
                                                       *overrides])


def _options(group):
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize("experiment", ["default", "smoke", "deepres_paper"])  # (quick, full: bench.py)
def test_experiments_compose_and_build(experiment):
    cfg = _compose(f"experiment={experiment}")
    net = instantiate(cfg.model)
    assert net.box_size % 2 == 1
    assert list(cfg.model.resolution_range_a) == list(cfg.data.recipe.resolution_range_a)
    dm = instantiate(cfg.data, box_size=net.box_size)
    assert dm.box_size == net.box_size
    module = instantiate(cfg.module, net=net)
    assert module.hparams["voxel_size_a"] == cfg.data.recipe.voxel_size_a
    opt = module.configure_optimizers()
    assert opt is not None
    if experiment == "deepres_paper":
        assert sum(p.numel() for p in net.parameters()) == 36_067_009
        assert cfg.data.stride == 2 and cfg.module.loss == "mse"
        assert isinstance(opt, torch.optim.Adam)


@pytest.mark.parametrize("model", _options("model"))
def test_model_group(model):
    cfg = _compose(f"model={model}")
    net = instantiate(cfg.model)
    if hasattr(net, "in_channels"):  # dense nets: features in, three quantiles per voxel out
        assert net(torch.zeros(2, net.in_channels, 5, 6, 4)).shape == (2, 3, 5, 6, 4)
        return
    b = net.box_size
    assert net(torch.zeros(2, 1, b, b, b)).shape == (2,)


@pytest.mark.parametrize("data", _options("data"))
def test_data_group(data):
    cfg = _compose(f"data={data}")
    dm = instantiate(cfg.data, box_size=13)
    if "source" in cfg.data:
        assert dm.source == cfg.data.source
    else:  # the dense data module makes its maps from shards
        assert dm.shards_dir == cfg.data.shards_dir


@pytest.mark.parametrize("trainer", _options("trainer"))
def test_trainer_group(trainer):
    over = [f"trainer={trainer}"]
    if trainer == "gpu" and not torch.cuda.is_available():
        over += ["trainer.accelerator=cpu", "trainer.precision=32"]
    if trainer == "ddp":
        over += ["trainer.accelerator=cpu", "trainer.devices=1"]
    cfg = _compose(*over)
    t = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert t.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("logger", _options("logger"))
def test_logger_group(logger, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = _compose(f"logger={logger}", f"run_dir={tmp_path}")
    loggers = [instantiate(c) for c in cfg.logger.values()]
    assert loggers
    if "wandb" in cfg.logger:
        assert cfg.logger.wandb.offline is True


@pytest.mark.parametrize("callbacks", _options("callbacks"))
def test_callbacks_group(callbacks):
    cfg = _compose(f"callbacks={callbacks}")
    cbs = [instantiate(c) for c in cfg.callbacks.values()]
    if callbacks == "default":
        cks = [c for c in cbs if type(c).__name__ == "ModelCheckpoint"]
        assert [c.monitor for c in cks] == ["val/mae", None]  # the best, then last.ckpt every epoch
        assert cks[1].filename == "last" and cks[1].save_top_k == 1


def _compose_data_prep(*overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        return compose(config_name="data_prep", overrides=list(overrides))


@pytest.mark.parametrize("data", [d for d in _options("data") if d != "dense"])
def test_training_and_data_prep_use_one_recipe(data):
    """configs/recipe/default.yaml is the recipe of both (data.recipe in training, recipe in data_prep)."""
    from omegaconf import OmegaConf

    from locres.data.simulated import Recipe

    train_recipe = OmegaConf.to_container(_compose(f"data={data}").data.recipe, resolve=True)
    prep_recipe = OmegaConf.to_container(_compose_data_prep().recipe, resolve=True)
    assert train_recipe == prep_recipe
    # every field of the Recipe is stated (none falls back to a dataclass default silently)
    assert set(train_recipe) == set(Recipe.__dataclass_fields__)
    assert train_recipe["resolution_range_a"] == [2.0, 15.0] and train_recipe["p_noise"] == 0.5
    # an override reaches the one it is given to, and only it
    assert _compose_data_prep("recipe.voxel_size_a=1.5").recipe.voxel_size_a == 1.5
    assert _compose("data.recipe.voxel_size_a=1.5").data.recipe.voxel_size_a == 1.5


@pytest.mark.parametrize("primary", ["train", "infer", "data_prep", "bench"])
@pytest.mark.parametrize("override,plugin,key,value", [
    ("hydra/launcher=local", "hydra_joblib_launcher", "n_jobs", 2),
    ("hydra/launcher=slurm", "hydra_submitit_launcher", "cpus_per_task", 8),
    ("hydra/launcher=slurm_gpu", "hydra_submitit_launcher", "gpus_per_node", 1),
    ("hydra/sweeper=train_optuna", "hydra_optuna_sweeper", "n_trials", 8),
])
def test_launcher_and_sweeper_configs_compose(primary, override, plugin, key, value):
    """The project's launcher/sweeper configs extend the plugins' (skipped without the cluster extra)."""
    pytest.importorskip(f"hydra_plugins.{plugin}")
    import locres.cli  # noqa: F401  (registers the locres_or resolver the sweep folders use)

    if primary != "train" and "sweeper" in override:
        pytest.skip("the Optuna example searches training recipes")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        cfg = compose(config_name=primary, overrides=[override], return_hydra_config=True)
    node = cfg.hydra.launcher if "launcher" in override else cfg.hydra.sweeper
    assert node[key] == value and node["_target_"].startswith("hydra_plugins.")
    assert "/.sweep" in str(cfg.hydra.sweep.dir) or primary == "train"
