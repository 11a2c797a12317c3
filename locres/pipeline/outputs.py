"""Write: stage every output file and move it in place only when the whole run succeeded.

:class:`OutputStage` collects files in a hidden folder inside ``output.dir`` (nothing partial is left
on failure); :func:`write_method_outputs` writes one method's ``NAME.mrc`` (+ ``NAME_<key>.mrc`` extra
maps and a method-made ``NAME_mask.mrc``), ``NAME.json``, ``NAME.png`` and ``NAME.cxc`` from the pure
writers in :mod:`locres.report`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import locres
from locres.errors import LocresError
from locres.io.maps import write_map
from locres.pipeline.execute import Measured
from locres.pipeline.inputs import LoadedInputs
from locres.report import chimerax, directional, plots
from locres.report.summary import histogram, resolution_stats, to_json_bytes


@dataclass
class Options:
    """Output switches (``output.*`` in infer.yaml)."""

    plots: bool = True
    chimerax: bool = True
    overwrite: bool = True


@dataclass
class RunRecord:
    """What one method produced: its summary (NAME.json) and the arrays kept for comparisons."""

    summary: dict
    resolution_a: np.ndarray
    mask: np.ndarray | None
    warnings: list[str] = field(default_factory=list)


PARTIAL = ".locres-partial-"


def partial_prefix() -> str:
    """Name prefix of a staging folder: host and process, so a dead run's leftovers can be told apart."""
    import socket

    return f"{PARTIAL}{socket.gethostname()}-{os.getpid()}-"


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
        self.tmp = Path(tempfile.mkdtemp(prefix=partial_prefix(), dir=self.out_dir))
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


def write_method_outputs(
    stage: OutputStage,
    name: str,
    measured: Measured,
    loaded: LoadedInputs,
    params: Mapping[str, Any],
    map_for_cxc: str | None,
    options: Options,
    advisories: list[dict] | None = None,
) -> RunRecord:
    """Write NAME.mrc (+ NAME_<key>.mrc, NAME_mask.mrc), NAME.json, NAME.png and NAME.cxc.

    ``advisories`` (``{"code", "message"}`` dicts from the input check) go into NAME.json as they are.
    """
    result = measured.value
    geometry = loaded.reference.geometry
    res = result.resolution_a
    files = [f"{name}.mrc"]
    write_map(stage.path(f"{name}.mrc"), res, geometry, label=f"locres {name} local resolution (A)")
    for key, arr in (result.extra_maps or {}).items():
        arr = np.asarray(arr, dtype=np.float32)
        if arr.shape != res.shape:
            raise LocresError(f"method {name}: extra map '{key}' has shape {arr.shape}, not the input grid")
        write_map(stage.path(f"{name}_{key}.mrc"), arr, geometry, label=f"locres {name} {key}")
        files.append(f"{name}_{key}.mrc")
    mask = loaded.inputs.mask
    mask_source = "input" if mask is not None else "none"
    if mask is None and result.mask is not None:
        mask = np.asarray(result.mask, dtype=bool)
        mask_source = "method"
        write_map(
            stage.path(f"{name}_mask.mrc"), mask.astype(np.float32), geometry, label=f"locres {name} mask"
        )
        files.append(f"{name}_mask.mrc")
    stats = resolution_stats(res, mask)
    warnings = list(result.info.get("warnings", [])) if isinstance(result.info, dict) else []
    if stats["voxels_estimated"] == 0:
        warnings.append("no voxel was estimated")
    range_a = (
        (stats["percentiles_a"]["5"], stats["percentiles_a"]["95"]) if stats["voxels_estimated"] else (0, 1)
    )
    if options.plots:
        png = plots.plot_local_resolution(
            loaded.inputs.map, res, mask, title=f"{name}: local resolution", median_a=stats["median_a"]
        )
        stage.path(f"{name}.png").write_bytes(png)
        files.append(f"{name}.png")
        for key, fig in method_figures(name, result.info).items():
            stage.path(f"{name}_{key}.png").write_bytes(fig)
            files.append(f"{name}_{key}.png")
    if options.chimerax and map_for_cxc is not None:
        level = chimerax.surface_level(loaded.inputs.map, mask)
        text = chimerax.chimerax_script(
            map_for_cxc, f"{name}.mrc", level, range_a, title=f"{name} local resolution"
        )
        stage.path(f"{name}.cxc").write_text(text)
        files.append(f"{name}.cxc")
    summary = {
        "method": name,
        "locres_version": locres.__version__,
        "inputs": dict(loaded.paths),
        "mask_source": mask_source,
        "parameters": dict(params),
        "voxel_size_a": loaded.inputs.voxel_size_a,
        "shape_zyx": list(loaded.inputs.shape_zyx),
        "device": loaded.inputs.device,
        **stats,
        "histogram": histogram(res, mask),
        "seconds": round(measured.seconds, 3),
        "peak_memory_mb": round(measured.peak_memory_mb, 1),
        "peak_gpu_memory_mb": measured.peak_gpu_memory_mb,
        "outputs": files + [f"{name}.json"],
        "warnings": warnings,
        "advisories": list(advisories or []),
        "info": result.info,
        "command": " ".join(sys.argv),
    }
    stage.path(f"{name}.json").write_bytes(to_json_bytes(summary))
    return RunRecord(summary=summary, resolution_a=res, mask=mask, warnings=warnings)


