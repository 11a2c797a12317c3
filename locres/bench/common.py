"""What every benchmark shares: method variants, running one with time and memory measured.

A *variant* is one method run on one kind of input: ``deepres`` on the single map, ``resmap`` on the
half maps (``resmap_split``), and so on. Each run is timed (wall seconds) and its peak memory is the
largest rise of the process's resident set size above its level at the start (the kernel's high-water
mark, reset before the run; this sees numpy, scipy and torch allocations alike).
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import logging
import os
import platform
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from locres.methods import LocalResolution, MethodInputs

log = logging.getLogger(__name__)

INPUT_KINDS = ("map", "halves")
PARTS = ("groundtruth", "sharpening", "realmaps")


@dataclass
class Variant:
    """One method on one kind of input.

    Attributes
    ----------
    label : the name in tables (e.g. ``resmap_split``).
    method : a method name for :func:`locres.methods.get_method`.
    input : ``"map"`` (the single map) or ``"halves"`` (the two half maps).
    params : keyword arguments for the method's ``run``.
    output : key of ``extra_maps`` to score instead of ``resolution_a``, or None.
    parts : the benchmark parts it runs in (``groundtruth``, ``sharpening``, ``realmaps``); slow
        methods can be kept to fewer parts in a quick run.
    max_cases : run on the first ``max_cases`` ground-truth cases only (None: all); the others are
        reported as skipped, not as failures.
    run : a callable ``run(inputs, **params)`` used instead of the method module (tests, outside tools).
    """

    label: str
    method: str
    input: str = "map"
    params: dict = field(default_factory=dict)
    output: str | None = None
    parts: tuple[str, ...] = PARTS
    max_cases: int | None = None
    run: Callable | None = None

    def __post_init__(self):
        if self.input not in INPUT_KINDS:
            raise ValueError(f"variant {self.label}: input must be one of {INPUT_KINDS}, got {self.input!r}")
        self.parts = tuple(self.parts)
        if not set(self.parts) <= set(PARTS):
            raise ValueError(f"variant {self.label}: parts must be among {PARTS}, got {self.parts}")


def variants_from_config(items: list[dict], checkpoints: list[str] | None = None) -> list[Variant]:
    """Variants from plain dicts (``label``, ``method``, ``input``, ``params``, ``output``).

    Every extra DeepRes checkpoint in ``checkpoints`` adds a variant ``deepres[<file stem>]``.
    """
    out = [Variant(**{k: v for k, v in dict(it).items() if v is not None or k == "output"}) for it in items]
    for path in checkpoints or []:
        stem = os.path.splitext(os.path.basename(str(path)))[0]
        out.append(Variant(label=f"deepres[{stem}]", method="deepres", input="map",
                           params={"checkpoint": str(path)}))
    return out


def resolve_runner(variant: Variant) -> Callable:
    """The ``run`` callable of a variant; raises ImportError/LocresError when its module is missing."""
    if variant.run is not None:
        return variant.run
    if ":" in variant.method:  # "package.module:function" for outside tools
        mod_name, fn_name = variant.method.split(":", 1)
        return getattr(importlib.import_module(mod_name), fn_name)
    from locres.methods import get_method
    from locres.pipeline.execute import call_method

    module = get_method(variant.method)
    # the pipeline's call: parameters checked, the network of a NEEDS_MODEL method loaded
    return lambda inputs, **params: call_method(variant.method, module, inputs, params)


def inputs_for(variant: Variant, voxel_size_a: float, single_map: np.ndarray | None,
               half1: np.ndarray | None, half2: np.ndarray | None, mask: np.ndarray | None,
               device: str = "cpu") -> MethodInputs:
    """The :class:`MethodInputs` a variant gets: the single map only, or the two half maps only."""
    if variant.input == "map":
        return MethodInputs(voxel_size_a=voxel_size_a, map=single_map, mask=mask, device=device)
    return MethodInputs(voxel_size_a=voxel_size_a, half1=half1, half2=half2, mask=mask, device=device)


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS, so a run's rise starts from a floor."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class _PeakRss:
    """Peak resident memory of a block, as its rise (MiB) above the resident size at the start.

    On Linux the kernel's high-water mark (VmHWM) is reset first (``/proc/self/clear_refs``), so the
    peak is exact; elsewhere a thread samples the resident size every 10 ms.
    """

    def __init__(self, interval_s: float = 0.01):
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = None
        self.peak_mb = 0.0

    @staticmethod
    def _rss_mb() -> float:
        rss = _status_mb("VmRSS")
        if rss is not None:
            return rss
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def _loop(self):
        while not self._stop.is_set():
            self._max = max(self._max, self._rss_mb())
            self._stop.wait(self.interval_s)

    def __enter__(self):
        _release_free_memory()
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self._hwm = _status_mb("VmHWM") is not None
        except OSError:
            self._hwm = False
        self._start = self._rss_mb()
        self._max = self._start
        if not self._hwm:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            peak = max(self._max, self._rss_mb())
        else:
            peak = _status_mb("VmHWM")
        self.peak_mb = max(0.0, peak - self._start)


@dataclass
class RunOutcome:
    """A variant's run: the scored map (or None on failure), seconds, peak MB, and what went wrong."""

    resolution_a: np.ndarray | None
    seconds: float
    peak_mb: float
    error: str | None = None
    result: LocalResolution | None = None


def run_variant(variant: Variant, inputs: MethodInputs) -> RunOutcome:
    """Run one variant, timing it and catching any failure (recorded, never raised)."""
    try:
        runner = resolve_runner(variant)
    except Exception as exc:  # module not landed yet, or unknown name
        return RunOutcome(None, 0.0, 0.0, error=f"not available: {type(exc).__name__}: {exc}")
    t0 = time.perf_counter()
    try:
        with _PeakRss() as mem:
            result = runner(inputs, **dict(variant.params))
        seconds = time.perf_counter() - t0
    except Exception as exc:
        seconds = time.perf_counter() - t0
        log.warning("%s failed: %s: %s", variant.label, type(exc).__name__, exc)
        log.debug("%s", traceback.format_exc())
        return RunOutcome(None, seconds, 0.0, error=f"{type(exc).__name__}: {exc}")
    res = result.resolution_a
    if variant.output is not None:
        if variant.output not in result.extra_maps:
            return RunOutcome(None, seconds, mem.peak_mb, result=result,
                              error=f"output '{variant.output}' not among {sorted(result.extra_maps)}")
        res = result.extra_maps[variant.output]
    res = np.asarray(res, dtype=np.float32)
    if res.shape != inputs.shape_zyx:
        return RunOutcome(None, seconds, mem.peak_mb, result=result,
                          error=f"result shape {res.shape} is not the input grid {inputs.shape_zyx}")
    res = np.where(np.isfinite(res), res, 0.0).astype(np.float32)
    return RunOutcome(res, seconds, mem.peak_mb, result=result)


def machine_info() -> dict:
    """The machine and date, for result files."""
    try:
        import torch

        torch_version, threads = torch.__version__, torch.get_num_threads()
    except ImportError:  # pragma: no cover
        torch_version, threads = None, None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch_version,
        "platform": platform.platform(),
    }
