"""LightningModule for the dense DeepRes models: quantile (pinball) loss in Angstrom on every mask voxel
(``loss_weighting="relative"``: each voxel weighted by ``loss_reference_a / truth``; ``"log"``: the pinball
loss of ``loss_reference_a * log(resolution)``). ``contrast_weight`` > 0 adds :func:`contrast_loss_a`, an L1
loss on the median's spatial pattern within each crop (its level taken out), so that the map-to-map
level errors do not drown the within-map variation that a Spearman correlation scores.

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


def contrast_loss_a(pred_mid_a: torch.Tensor, truth_a: torch.Tensor, mask: torch.Tensor,
                    reference_a: float = 5.0) -> torch.Tensor:
    """L1 error (Angstrom at ``reference_a``) of the predicted spatial pattern of log-resolution in each crop.

    For each of the (B, d, h, w) crops, both the predicted median and the truth are taken to
    ``log(resolution)`` and their mean over the crop's mask voxels is subtracted; the loss is the mean
    absolute difference of what remains, times ``reference_a`` (a small error then reads as Angstrom at
    ``reference_a``: ``reference_a * d / truth``). It is zero when the prediction equals the truth times
    any factor per crop, so it scores the within-map pattern alone, the part that a Spearman
    correlation sees. Crops without mask voxels add nothing.
    """
    total, n_crops = pred_mid_a.sum() * 0.0, 0
    for p, t, m in zip(pred_mid_a, truth_a, mask.bool()):
        if not bool(m.any()):
            continue
        lp, lt = torch.log(p[m].clamp_min(1e-3)), torch.log(t[m].clamp_min(1e-3))
        total = total + ((lp - lp.mean()) - (lt - lt.mean())).abs().mean()
        n_crops += 1
    return float(reference_a) * total / max(n_crops, 1)


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
        contrast_weight: float = 0.0,
    ):
        super().__init__()
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise LocresError(
                f"module.loss_weighting must be one of {LOSS_WEIGHTINGS}, got '{loss_weighting}'")
        self.loss_reference_a = float(loss_reference_a) if loss_weighting != "angstrom" else None
        self.loss_log_scale = loss_weighting == "log"
        if not contrast_weight >= 0.0:
            raise LocresError(f"module.contrast_weight must be >= 0, got {contrast_weight}")
        self.contrast_weight, self.contrast_reference_a = float(contrast_weight), float(loss_reference_a)
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
        on_step = stage == "train"
        contrast = contrast_loss_a(pred[:, 1], truth, sel, self.contrast_reference_a)  # logged either way
        if self.contrast_weight > 0.0:
            loss = loss + self.contrast_weight * contrast
        self.log(f"{stage}/contrast", contrast.detach(), on_step=False, on_epoch=True, batch_size=1,
                 sync_dist=not on_step)
        metrics = masked_quantile_metrics(p.detach(), t)
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