def method_figures(name: str, info: Mapping[str, Any] | None) -> dict[str, bytes]:
    """Figures a method has beyond NAME.png, as {key: PNG bytes} (written as NAME_<key>.png).

    dfsc: ``dfsc_directional.png``, the histogram of directional resolutions, the resolution per cone
    direction and the mean directional FSC beside the global one.
    """
    if name == "dfsc" and isinstance(info, Mapping) and "resolution_per_direction_a" in info:
        return {"directional": directional.plot_dfsc(info)}
    return {}


def write_monodir_with_dfsc(stage: OutputStage, monodir: RunRecord, dfsc: RunRecord,
                            anisotropy_a: np.ndarray | None, options: Options) -> dict:
    """``method=all`` with half maps: MonoDir's report beside the directional FSC.

    Writes ``monodir_dfsc.png`` (MonoDir's anisotropy next to the dfsc's directional figures) and
    rewrites the staged ``monodir.json`` with a ``dfsc`` section (global and directional resolutions,
    sphericity, spreads) and the figure among its outputs. Returns that section.
    """
    section = directional.monodir_dfsc_summary(monodir.summary.get("info", {}), dfsc.summary["info"])
    if options.plots:
        aniso = np.zeros(0) if anisotropy_a is None else np.asarray(anisotropy_a)
        est = monodir.resolution_a > 0
        if monodir.mask is not None:
            est &= monodir.mask
        png = directional.plot_monodir_with_dfsc(monodir.summary.get("info", {}),
                                                 aniso[est] if aniso.shape == est.shape else aniso.ravel(),
                                                 dfsc.summary["info"])
        stage.path("monodir_dfsc.png").write_bytes(png)
        monodir.summary["outputs"] = [*monodir.summary["outputs"], "monodir_dfsc.png"]
    else:
        section.pop("figure")
    monodir.summary["dfsc"] = section
    stage.path("monodir.json").write_bytes(to_json_bytes(monodir.summary))
    return section


def map_for_cxc(stage: OutputStage, loaded: LoadedInputs) -> str:
    """Path (relative to output.dir) of the map the .cxc opens; half-map runs get average_map.mrc."""
    if loaded.paths.get("map"):
        return chimerax.relative_path(loaded.paths["map"], stage.out_dir)
    write_map(
        stage.path("average_map.mrc"),
        loaded.inputs.map,
        loaded.reference.geometry,
        label="locres half-map average",
    )
    return "average_map.mrc"


