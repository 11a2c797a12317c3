"""Training orchestration around the nets: test, metrics files, slim export, phantom check.

The one module that joins ``models`` (nets, metrics), ``data`` (the held-out split), ``io``
(checkpoints) and ``methods`` (DeepRes inference) for ``train.py`` and the benchmarks, so that
``locres/models`` knows no dataset and no file. After ``trainer.fit``, :func:`finish_run` tests the best
checkpoint on the held-out structures, writes ``metrics.json`` and the slim export; :func:`evaluate_boxes`
is the pure scoring step; :func:`evaluate_phantoms` scores a checkpoint on phantoms of known local
resolution. ``python -m locres.training CKPT [SHARDS_DIR]`` prints a checkpoint's held-out metrics.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from locres.models.lightning_module import RESOLUTION_BINS_A, binned_mae

log = logging.getLogger(__name__)


@torch.no_grad()
def evaluate_boxes(net: torch.nn.Module, dataset, batch_size: int = 512) -> dict:
    """MAE, bias and per-bin MAE (Angstrom) of ``net`` on a TensorDataset ``(x, y[, ids])``."""
    net.eval()
    x, y = dataset.tensors[0], dataset.tensors[1]
    t0 = time.perf_counter()
    pred = torch.cat([net(x[i: i + batch_size]) for i in range(0, len(x), batch_size)])
    sec = time.perf_counter() - t0
    err = pred - y
    bins = binned_mae(pred, y, RESOLUTION_BINS_A)
    out = {"n_boxes": len(y), "mae_a": float(err.abs().mean()), "bias_a": float(err.mean()),
           "mae_per_bin_a": {k: (round(v, 4) if n else None) for k, (v, n) in bins.items()},
           "boxes_per_bin": {k: n for k, (v, n) in bins.items()}, "seconds": round(sec, 2)}
    sel = (y >= 2.5) & (y <= 12.0)
    if sel.any():
        out["mae_2.5-12_a"] = float(err[sel].abs().mean())
    return out


def finish_run(trainer, module, datamodule, cfg: dict, started: float | None = None) -> dict:
    """Test the best checkpoint, write ``run_dir/metrics.json`` and the slim export (rank 0 only)."""
    from locres.io.checkpoints import load_deepres

    run_dir = Path(cfg["run_dir"])
    cb = trainer.checkpoint_callback
    best = cb.best_model_path if cb is not None and cb.best_model_path else None
    metrics: dict = {"best_checkpoint": best, "last_checkpoint": str(run_dir / "checkpoints" / "last.ckpt"),
                     "epochs": int(trainer.current_epoch), "global_step": int(trainer.global_step),
                     "best_val_mae_a": float(cb.best_model_score) if best and cb.best_model_score is not None
                     else None}
    if started is not None:
        metrics["fit_seconds"] = round(time.time() - started, 1)
    if not trainer.is_global_zero:
        return metrics
    net = module.net
    if best:
        net, _ = load_deepres(best)
    if cfg.get("test", True) and module.hparams.get("target") == "fsc_local":
        metrics["test"] = {k: float(v) for k, v in trainer.test(module, datamodule=datamodule,
                                                                  ckpt_path=best, verbose=False)[0].items()}
        log.info("held-out test maps: %s", metrics["test"])
    elif cfg.get("test", True):
        datamodule.setup("test")
        metrics["test"] = evaluate_boxes(net, datamodule.test_set)
        metrics["test"]["structures"] = datamodule.sources["test"].names
        log.info("held-out test MAE %.3f A (bias %+.3f A); per bin %s", metrics["test"]["mae_a"],
                 metrics["test"]["bias_a"], metrics["test"]["mae_per_bin_a"])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if cfg.get("export"):
        export(cfg["export"], net, module, cfg, metrics)
    return metrics


def export(path: str, net, module, cfg: dict, metrics: dict) -> Path:
    """Slim ``.pt`` + ``<stem>.yaml`` (the training config) + ``<stem>_metrics.json``."""
    from omegaconf import OmegaConf

    from locres.io.checkpoints import export_slim

    hp = module.hparams
    extra = {"metrics": metrics, "box_norm": hp.get("box_norm", "none")}
    extra.update({k: hp[k] for k in ("target", "inputs", "quantiles") if k in hp})
    out = export_slim(path, net, hp["voxel_size_a"], hp["resolution_range_a"], extra=extra)
    stem = out.with_suffix("")
    OmegaConf.save(OmegaConf.create(cfg), str(stem) + ".yaml")
    Path(str(stem) + "_metrics.json").write_text(json.dumps(metrics, indent=1))
    log.info("exported %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out


def export_checkpoint(checkpoint: str, out_path: str, extra: dict | None = None) -> Path:
    """A train.py ``.ckpt`` -> a slim ``.pt`` (weights + what the model was trained for), for shipping.

    Keeps ``target``, ``inputs``, ``quantiles`` and ``recipe`` from the checkpoint's hyper-parameters;
    ``extra`` (JSON-like, e.g. metrics and the commands that made it) is added.
    """
    import torch

    from locres.io.checkpoints import export_slim, load_deepres

    net, meta = load_deepres(checkpoint)
    hp = torch.load(checkpoint, map_location="cpu", weights_only=True).get("hyper_parameters", {})
    keep = {k: hp[k] for k in ("target", "inputs", "quantiles", "recipe") if k in hp}
    return export_slim(out_path, net, meta["voxel_size_a"], meta["resolution_range_a"],
                       extra={**keep, **(extra or {})})


def evaluate_phantoms(checkpoint: str, model_files: list, resolution_range_a=(3.0, 10.0), snr: float = 5.0,
                      pattern: str = "radial", seed: int = 0) -> dict:
    """MAE (Angstrom, inside the phantom mask) of a DeepRes checkpoint on phantoms whose resolution
    varies in space, made from held-out atomic models (noise-free ``clean`` map and the noisy ``map``)."""
    import numpy as np

    from locres.io.checkpoints import load_model
    from locres.io.models import entry_id, read_structure
    from locres.methods import MethodInputs, deepres
    from locres.simulate.density import simulate_map_centered
    from locres.simulate.phantom import make_phantom

    model = load_model(checkpoint)
    rows = []
    for path in model_files:
        density = simulate_map_centered(read_structure(path), 1.0, padding_a=12.0).data
        ph = make_phantom(density, 1.0, resolution_range_a=resolution_range_a, pattern=pattern, snr=snr,
                          seed=seed)
        row = {"entry": entry_id(path), "shape_zyx": list(density.shape)}
        for kind in ("clean", "map"):
            t0 = time.perf_counter()
            res = deepres.run(MethodInputs(voxel_size_a=1.0, map=getattr(ph, kind), mask=ph.mask),
                              model=model).resolution_a
            err = res[ph.mask] - ph.truth_a[ph.mask]
            row[kind] = {"mae_a": round(float(np.abs(err).mean()), 3), "bias_a": round(float(err.mean()), 3),
                         "seconds": round(time.perf_counter() - t0, 2)}
        rows.append(row)
    out = {"resolution_range_a": list(resolution_range_a), "pattern": pattern, "snr_of_map": snr,
           "phantoms": rows}
    for kind in ("clean", "map"):
        out[f"mean_mae_{kind}_a"] = round(float(np.mean([r[kind]["mae_a"] for r in rows])), 3)
    return out


def main(argv: list[str] | None = None) -> None:
    """Held-out test metrics of a checkpoint: ``python -m locres.training CKPT [SHARDS_DIR]``.

    Uses the data settings of ``configs/data/shards.yaml`` (test split, 12 resolutions over the
    checkpoint's range, 32 boxes per map, seed 0) and prints the metrics as JSON.
    """
    import sys

    from locres.data.datamodule import DeepResDataModule
    from locres.io.checkpoints import load_deepres

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        raise SystemExit("usage: python -m locres.training CKPT [SHARDS_DIR] (held-out test metrics as JSON)")
    net, meta = load_deepres(argv[0])
    dm = DeepResDataModule(source="shards", shards_dir=argv[1] if len(argv) > 1 else "runs/training_set",
                           box_size=net.box_size, recipe={"voxel_size_a": meta["voxel_size_a"],
                                                          "resolution_range_a": meta["resolution_range_a"]})
    dm.setup("test")
    print(json.dumps(evaluate_boxes(net, dm.test_set), indent=1))


if __name__ == "__main__":
    main()
