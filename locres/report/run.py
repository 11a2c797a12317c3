"""The body of ``infer.py``: from a composed config to the files in ``output.dir``.

:func:`infer_from_config` reads the Hydra config (the only place here that does), then everything else
takes plain arguments: :func:`run_infer` runs one method, several (``method=all``) or the sharpening
check and writes every output through :class:`locres.pipeline.OutputStage` (nothing partial is left on
failure). The demo (no input given) runs the bundled DeepRes checkpoint on the bundled EMD-3488 map and
mask; until that checkpoint exists it falls back to the best single-map method installed and says so.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import locres
import locres.methods as registry
from locres.errors import LocresError
from locres.io.maps import write_map
from locres.pipeline import LoadedInputs, Measured, OutputStage, load_inputs, resolve_device, run_method
from locres.report import chimerax, plots
from locres.report.compare import compare_maps
from locres.report.sharpening import plot_sharpening, sharpening_check
from locres.report.summary import histogram, resolution_stats, summary_table, to_json_bytes

log = logging.getLogger(__name__)

PACKAGE = Path(locres.__file__).resolve().parent
DEMO_MAP = PACKAGE / "examples" / "emd_3488" / "emd_3488.mrc"
DEMO_MASK = PACKAGE / "examples" / "emd_3488" / "emd_3488_contour_mask.mrc"
DEMO_CHECKPOINT = PACKAGE / "weights" / "deepres_default.pt"
DEMO_FALLBACKS = ("monores", "resmap", "blocres")  # single-map methods, best first
DEFAULT_OUT = "locres_out"
DEMO_OUT = "demo_out"


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


# ------------------------------------------------------------------------------------------ configs
def method_defaults(name: str, config_dir: str | Path | None) -> dict:
    """Default parameters of method ``name`` from ``configs/method/NAME.yaml`` (without ``name``)."""
    if config_dir is None:
        return {}
    path = Path(config_dir) / "method" / f"{name}.yaml"
    if not path.exists():
        return {}
    from omegaconf import OmegaConf

    params = OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {}
    params.pop("name", None)
    params.pop("defaults", None)
    return params


def deepres_available(params: Mapping[str, Any]) -> bool:
    """True when ``locres.methods.deepres`` imports and a checkpoint is set or bundled."""
    try:
        import locres.methods.deepres  # noqa: F401
    except ImportError:
        return False
    return bool(params.get("checkpoint")) or DEMO_CHECKPOINT.exists()


def demo_method(name: str, params: dict, config_dir: str | Path | None) -> tuple[str, dict]:
    """The method the demo runs: ``name`` unless it is DeepRes without a checkpoint yet (then a fallback)."""
    if name != "deepres" or deepres_available(params):
        return name, params
    for fallback in DEMO_FALLBACKS:
        try:
            mod = __import__(f"locres.methods.{fallback}", fromlist=["run"])
        except ImportError:
            continue
        if getattr(mod, "INPUTS", "map") != "halves":
            log.warning(
                "demo: the bundled DeepRes checkpoint %s is not there yet; running %s instead",
                DEMO_CHECKPOINT.relative_to(PACKAGE.parent),
                fallback,
            )
            return fallback, method_defaults(fallback, config_dir)
    raise LocresError(
        "the demo needs the bundled DeepRes checkpoint or a single-map method "
        f"({', '.join(DEMO_FALLBACKS)}); none is installed yet"
    )


def infer_from_config(cfg: Any, config_dir: str | Path | None = None) -> dict:
    """Run ``infer.py`` for a composed config (see configs/infer.yaml); returns the run's record."""
    from omegaconf import OmegaConf

    conf = OmegaConf.to_container(cfg, resolve=True)
    inp, out = conf.get("input", {}) or {}, conf.get("output", {}) or {}
    method_cfg = dict(conf.get("method") or {})
    name = str(method_cfg.pop("name", "deepres"))
    demo = not any(inp.get(k) for k in ("map", "half1", "half2"))
    out_dir = out.get("dir") or (DEMO_OUT if demo else DEFAULT_OUT)
    if demo:
        if inp.get("reference_map"):
            raise LocresError("input.reference_map needs input.map (the sharpened map) as well")
        inp["map"] = str(DEMO_MAP)
        inp["mask"] = inp.get("mask") or str(DEMO_MASK)
        name, method_cfg = demo_method(name, method_cfg, config_dir)
        log.info("demo: %s on the bundled EMD-3488 map -> %s/", name, out_dir)
    config_errors: dict[str, str] = {}
    if name == "all":
        overrides = method_cfg.get("params") or {}
        params = {}
        for n in registry.METHOD_NAMES:
            try:
                params[n] = {**method_defaults(n, config_dir), **overrides.get(n, {})}
            except Exception as exc:  # a broken configs/method/NAME.yaml skips that method only
                config_errors[n] = f"configs/method/{n}.yaml cannot be read: {str(exc).splitlines()[0]}"
        extra = {"methods": method_cfg.get("methods"), "skip": method_cfg.get("skip") or []}
    else:
        params, extra = {name: method_cfg}, {}
    sharp = conf.get("sharpening") or {}
    return run_infer(
        method=name,
        params=params,
        out_dir=out_dir,
        map_path=inp.get("map"),
        half1_path=inp.get("half1"),
        half2_path=inp.get("half2"),
        mask_path=inp.get("mask"),
        voxel_size_a=inp.get("voxel_size"),
        device=conf.get("device", "auto"),
        reference_map=inp.get("reference_map"),
        global_resolution_a=sharp.get("global_resolution_a"),
        tolerance_a=float(sharp.get("tolerance_a", 0.3)),
        options=Options(
            plots=bool(out.get("plots", True)),
            chimerax=bool(out.get("chimerax", True)),
            overwrite=bool(out.get("overwrite", True)),
        ),
        only=extra.get("methods"),
        skip=extra.get("skip", ()),
        broken=config_errors,
    )


