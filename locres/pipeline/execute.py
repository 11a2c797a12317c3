"""Run: import a method, check its inputs and parameters, load its network, run it and measure it.

:func:`run_method` is the one call that turns checked :class:`~locres.pipeline.inputs.LoadedInputs`
into a :class:`~locres.methods.LocalResolution` on the input grid (non-finite values set to 0), wrapped
in a :class:`Measured` with the wall seconds and the peak resident (and GPU) memory of the run.

:func:`call_method` is how every caller (``run_method``, the benchmarks) calls a method module's ``run``:

- unknown parameters are refused in one line by :func:`check_parameters`, against the parameters of
  ``run`` (:func:`accepted_parameters`, via ``inspect.signature``); a ``run`` that takes ``**params``
  is checked against the keys of its ``configs/method/NAME.yaml`` instead;
- a module that declares ``NEEDS_MODEL = True`` gets its network loaded here: the ``checkpoint``
  parameter (else the module's ``default_checkpoint(inputs)``) is read with
  :func:`locres.io.checkpoints.load_model` on the inputs' device and passed as ``run(inputs, model=...)``.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from locres.errors import LocresError
from locres.io.checkpoints import load_model
from locres.methods import LocalResolution, MethodInputs, get_method
from locres.pipeline.inputs import LoadedInputs

log = logging.getLogger(__name__)

METHOD_CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "method"
CHECKPOINT_PARAMETER = "checkpoint"


def check_method_inputs(name: str, module: Any, inputs: MethodInputs) -> None:
    """Refuse a method that needs half maps when only one map was given, or a model when none was."""
    needs = getattr(module, "INPUTS", "map")
    if needs == "map_and_model" and not inputs.has_model:
        raise LocresError(
            f"method {name} needs the atomic model fitted to the map: give input.model=MODEL.pdb (or .cif)"
        )
    if needs == "halves" and not inputs.has_halves:
        raise LocresError(
            f"method {name} needs two half maps: give input.half1=H1.mrc input.half2=H2.mrc "
            "(or choose a single-map method such as deepres, monores or resmap)"
        )


def load_method(name: str) -> Any:
    """Import ``locres.methods.NAME`` with one-line errors for unknown or missing methods."""
    try:
        return get_method(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("locres.methods"):
            raise LocresError(
                f"method {name} is not available in this installation (locres/methods/{name}.py is missing)"
            ) from None
        raise LocresError(f"method {name} needs the package '{exc.name}': pip install it") from None


def needs_model(module: ModuleType) -> bool:
    """True when the method module declares that it runs a network (``NEEDS_MODEL = True``)."""
    return bool(getattr(module, "NEEDS_MODEL", False))


def _config_keys(name: str, config_dir: str | Path | None) -> list[str] | None:
    """Keys of ``configs/method/NAME.yaml`` (``name`` and ``defaults`` left out); None if no such file."""
    path = Path(config_dir or METHOD_CONFIG_DIR) / f"{name}.yaml"
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    keys = list((OmegaConf.to_container(OmegaConf.load(path)) or {}).keys())
    return [k for k in keys if k not in ("name", "defaults")]


def accepted_parameters(name: str, module: ModuleType, config_dir: str | Path | None = None
                        ) -> list[str] | None:
    """The parameters ``method.KEY=...`` a method takes, in order; None when they cannot be known.

    They are the keyword parameters of ``module.run`` after ``inputs`` (``model`` replaced by
    ``checkpoint`` for a module that needs a network). A ``run(inputs, **params)`` takes the keys of
    ``config_dir/NAME.yaml`` (default: the repository's ``configs/method``).
    """
    sig = inspect.signature(module.run)
    names, var_keyword = [], False
    for i, p in enumerate(sig.parameters.values()):
        if i == 0 or p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.VAR_KEYWORD:
            var_keyword = True
        elif p.name == "model" and needs_model(module):
            names.insert(0, CHECKPOINT_PARAMETER)
        else:
            names.append(p.name)
    if var_keyword:
        keys = _config_keys(name, config_dir)
        if keys is None:
            return None
        names += [k for k in keys if k not in names]
    return names


def check_parameters(name: str, module: ModuleType, params: Mapping[str, Any],
                     config_dir: str | Path | None = None) -> None:
    """Refuse, in one line, any parameter that method ``name`` does not take."""
    accepted = accepted_parameters(name, module, config_dir)
    if accepted is None:
        log.debug("%s: run takes **params and has no config file; parameters not checked", name)
        return
    unknown = [k for k in params if k not in accepted]
    if unknown:
        what = "parameter" if len(unknown) == 1 else "parameters"
        raise LocresError(
            f"method {name} has no {what} {', '.join(repr(k) for k in unknown)} "
            f"(it takes: {', '.join(accepted) or 'no parameters'})"
        )


def load_method_model(name: str, module: ModuleType, inputs: MethodInputs, checkpoint: Any = None):
    """The :class:`~locres.models.loaded.LoadedModel` a ``NEEDS_MODEL`` method runs, on the inputs' device.

    ``checkpoint`` (``method.checkpoint``) wins; else the module's ``default_checkpoint(inputs)``, which
    must exist (the shipped model).
    """
    if checkpoint:
        return load_model(checkpoint, device=inputs.device)
    path = Path(module.default_checkpoint(inputs))
    if not path.is_file():
        raise LocresError(f"the shipped {name} model {path} is missing: train one (python train.py) "
                          "and give method.checkpoint=PATH")
    return load_model(path, device=inputs.device)


def call_method(name: str, module: ModuleType, inputs: MethodInputs, params: Mapping[str, Any] | None = None,
                config_dir: str | Path | None = None) -> Any:
    """``module.run(inputs, **params)`` with the parameters checked and the network loaded (see above)."""
    params = dict(params or {})
    check_parameters(name, module, params, config_dir)
    if needs_model(module):
        model = load_method_model(name, module, inputs, params.pop(CHECKPOINT_PARAMETER, None))
        return module.run(inputs, model=model, **params)
    return module.run(inputs, **params)


def _reset_peak_rss() -> bool:
    try:  # Linux >= 4.0: writing 5 resets the peak resident set size (VmHWM) of this process
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class Measured:
    """Result of :func:`measure`: the return value, wall seconds and peak memory in MiB."""

    value: Any
    seconds: float
    peak_memory_mb: float
    peak_gpu_memory_mb: float | None = None


def measure(fn: Callable[[], Any], device: str = "cpu") -> Measured:
    """Run ``fn()`` timing wall seconds and the peak resident memory of the process during it."""
    _reset_peak_rss()
    cuda = device.startswith("cuda")
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - t0
    gpu = None
    if cuda:
        import torch

        torch.cuda.synchronize()
        gpu = torch.cuda.max_memory_allocated() / 2**20
    return Measured(value, seconds, _peak_rss_mb(), gpu)


def run_method(name: str, loaded: LoadedInputs, params: Mapping[str, Any] | None = None,
               config_dir: str | Path | None = None) -> Measured:
    """Run one method on checked inputs; the result is a :class:`LocalResolution` on the input grid.

    ``config_dir`` is the folder of method configs that a ``run(inputs, **params)`` is checked against
    (default: the repository's ``configs/method``). The seconds include loading the method's network.
    """
    module = load_method(name)
    check_method_inputs(name, module, loaded.inputs)
    params = dict(params or {})
    check_parameters(name, module, params, config_dir)
    log.info(
        "running %s on %s voxels at %.3f A/px (%s)%s",
        name,
        "x".join(map(str, loaded.inputs.shape_zyx)),
        loaded.inputs.voxel_size_a,
        loaded.inputs.device,
        f" with {params}" if params else "",
    )
    measured = measure(lambda: call_method(name, module, loaded.inputs, params, config_dir),
                       loaded.inputs.device)
    result = measured.value
    if not isinstance(result, LocalResolution):
        raise LocresError(f"method {name} returned {type(result).__name__}, not a LocalResolution")
    res = np.asarray(result.resolution_a, dtype=np.float32)
    if res.shape != tuple(loaded.inputs.shape_zyx):
        raise LocresError(
            f"method {name} returned a map of shape {res.shape}, not the input grid {loaded.inputs.shape_zyx}"
        )
    bad = ~np.isfinite(res)
    if bad.any():
        log.warning("%s: %d non-finite values set to 0 (not estimated)", name, int(bad.sum()))
        res = np.where(bad, 0.0, res).astype(np.float32)
    result.resolution_a = res
    log.info("%s done in %.1f s (peak memory %.0f MiB)", name, measured.seconds, measured.peak_memory_mb)
    return measured


