"""DeepRes checkpoints: Lightning ``.ckpt`` files from ``train.py`` and slim ``.pt`` exports.

Both hold ``net_config`` (a dict with ``_target_`` naming a class under ``locres.``), ``voxel_size_a``
(the model's voxel size) and ``resolution_range_a`` ([lo, hi], the trained range). A Lightning file
keeps them in ``hyper_parameters`` and the weights in ``state_dict`` with keys prefixed ``net.``; a slim
export keeps them at the top level beside ``state_dict`` (the net's own keys, unprefixed).
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from locres.errors import LocresError
from locres.io.atomic import atomic_path
from locres.models.loaded import LoadedModel

log = logging.getLogger(__name__)

SLIM_FORMAT = "locres-deepres-slim"
SLIM_VERSION = 1


def _plain(obj):
    """OmegaConf containers (and nested mappings/sequences) -> plain dicts/lists."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, DictConfig | ListConfig):
            return OmegaConf.to_container(obj, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def build_net(net_config: Mapping) -> nn.Module:
    """Instantiate a net from ``{"_target_": "locres.models.nets.Class", **kwargs}``."""
    cfg = dict(_plain(net_config))
    target = cfg.pop("_target_", None)
    if not isinstance(target, str) or not target.startswith("locres.") or "." not in target:
        raise LocresError("net_config _target_ must name a locres class "
                          f"(e.g. locres.models.nets.CompactResNet), got {target!r}")
    module_name, cls_name = target.rsplit(".", 1)
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as e:
        raise LocresError(f"net_config names {target}, which does not exist in this locres version") from e
    try:
        return cls(**cfg)
    except TypeError as e:
        raise LocresError(f"net_config does not fit {target}: {e}") from e


def _torch_load(path: Path, device: str):
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        # Lightning checkpoints may pickle hyper-parameters (e.g. DictConfig, partial optimisers)
        log.debug("weights-only load refused %s; loading it in full", path)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a damaged file
        raise LocresError(f"cannot read checkpoint {path}: the file is damaged or not a torch file "
                          f"({type(e).__name__})") from e
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise LocresError(f"cannot read checkpoint {path}: the file is damaged or not a torch file "
                          f"({type(e).__name__})") from e


def _net_state(state: Mapping) -> dict:
    """The net's weights from a Lightning (``net.``-prefixed) or slim (unprefixed) state dict."""
    prefixed = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
    return prefixed if prefixed else dict(state)


def load_deepres(path: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, dict]:
    """Load a DeepRes net from a Lightning ``.ckpt`` or a slim ``.pt`` export, in eval mode.

    Parameters
    ----------
    path : path-like
        The checkpoint file.
    device : str
        ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    net : torch.nn.Module
        On ``device``, eval mode.
    meta : dict
        ``net_config``, ``voxel_size_a`` (float), ``resolution_range_a`` ([lo, hi] floats), ``kind``
        (``"lightning"`` or ``"slim"``), ``path``, and any ``metrics`` the file carries.
    """
    p = Path(path)
    if not p.is_file():
        raise LocresError(f"checkpoint {p} does not exist: "
                          "give method.checkpoint=PATH of a .ckpt or .pt file")
    blob = _torch_load(p, device)
    if not isinstance(blob, Mapping) or "state_dict" not in blob:
        raise LocresError(f"{p} is not a locres checkpoint (no state_dict): "
                          "use a train.py .ckpt or a slim .pt")
    if "hyper_parameters" in blob:
        hp, kind = _plain(blob["hyper_parameters"]), "lightning"
    else:
        hp, kind = blob, "slim"
    missing = [k for k in ("net_config", "voxel_size_a", "resolution_range_a") if k not in hp]
    if missing:
        raise LocresError(f"{p} is not a locres DeepRes checkpoint (missing {', '.join(missing)})")
    try:
        voxel_size_a = float(hp["voxel_size_a"])
        lo, hi = (float(v) for v in _plain(hp["resolution_range_a"]))
    except (TypeError, ValueError) as e:
        raise LocresError(f"{p}: voxel_size_a / resolution_range_a are malformed") from e
    if not (voxel_size_a > 0 and 0 < lo < hi):
        raise LocresError(f"{p}: bad voxel_size_a {voxel_size_a} or resolution_range_a [{lo}, {hi}]")
    net_config = _plain(hp["net_config"])
    if not isinstance(net_config, Mapping):
        raise LocresError(f"{p}: net_config must be a mapping with _target_")
    net = build_net(net_config)
    try:
        net.load_state_dict(_net_state(blob["state_dict"]), strict=True)
    except (RuntimeError, KeyError, TypeError, AttributeError) as e:
        raise LocresError(f"{p}: the weights do not match its net_config ({str(e).splitlines()[0]})") from e
    net.to(device).eval()
    meta = {"net_config": dict(net_config), "voxel_size_a": voxel_size_a, "resolution_range_a": [lo, hi],
            "kind": kind, "path": str(p)}
    # what the net was trained to say: "appearance" (the published DeepRes target) or "fsc_local"
    meta["target"] = str(hp.get("target", "appearance"))
    meta["inputs"] = str(hp.get("inputs", "map"))
    if hp.get("quantiles") is not None:
        meta["quantiles"] = [float(q) for q in _plain(hp["quantiles"])]
    if isinstance(hp.get("metrics"), Mapping):
        meta["metrics"] = _plain(hp["metrics"])
    log.info("loaded %s checkpoint %s (%s, model voxel %.3f A, range %.1f-%.1f A)", kind, p,
             net_config.get("_target_"), voxel_size_a, lo, hi)
    return net, meta


def load_model(path: str | os.PathLike, device: str = "cpu") -> LoadedModel:
    """:func:`load_deepres` as the :class:`~locres.models.loaded.LoadedModel` the methods receive."""
    net, meta = load_deepres(path, device=device)
    return LoadedModel(net=net, meta=meta)


def export_slim(path: str | os.PathLike, net: nn.Module, voxel_size_a: float,
                resolution_range_a: Sequence[float], net_config: Mapping | None = None,
                extra: Mapping | None = None) -> Path:
    """Write a slim ``.pt`` (config + float32 weights) atomically: a temp file, then a rename.

    ``net_config`` defaults to ``net.net_config``; ``extra`` (JSON-like, e.g. ``{"metrics": {...}}``)
    is stored beside it. Returns the path written.
    """
    cfg = _plain(net_config if net_config is not None else getattr(net, "net_config", None))
    if not isinstance(cfg, Mapping) or "_target_" not in cfg:
        raise LocresError("export_slim needs a net_config with _target_ (or a net with .net_config)")
    lo, hi = (float(v) for v in resolution_range_a)
    state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    blob = {"format": SLIM_FORMAT, "version": SLIM_VERSION, "net_config": dict(cfg),
            "voxel_size_a": float(voxel_size_a), "resolution_range_a": [lo, hi], "state_dict": state}
    if extra:
        for k, v in _plain(extra).items():
            if k not in blob:
                blob[k] = v
    out = Path(path)
    with atomic_path(out) as tmp:
        torch.save(blob, tmp)
    return out


def export_with_interval_scale(src: str | os.PathLike, dst: str | os.PathLike,
                               interval_scale: Sequence[float], calibration: Mapping) -> Path:
    """Write the model of ``src`` (``.ckpt`` or ``.pt``) as a slim ``.pt`` whose dense net carries
    ``interval_scale`` (see :mod:`locres.models.interval_calibration`), keeping what it was trained for
    (target, inputs, quantiles, recipe) and storing ``calibration`` (how the factors were fitted)."""
    net, meta = load_deepres(src)
    if "interval_scale" not in getattr(net, "net_config", {}):
        raise LocresError(f"{src} is not a dense quantile model: it has no interval to calibrate")
    cfg = {**meta["net_config"], "interval_scale": [float(s) for s in interval_scale]}
    blob = _torch_load(Path(src), "cpu")
    hp = _plain(blob.get("hyper_parameters", blob))
    keep = {k: hp[k] for k in ("target", "inputs", "quantiles", "recipe") if k in hp}
    return export_slim(dst, net, meta["voxel_size_a"],
                       meta["resolution_range_a"], net_config=cfg,
                       extra={**keep, "interval_calibration": dict(calibration)})