# ------------------------------------------------------------------------------------------ reports
def write_method_outputs(
    stage: OutputStage,
    name: str,
    measured: Measured,
    loaded: LoadedInputs,
    params: Mapping[str, Any],
    map_for_cxc: str | None,
    options: Options,
) -> RunRecord:
    """Write NAME.mrc (+ NAME_<key>.mrc, NAME_mask.mrc), NAME.json, NAME.png and NAME.cxc."""
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
        "info": result.info,
        "command": " ".join(sys.argv),
    }
    stage.path(f"{name}.json").write_bytes(to_json_bytes(summary))
    return RunRecord(summary=summary, resolution_a=res, mask=mask, warnings=warnings)


def _map_for_cxc(stage: OutputStage, loaded: LoadedInputs) -> str:
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


def run_infer(
    method: str,
    params: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
    map_path: str | None = None,
    half1_path: str | None = None,
    half2_path: str | None = None,
    mask_path: str | None = None,
    voxel_size_a: float | None = None,
    device: str = "auto",
    reference_map: str | None = None,
    global_resolution_a: float | None = None,
    tolerance_a: float = 0.3,
    options: Options | None = None,
    only: Sequence[str] | None = None,
    skip: Sequence[str] = (),
    broken: Mapping[str, str] | None = None,
) -> dict:
    """Run ``method`` (a method name or ``"all"``) on the inputs and write every output to ``out_dir``.

    ``params`` maps method names to their parameters; ``broken`` names methods to skip (with the reason)
    under ``method=all``. Returns {"summaries": [...], "skipped": {...},
    "compare": {...} or None, "sharpening": {...} or None, "out_dir": str}.
    """
    options = options or Options()
    if method != "all" and method not in registry.METHOD_NAMES:
        raise LocresError(
            f"unknown method '{method}': choose one of {', '.join(registry.METHOD_NAMES)} or all"
        )
    if reference_map is not None and method == "all":
        raise LocresError("the sharpening check (input.reference_map) runs one method; use method=deepres")
    loaded = load_inputs(map_path, half1_path, half2_path, mask_path, voxel_size_a, resolve_device(device))
    loaded.paths["voxel_size"] = voxel_size_a
    reference = None
    if reference_map is not None:
        reference = load_inputs(reference_map, None, None, mask_path, voxel_size_a, loaded.inputs.device)
        if reference.inputs.shape_zyx != loaded.inputs.shape_zyx or not np.isclose(
            reference.inputs.voxel_size_a, loaded.inputs.voxel_size_a, rtol=1e-3
        ):
            raise LocresError(
                "input.reference_map must be on the same grid as input.map (shape and voxel size)"
            )
    if method == "all":
        names = [n for n in (only or registry.methods_for_inputs(loaded.inputs)) if n not in set(skip)]
        unknown = [n for n in names if n not in registry.METHOD_NAMES]
        if unknown:
            raise LocresError(f"unknown method(s) {', '.join(unknown)} in method.methods")
    else:
        names = [method]
    records: dict[str, RunRecord] = {}
    skipped: dict[str, str] = {}
    for n, why in (broken or {}).items():
        if n in names:
            log.warning("method=all: skipping %s (%s)", n, why)
            skipped[n] = why
            names.remove(n)
    sharp_check = None
    comparison = None
    with OutputStage(out_dir, overwrite=options.overwrite) as stage:
        map_rel = _map_for_cxc(stage, loaded) if options.chimerax else None
        if reference is not None:
            name = names[0]
            ref_run = run_method(name, reference, params.get(name, {}))
            ref_mask = reference.inputs.mask if reference.inputs.mask is not None else ref_run.value.mask
            if loaded.inputs.mask is None and ref_mask is not None:
                loaded.inputs.mask = np.asarray(ref_mask, dtype=bool)  # judge both maps on one mask
            ref_cxc = chimerax.relative_path(reference_map, stage.out_dir) if options.chimerax else None
            rec_ref = write_method_outputs(
                stage, f"{name}_reference", ref_run, reference, params.get(name, {}), ref_cxc, options
            )
        for name in names:
            try:
                measured = run_method(name, loaded, params.get(name, {}))
                records[name] = write_method_outputs(
                    stage, name, measured, loaded, params.get(name, {}), map_rel, options
                )
            except Exception as exc:
                if method != "all":
                    raise
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.warning("method=all: skipping %s (%s)", name, why)
                skipped[name] = why
        if method == "all":
            if not records:
                raise LocresError(
                    "method=all: every method failed or is missing: "
                    + "; ".join(f"{k}: {v}" for k, v in skipped.items())
                )
            comparison = compare_maps({n: r.resolution_a for n, r in records.items()}, loaded.inputs.mask)
            comparison["skipped"] = skipped
            stage.path("compare.json").write_bytes(to_json_bytes(comparison))
            if options.plots and len(records) >= 1:
                png = plots.plot_comparison(
                    loaded.inputs.map, {n: r.resolution_a for n, r in records.items()}, loaded.inputs.mask
                )
                stage.path("compare.png").write_bytes(png)
        if reference is not None:
            rec = records[names[0]]
            common_mask = rec.mask if rec.mask is not None else rec_ref.mask
            sharp_check = sharpening_check(
                rec.resolution_a, rec_ref.resolution_a, common_mask, global_resolution_a, tolerance_a
            )
            sharp_check.update(sharpened_map=map_path, original_map=reference_map, method=names[0])
            stage.path("sharpening.json").write_bytes(to_json_bytes(sharp_check))
            if options.plots:
                stage.path("sharpening.png").write_bytes(
                    plot_sharpening(rec.resolution_a, rec_ref.resolution_a, sharp_check, common_mask)
                )
    summaries = [r.summary for r in records.values()]
    if reference is not None:
        summaries.append(rec_ref.summary)
    print(summary_table(summaries, skipped))  # the CLI's final table (stdout)
    if sharp_check is not None:
        print(f"sharpening check: {sharp_check['verdict']} ({sharp_check['reason']})")
    print(f"outputs in {Path(out_dir)}/")
    return {
        "summaries": summaries,
        "skipped": skipped,
        "compare": comparison,
        "sharpening": sharp_check,
        "out_dir": str(out_dir),
    }
