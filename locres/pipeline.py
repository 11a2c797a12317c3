"""What ``infer.py`` does, as plain functions: load and check inputs, run methods, write reports.

The numerical work happens in ``locres.methods``; this module is the I/O edge around it:

1. :func:`load_inputs` reads the map and/or half maps and the mask (via :mod:`locres.io.maps`), puts the
   mask on the map's grid (``resample_onto``, binarised at 0.5) and refuses bad inputs with a one-line
   :class:`LocresError`;
2. :func:`run_method` checks that the method accepts these inputs and runs it, timing seconds and peak
   memory;
3. :func:`run_and_report` writes ``NAME.mrc`` (+ extra maps, method-made mask), ``NAME.json``,
   ``NAME.png`` and ``NAME.cxc`` (and ``compare.json``/``compare.png`` for several methods) through an
   :class:`OutputStage`, so that a failure leaves no partial output behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from locres.core.devices import resolve_device  # noqa: F401  (re-exported for the entry points)
from locres.core.maps import MapVolume, resample_onto
from locres.errors import LocresError
from locres.io.maps import read_map
from locres.methods import LocalResolution, MethodInputs, get_method

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- inputs
@dataclass
class LoadedInputs:
    """Inputs read from disk and checked.

    ``reference`` is the volume whose grid every output is written on (the map, else half map 1);
    ``inputs`` holds the arrays handed to the methods; ``paths`` the file names as given.
    """

    reference: MapVolume
    inputs: MethodInputs
    paths: dict[str, str | None] = field(default_factory=dict)
    mask_given: bool = False


def _check_volume(vol: MapVolume, role: str) -> None:
    _ = vol.geometry.voxel_size_a  # raises a one-line error when the header has none
    v = np.asarray(vol.geometry.voxel_size_xyz_a, dtype=float)
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise LocresError(
            f"{role} {vol.path} has voxel size {tuple(v)}; give it with input.voxel_size=<A/px>"
        )
    if min(vol.data.shape) < 3:
        raise LocresError(f"{role} {vol.path} is too small ({vol.data.shape}); give a 3-D map")
    if float(np.ptp(vol.data)) == 0.0:
        raise LocresError(
            f"{role} {vol.path} is constant (every voxel {float(vol.data.flat[0]):g}); "
            "give a map with density"
        )


def _same_grid_or_fail(a: MapVolume, b: MapVolume, what: str) -> None:
    if a.data.shape != b.data.shape:
        raise LocresError(
            f"{what} have different shapes {a.data.shape} and {b.data.shape} (z, y, x); "
            "give maps from the same reconstruction"
        )
    va, vb = a.geometry.voxel_size_a, b.geometry.voxel_size_a
    if abs(va - vb) > 1e-3 * max(va, vb):
        raise LocresError(
            f"{what} have different voxel sizes {va:.4f} and {vb:.4f} A; "
            "give maps from the same reconstruction (or fix the headers)"
        )


def load_mask(
    path: str | os.PathLike, reference: MapVolume, voxel_size_overridden: bool = False
) -> np.ndarray:
    """Read a mask and put it on ``reference``'s grid: resampled (trilinear) and binarised at 0.5.

    A mask without a voxel size, or any mask of the map's shape when the map's voxel size was overridden
    with ``input.voxel_size``, is taken to be on the map's grid already.
    """
    mask_vol = read_map(path, role="mask")
    if mask_vol.data.shape == reference.data.shape and (
        voxel_size_overridden or mask_vol.geometry.voxel_size_xyz_a is None
    ):
        values = mask_vol.data
    else:
        if mask_vol.geometry.voxel_size_xyz_a is None:
            raise LocresError(
                f"mask {path} has no voxel size and a different shape {mask_vol.data.shape} "
                f"from the map {reference.data.shape}; give a mask on the map's grid"
            )
        values = resample_onto(mask_vol, reference.geometry, order=1, role="mask")
    vmax = float(values.max()) if values.size else 0.0
    if vmax > 1.5:  # a label map or a density used as mask: normalise so that 0.5 means "half way"
        values = values / vmax
    mask = values >= 0.5
    if not mask.any():
        raise LocresError(
            f"mask {path} is empty on the map's grid (no voxel >= 0.5 after resampling); "
            "check the mask file and its header origin and voxel size"
        )
    return mask


def load_inputs(
    map_path: str | os.PathLike | None = None,
    half1_path: str | os.PathLike | None = None,
    half2_path: str | os.PathLike | None = None,
    mask_path: str | os.PathLike | None = None,
    voxel_size_a: float | None = None,
    device: str = "cpu",
) -> LoadedInputs:
    """Read and check the inputs of one inference run (see module docstring)."""
    if (half1_path is None) != (half2_path is None):
        raise LocresError("give both half maps (input.half1 and input.half2) or neither")
    if map_path is None and half1_path is None:
        raise LocresError(
            "no input map given: set input.map=MAP.mrc or input.half1=H1.mrc input.half2=H2.mrc"
        )
    if voxel_size_a is not None:
        try:
            voxel_size_a = float(voxel_size_a)
        except (TypeError, ValueError):
            raise LocresError(
                f"input.voxel_size must be a number of Angstrom, got {voxel_size_a!r}"
            ) from None
        if not (np.isfinite(voxel_size_a) and voxel_size_a > 0):
            raise LocresError(f"input.voxel_size must be a positive number of Angstrom, got {voxel_size_a}")
    vols: dict[str, MapVolume] = {}
    for key, path, role in (
        ("map", map_path, "map"),
        ("half1", half1_path, "half map 1"),
        ("half2", half2_path, "half map 2"),
    ):
        if path is not None:
            vols[key] = read_map(path, voxel_size_a=voxel_size_a, role=role)
            _check_volume(vols[key], role)
    if "half1" in vols:
        _same_grid_or_fail(vols["half1"], vols["half2"], "the half maps")
        if float(np.ptp(vols["half1"].data - vols["half2"].data)) == 0.0:
            log.warning(
                "the two half maps are identical up to a constant: half-map methods will see no noise"
            )
    reference = vols.get("map", vols.get("half1"))
    if "map" in vols and "half1" in vols:
        _same_grid_or_fail(vols["map"], vols["half1"], "the map and the half maps")
    mask = None
    if mask_path is not None:
        mask = load_mask(mask_path, reference, voxel_size_overridden=voxel_size_a is not None)
    inputs = MethodInputs(
        voxel_size_a=reference.voxel_size_a,
        map=vols["map"].data if "map" in vols else None,
        half1=vols["half1"].data if "half1" in vols else None,
        half2=vols["half2"].data if "half2" in vols else None,
        mask=mask,
        device=device,
    )
    if inputs.map is None:
        inputs.map = inputs.average_map().astype(np.float32)
    paths = {"map": _s(map_path), "half1": _s(half1_path), "half2": _s(half2_path), "mask": _s(mask_path)}
    return LoadedInputs(reference=reference, inputs=inputs, paths=paths, mask_given=mask is not None)


def _s(p: Any) -> str | None:
    return None if p is None else str(p)


# -------------------------------------------------------------------------------------------- methods
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


# -------------------------------------------------------------------------------------------- outputs
class OutputStage:
    """Collects output files in a hidden folder inside ``out_dir`` and moves them in place at the end.

    Used as a context manager: on an exception the staging folder (and ``out_dir`` itself when this run
    created it and it is empty) is removed, so no partial output is left; on success every file is moved
    into ``out_dir`` with an atomic rename.
    """

    def __init__(self, out_dir: str | os.PathLike, overwrite: bool = True):
        self.out_dir = Path(out_dir)
        self.overwrite = overwrite
        self.created_dir = False
        self.tmp: Path | None = None
        self.names: list[str] = []

    def __enter__(self) -> OutputStage:
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise LocresError(
                f"output.dir {self.out_dir} exists and is not a folder; choose another output.dir"
            )
        if not self.out_dir.exists():
            try:
                self.out_dir.mkdir(parents=True)
            except OSError as exc:
                raise LocresError(f"cannot create output.dir {self.out_dir}: {exc.strerror}") from None
            self.created_dir = True
        self.tmp = Path(tempfile.mkdtemp(prefix=".locres-partial-", dir=self.out_dir))
        return self

    def path(self, name: str) -> Path:
        """Where to write output file ``name`` now (inside the staging folder)."""
        if not self.overwrite and (self.out_dir / name).exists():
            raise LocresError(
                f"{self.out_dir / name} exists and output.overwrite=false; "
                "choose another output.dir or set output.overwrite=true"
            )
        if name not in self.names:
            self.names.append(name)
        return self.tmp / name

    def commit(self) -> list[Path]:
        done = []
        for name in self.names:
            src = self.tmp / name
            if src.exists():
                os.replace(src, self.out_dir / name)
                done.append(self.out_dir / name)
        return done

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if exc_type is not None and self.created_dir:
            try:
                self.out_dir.rmdir()
            except OSError:
                pass
