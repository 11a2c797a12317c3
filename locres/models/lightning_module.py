"""LightningModule for resolution nets: loss and metrics in Angstrom, partial optimizer/scheduler.

The module receives an instantiated net (``locres.models.nets``) and Hydra partials for the optimizer
and the scheduler (lightning-hydra-template). ``hyper_parameters`` of its checkpoints hold what
``locres.io.checkpoints.load_deepres`` needs: ``net_config`` (a dict with ``_target_``),
``voxel_size_a`` and ``resolution_range_a``.

Losses (``loss``): ``l1`` / ``mse`` / ``huber`` on the resolution in Angstrom, or ``log_l1`` (L1 of the
log ratio, i.e. relative error). Metrics, in Angstrom: ``mae`` and ``bias`` (mean of prediction minus
label) for train/val/test; the test step also reports MAE per resolution bin (``test/mae_2-4`` ...).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from locres.errors import LocresError

log = logging.getLogger(__name__)

LOSSES = ("l1", "mse", "huber", "log_l1")
RESOLUTION_BINS_A = ((2.0, 4.0), (4.0, 6.0), (6.0, 9.0), (9.0, 15.0))


def resolution_loss(pred_a: torch.Tensor, target_a: torch.Tensor, kind: str = "l1",
                    huber_delta_a: float = 1.0) -> torch.Tensor:
    """Mean loss between predicted and target resolutions, both ``(B,)`` in Angstrom."""
    if kind == "l1":
        return F.l1_loss(pred_a, target_a)
    if kind == "mse":
        return F.mse_loss(pred_a, target_a)
    if kind == "huber":
        return F.huber_loss(pred_a, target_a, delta=huber_delta_a)
    if kind == "log_l1":
        return (torch.log(pred_a.clamp(min=1e-3)) - torch.log(target_a)).abs().mean()
    raise LocresError(f"unknown loss '{kind}': choose one of {', '.join(LOSSES)}")


def binned_mae(pred_a: torch.Tensor, target_a: torch.Tensor,
               bins_a: Sequence[tuple[float, float]] = RESOLUTION_BINS_A) -> dict[str, tuple[float, int]]:
    """MAE (Angstrom) and count per label bin ``[lo, hi)`` (the last bin includes ``hi``)."""
    out = {}
    for i, (lo, hi) in enumerate(bins_a):
        sel = (target_a >= lo) & ((target_a <= hi) if i == len(bins_a) - 1 else (target_a < hi))
        n = int(sel.sum())
        mae = float((pred_a[sel] - target_a[sel]).abs().mean()) if n else float("nan")
        out[f"{lo:g}-{hi:g}"] = (mae, n)
    return out


class DeepResModule(L.LightningModule):
    """Trains a resolution net on ``(boxes (B,1,b,b,b), labels (B,) Angstrom)`` batches.

    Parameters
    ----------
    net : the network (``box_size``, ``net_config`` attributes as in ``locres.models.nets``).
    optimizer : partial of a torch optimizer (called with the parameters).
    scheduler : optional partial of a torch LR scheduler (called with the optimizer).
    loss : one of :data:`LOSSES`.
    voxel_size_a : the model voxel size the net was trained at (Angstrom).
    resolution_range_a : the trained label range [lo, hi] (Angstrom).
    net_config : the net's constructor config (defaults to ``net.net_config``).
    box_norm : ``"none"`` or ``"l2"``: how boxes were normalised after ``standardise_map`` (recorded for
        inference).
    scheduler_interval : ``"epoch"`` or ``"step"``; ``monitor`` the metric a plateau scheduler watches.
    """

    def __init__(self, net: nn.Module, optimizer: Callable, scheduler: Callable | None = None,
                 loss: str = "l1", voxel_size_a: float = 1.0,
                 resolution_range_a: Sequence[float] = (2.0, 15.0),
                 net_config: dict | None = None, box_norm: str = "none", huber_delta_a: float = 1.0,
                 scheduler_interval: str = "epoch", monitor: str = "val/mae"):
        super().__init__()
        if loss not in LOSSES:
            raise LocresError(f"unknown loss '{loss}': choose one of {', '.join(LOSSES)}")
        net_config = dict(net_config or getattr(net, "net_config", None) or {})
        if "_target_" not in net_config:
            raise LocresError("the net has no net_config with a _target_: cannot write a loadable checkpoint")
        self.net = net
        self.save_hyperparameters(
            {"net_config": net_config, "voxel_size_a": float(voxel_size_a),
             "resolution_range_a": [float(r) for r in resolution_range_a], "loss": loss, "box_norm": box_norm,
             "box_size": int(getattr(net, "box_size", 0)), "huber_delta_a": float(huber_delta_a)},
            logger=False,
        )
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_interval, self.monitor = scheduler_interval, monitor
        self._test_pred: list[torch.Tensor] = []
        self._test_true: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch[0], batch[1]
        pred = self(x)
        loss = resolution_loss(pred, y, self.hparams.loss, self.hparams.huber_delta_a)
        err = (pred.detach() - y)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=stage != "test",
                 batch_size=len(y), sync_dist=not on_step)
        self.log(f"{stage}/mae", err.abs().mean(), on_step=on_step, on_epoch=True, prog_bar=True,
                 batch_size=len(y), sync_dist=not on_step)
        self.log(f"{stage}/bias", err.mean(), on_step=False, on_epoch=True, batch_size=len(y),
                 sync_dist=not on_step)
        if stage == "test":
            self._test_pred.append(pred.detach().cpu())
            self._test_true.append(y.detach().cpu())
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def on_test_epoch_start(self) -> None:
        self._test_pred, self._test_true = [], []

    def on_test_epoch_end(self) -> None:
        if not self._test_pred:
            return
        pred, true = torch.cat(self._test_pred), torch.cat(self._test_true)
        for name, (mae, n) in binned_mae(pred, true).items():
            if n:
                self.log(f"test/mae_{name}", mae, sync_dist=True)

    def configure_optimizers(self):
        opt = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return opt
        sched = self.scheduler_factory(optimizer=opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": self.scheduler_interval,
                                                   "monitor": self.monitor, "frequency": 1}}
