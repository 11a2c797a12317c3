"""LightningModule for the dense DeepRes models: quantile (pinball) loss in Angstrom on every mask voxel
(``loss_weighting="relative"``: each voxel weighted by ``loss_reference_a / truth``; ``"log"``: the pinball
loss of ``loss_reference_a * log(resolution)``).

Batches are dicts ``x`` (C, d, h, w) features, ``truth`` (d, h, w) Angstrom and ``mask`` (d, h, w) bool
(see :mod:`locres.data.dense`; a leading batch axis is added when missing). The loss is the mean over
mask voxels of the pinball loss of each quantile; metrics: ``mae`` of the median, ``bias`` (mean of
median - truth), ``coverage`` (fraction of true values inside [q_lo, q_hi]) and ``width`` (mean interval
width), all in Angstrom. Checkpoints' ``hyper_parameters`` hold what ``locres.io.checkpoints`` needs:
``net_config``, ``voxel_size_a``, ``resolution_range_a``, ``target`` (``fsc_local``: the expected-local-
FSC target of :mod:`locres.simulate.fsc_target`), ``inputs`` and ``quantiles``.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import nn

from locres.errors import LocresError
from locres.models.lightning_module import DeepResModule

TARGET = "fsc_local"


LOSS_WEIGHTINGS = ("angstrom", "relative", "log")


def pinball_loss_a(pred_a: torch.Tensor, truth_a: torch.Tensor, quantiles: list[float],
                   reference_a: float | None = None, log_scale: bool = False) -> torch.Tensor:
    """Mean pinball loss (Angstrom) of (N, 3) quantile predictions against (N,) truths.

    ``reference_a`` (relative weighting): each voxel's loss is weighted by ``reference_a / truth``, so an
    error counts by its size relative to the resolution (1 A at 3 A as much as 5 A at 15 A), expressed
    in Angstrom at ``reference_a``. The weight depends on the truth, so what the net learns is no longer
    the plain conditional quantile but the quantile of the truth's distribution reweighted by
    ``1 / truth``: a little finer wherever the net is unsure. Unweighted, the coarse voxels' errors of
    several Angstrom dominate the loss; the shipped single-map model (2026-12-07) was fine-tuned with it
    and chosen on validation maps (``locres/weights/deepres2_map_metrics.json``).

    ``log_scale`` (with ``reference_a``): the pinball loss of ``reference_a * log(resolution)`` instead.
    A small error then also counts by its size relative to the resolution (``reference_a * d / truth``),
    but quantiles survive a monotone transform, so the net still learns the plain conditional quantiles
    of the resolution: relative errors without the finer lean.
    """
    q = torch.tensor(quantiles, dtype=pred_a.dtype, device=pred_a.device)
    if log_scale:
        if reference_a is None:
            raise LocresError("the log-scale pinball loss needs a reference resolution (reference_a)")
        log_truth, log_pred = torch.log(truth_a.clamp_min(1e-3)), torch.log(pred_a.clamp_min(1e-3))
        d = float(reference_a) * (log_truth[:, None] - log_pred)
        return torch.maximum(q * d, (q - 1.0) * d).mean(dim=0).sum()
    d = truth_a[:, None] - pred_a
    per_voxel = torch.maximum(q * d, (q - 1.0) * d)
    if reference_a is not None:
        per_voxel = per_voxel * (float(reference_a) / truth_a.clamp_min(1e-3))[:, None]
    return per_voxel.mean(dim=0).sum()


def masked_quantile_metrics(pred_a: torch.Tensor, truth_a: torch.Tensor) -> dict[str, torch.Tensor]:
    """MAE, bias, coverage and width of (N, 3) quantiles against (N,) truths."""
    mid = pred_a[:, 1]
    inside = (truth_a >= pred_a[:, 0]) & (truth_a <= pred_a[:, 2])
    return {
        "mae": (mid - truth_a).abs().mean(),
        "bias": (mid - truth_a).mean(),
        "coverage": inside.float().mean(),
        "width": (pred_a[:, 2] - pred_a[:, 0]).mean(),
    }


class DenseResModule(L.LightningModule):
    """Trains a :class:`locres.models.dense.DenseQuantileNet` (see the module docstring)."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        voxel_size_a: float = 1.0,
        scheduler_interval: str = "epoch",
        monitor: str = "val/mae",
        recipe: dict | None = None,
        loss_weighting: str = "angstrom",
        loss_reference_a: float = 5.0,
    ):
        super().__init__()
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise LocresError(
                f"module.loss_weighting must be one of {LOSS_WEIGHTINGS}, got '{loss_weighting}'")
        self.loss_reference_a = float(loss_reference_a) if loss_weighting != "angstrom" else None
        self.loss_log_scale = loss_weighting == "log"
        if recipe is not None and not isinstance(recipe, dict):  # a DictConfig from Hydra: plain values only
            from omegaconf import OmegaConf

            recipe = OmegaConf.to_container(recipe, resolve=True)
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_interval, self.monitor = scheduler_interval, monitor
        self.save_hyperparameters(
            {
                "net_config": dict(net.net_config),
                "voxel_size_a": float(voxel_size_a),
                "resolution_range_a": [float(net.lo_a), float(net.hi_a)],
                "target": TARGET,
                "inputs": net.inputs,
                "quantiles": list(net.quantiles),
                "recipe": dict(recipe or {}),
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        x, truth, mask = batch["x"], batch["truth"], batch["mask"]
        if x.ndim == 4:
            x, truth, mask = x[None], truth[None], mask[None]
        pred = self.net(x)  # (B, 3, d, h, w)
        sel = mask.bool()
        p = pred.permute(0, 2, 3, 4, 1)[sel]
        t = truth[sel]
        if t.numel() == 0:
            return pred.sum() * 0.0
        loss = pinball_loss_a(p, t, self.net.quantiles, self.loss_reference_a, self.loss_log_scale)
        metrics = masked_quantile_metrics(p.detach(), t)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, batch_size=1, sync_dist=not on_step)
        for k, v in metrics.items():
            self.log(f"{stage}/{k}", v, on_step=False, on_epoch=True, batch_size=1, prog_bar=k == "mae",
                     sync_dist=not on_step)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    configure_optimizers = DeepResModule.configure_optimizers  # the same partial optimizer/scheduler
