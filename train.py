"""Train a resolution net: ``python train.py [experiment=smoke|deepres_paper] [key=value ...]``.

Composes ``configs/train.yaml``, instantiates the net (``model``), the DataModule (``data``), the
LightningModule (``module``), loggers, callbacks and the Trainer, then fits (resuming with
``ckpt_path=last``), tests the best checkpoint on the held-out structures and optionally exports a slim
``.pt`` (``export=PATH``). Errors end as one line ``error: ...`` (see ``locres/cli.py``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from locres.cli import run_cli
from locres.errors import LocresError

log = logging.getLogger("train")


def resolve_ckpt(ckpt_path: str | None, run_dir: str) -> str | None:
    """``None``, ``last`` (run_dir/checkpoints/last.ckpt) or an existing file."""
    if ckpt_path in (None, "", "null"):
        return None
    p = Path(run_dir) / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not p.is_file():
        raise LocresError(f"checkpoint to resume not found: {p} (train without ckpt_path first)")
    from locres.io.checkpoints import load_deepres

    load_deepres(p)  # a damaged or foreign file fails here in one line, before training starts
    return str(p)


def run_directory(cfg) -> str:
    """The run's directory: Hydra's output directory for this run or sweep job (``cfg.run_dir``).

    Every path of a run (checkpoints, metrics, csv/wandb logs, .hydra/) derives from it, so a sweep job
    never writes into another's folder. ``run_dir`` set by hand would split a run in two: refused.
    """
    from hydra.core.hydra_config import HydraConfig

    out = HydraConfig.get().runtime.output_dir
    if Path(str(cfg.run_dir)).resolve() != Path(out).resolve():
        raise LocresError(f"run_dir is derived from Hydra's output directory ({out}); "
                          f"to write a run elsewhere use hydra.run.dir={cfg.run_dir}")
    return out


def keep_earlier_csv_logs(loggers) -> None:
    """A resumed (or repeated) run logs into the same folder, where Lightning's CSV logger deletes the
    earlier ``metrics.csv``: move it aside first, to ``metrics.partN.csv`` (the first free N)."""
    for lg in loggers:
        if type(lg).__name__ != "CSVLogger":
            continue
        old = Path(lg.log_dir) / "metrics.csv"
        if old.is_file():
            n = 1
            while (old.parent / f"metrics.part{n}.csv").exists():
                n += 1
            old.rename(old.parent / f"metrics.part{n}.csv")
            log.info("earlier CSV log kept as %s", old.parent / f"metrics.part{n}.csv")


def train(cfg) -> dict:
    import time

    import lightning as L
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from locres.training import finish_run

    if "wandb" in (cfg.get("logger") or {}):
        os.environ.setdefault("WANDB_MODE", "offline" if cfg.logger.wandb.get("offline", True) else "online")
        os.environ.setdefault("WANDB_SILENT", "true")
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    L.seed_everything(int(cfg.seed), workers=True)
    run_dir = run_directory(cfg)
    ckpt = resolve_ckpt(cfg.get("ckpt_path"), run_dir)
    net = instantiate(cfg.model)
    if cfg.get("init_from"):  # fine-tune: start from another run's weights (not a resume)
        from locres.io.checkpoints import load_deepres
        from locres.models.dense import DenseQuantileNet, load_grown

        init, _ = load_deepres(cfg.init_from)
        try:
            if isinstance(net, DenseQuantileNet) and isinstance(init, DenseQuantileNet):
                # a newer feature version appends channels, a wider net adds some: the grown net
                # starts as the old one
                grown = load_grown(net, init.state_dict())
                log.info("init_from %s: %d input channels appended, width %d -> %d", cfg.init_from,
                         grown["appended_inputs"], grown["width_from"], net.net_config["width"])
            else:
                net.load_state_dict(init.state_dict())
        except (RuntimeError, LocresError) as exc:
            raise LocresError(f"init_from={cfg.init_from} does not fit model=... ({str(exc).splitlines()[0]})"
                              ) from None
    datamodule = instantiate(cfg.data, box_size=net.box_size)
    module = instantiate(cfg.module, net=net)  # net_config comes from net.net_config
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    keep_earlier_csv_logs(loggers)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    log.info("net %s: box %d, %d parameters; run dir %s", type(net).__name__, net.box_size,
             sum(p.numel() for p in net.parameters()), run_dir)
    started = time.time()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    metrics = finish_run(trainer, module, datamodule, OmegaConf.to_container(cfg, resolve=True), started)
    return sweep_objective(cfg, metrics)


def sweep_objective(cfg, metrics: dict):
    """The run's metrics, or under an Optuna sweep the float ``metrics[cfg.objective]`` it minimises."""
    from hydra.core.hydra_config import HydraConfig

    sweeper = str(HydraConfig.get().sweeper.get("_target_", "")) if HydraConfig.initialized() else ""
    if "optuna" not in sweeper.lower():
        return metrics
    value = metrics.get(str(cfg.objective))
    if value is None:
        raise LocresError(f"objective={cfg.objective} is not among the run's metrics "
                          f"({', '.join(k for k, v in metrics.items() if isinstance(v, (int, float)))})")
    return float(value)


if __name__ == "__main__":
    run_cli(train, config_name="train", doc=__doc__)
