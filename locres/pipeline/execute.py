"""Run: import a method, check that it accepts the inputs, run it and measure seconds and memory.

:func:`run_method` is the one call that turns checked :class:`~locres.pipeline.inputs.LoadedInputs`
into a :class:`~locres.methods.LocalResolution` on the input grid (non-finite values set to 0), wrapped
in a :class:`Measured` with the wall seconds and the peak resident (and GPU) memory of the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from locres.errors import LocresError
from locres.methods import LocalResolution, MethodInputs, get_method
from locres.pipeline.inputs import LoadedInputs

log = logging.getLogger(__name__)


def check_method_inputs(name: str, module: Any, inputs: MethodInputs) -> None:
    """Refuse a method that needs half maps when only one map was given."""
    needs = getattr(module, "INPUTS", "map")
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


def run_method(name: str, loaded: LoadedInputs, params: Mapping[str, Any] | None = None) -> Measured:
    """Run one method on checked inputs; the result is a :class:`LocalResolution` on the input grid."""
    module = load_method(name)
    check_method_inputs(name, module, loaded.inputs)
    params = dict(params or {})
    log.info(
        "running %s on %s voxels at %.3f A/px (%s)%s",
        name,
        "x".join(map(str, loaded.inputs.shape_zyx)),
        loaded.inputs.voxel_size_a,
        loaded.inputs.device,
        f" with {params}" if params else "",
    )
    measured = measure(lambda: module.run(loaded.inputs, **params), loaded.inputs.device)
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


