"""The body of ``infer.py``: from a composed config to the files in ``output.dir``.

:func:`infer_from_config` reads the Hydra config (the only place here that does), then everything else
takes plain arguments: :func:`run_infer` runs one method, several (``method=all``) or the sharpening
check and writes every output through :class:`~locres.pipeline.outputs.OutputStage` (nothing partial is
left on failure). It logs and returns; the summary table it returns under ``"table"`` is printed by the
entry point. The demo (no input given) runs the bundled DeepRes checkpoint on the bundled EMD-3488 map
and mask; until that checkpoint exists it falls back to the best single-map method installed and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import locres
import locres.methods as registry
from locres.core.devices import resolve_device
from locres.errors import LocresError
from locres.pipeline.advise import method_advisories
from locres.pipeline.execute import check_parameters, load_method, run_method
from locres.pipeline.inputs import LoadedInputs, load_inputs
from locres.pipeline.outputs import (
    Options,
    OutputStage,
    RunRecord,
    map_for_cxc,
    write_method_outputs,
    write_monodir_with_dfsc,
)
from locres.report import chimerax, plots
from locres.report.compare import compare_maps
from locres.report.sharpening import plot_sharpening, sharpening_check
from locres.report.summary import summary_table, to_json_bytes

log = logging.getLogger(__name__)

PACKAGE = Path(locres.__file__).resolve().parent
DEMO_MAP = PACKAGE / "examples" / "emd_3488" / "emd_3488.mrc"
DEMO_MASK = PACKAGE / "examples" / "emd_3488" / "emd_3488_contour_mask.mrc"
DEMO_CHECKPOINT = PACKAGE / "weights" / "deepres2_map.pt"  # the single-map DeepRes 2 model
APPEARANCE_CHECKPOINT = PACKAGE / "weights" / "deepres_appearance.pt"  # what the sharpening check uses
DEMO_FALLBACKS = ("monores", "resmap", "blocres")  # single-map methods, best first
DEFAULT_OUT = "locres_out"
DEMO_OUT = "demo_out"


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
    """Run ``infer.py`` for a composed config (see configs/infer.yaml); returns the run's record.

    ``input.maps`` runs every map it names, each into ``output.dir/NAME/``; under ``infer.py -m`` a job
    with ``input.map`` does the same for its map (see :mod:`locres.pipeline.batch`).
    """
    from omegaconf import OmegaConf

    conf = OmegaConf.to_container(cfg, resolve=True)
    inp, out = conf.get("input", {}) or {}, conf.get("output", {}) or {}
    method_cfg = dict(conf.get("method") or {})
    name = str(method_cfg.pop("name", "deepres"))
    maps = inp.pop("maps", None)
    exclude = inp.pop("exclude", None) or []
    if maps and any(inp.get(k) for k in ("map", "half1", "half2")):
        raise LocresError("give input.maps (many maps) or input.map / input.half1+half2 (one), not both")
    demo = not maps and not any(inp.get(k) for k in ("map", "half1", "half2"))
    out_dir = out.get("dir") or (DEMO_OUT if demo else DEFAULT_OUT)
    if demo:
        if inp.get("reference_map"):
            raise LocresError("input.reference_map needs input.map (the sharpened map) as well")
        inp["map"] = str(DEMO_MAP)
        inp["mask"] = inp.get("mask") or str(DEMO_MASK)
        name, method_cfg = demo_method(name, method_cfg, config_dir)
        log.info("demo: %s on the bundled EMD-3488 map -> %s/", name, out_dir)
    kwargs = _run_kwargs(name, method_cfg, inp, out, conf, config_dir)
    skip_done = bool(out.get("skip_done", True))
    if maps:
        from locres.pipeline import batch

        paths = batch.expand_maps(maps, exclude)
        log.info("batch: %d maps -> %s/<map>/", len(paths), out_dir)
        batch.run_batch(paths, name, out_dir, lambda p, folder: run_infer(
            **{**kwargs, "map_path": str(p)}, out_dir=folder), skip_done=skip_done)
        return {"out_dir": str(out_dir), "table": batch.table_text(batch.collect_rows(out_dir), out_dir)}
    if _hydra_multirun() and not demo and inp.get("map"):
        from locres.pipeline import batch

        row = batch.run_one_map(inp["map"], name, out_dir, lambda folder: run_infer(**kwargs, out_dir=folder),
                                skip_done=skip_done)
        return {"out_dir": row["folder"], "table": f"{row['map']}: {name} {row['status']} ({row['folder']}/)"}
    return run_infer(**kwargs, out_dir=out_dir)


def _hydra_multirun() -> bool:
    """True inside a job of ``infer.py -m`` (Hydra's multirun mode)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # noqa: BLE001 - no Hydra run around this call
        return False


def _run_kwargs(name: str, method_cfg: dict, inp: dict, out: dict, conf: dict, config_dir) -> dict:
    """The keyword arguments of :func:`run_infer` (all but ``out_dir``) from the config's parts."""
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
    return dict(
        method=name,
        params=params,
        map_path=inp.get("map"),
        half1_path=inp.get("half1"),
        half2_path=inp.get("half2"),
        mask_path=inp.get("mask"),
        model_path=inp.get("model"),
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


def _load_all(map_path, half1_path, half2_path, mask_path, voxel_size_a, device, reference_map,
              model_path=None):
    """The checked inputs and, for the sharpening check, the checked reference map (else None)."""
    loaded = load_inputs(map_path, half1_path, half2_path, mask_path, voxel_size_a, resolve_device(device),
                         model_path=model_path)
    loaded.paths["voxel_size"] = voxel_size_a
    if reference_map is None:
        return loaded, None
    reference = load_inputs(reference_map, None, None, mask_path, voxel_size_a, loaded.inputs.device)
    if reference.inputs.shape_zyx != loaded.inputs.shape_zyx or not np.isclose(
        reference.inputs.voxel_size_a, loaded.inputs.voxel_size_a, rtol=1e-3
    ):
        raise LocresError("input.reference_map must be on the same grid as input.map (shape and voxel size)")
    return loaded, reference


def _method_names(method: str, loaded: LoadedInputs, only, skip, broken, skipped: dict) -> list[str]:
    """The methods to run (``method=all``: those the inputs allow, less ``skip`` and broken configs)."""
    if method != "all":
        return [method]
    names = [n for n in (only or registry.methods_for_inputs(loaded.inputs)) if n not in set(skip)]
    unknown = [n for n in names if n not in registry.METHOD_NAMES]
    if unknown:
        raise LocresError(f"unknown method(s) {', '.join(unknown)} in method.methods")
    for n, why in (broken or {}).items():
        if n in names:
            log.warning("method=all: skipping %s (%s)", n, why)
            skipped[n] = why
            names.remove(n)
    return names


def _check_parameters_first(names: Sequence[str], params: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse a parameter a method does not take before anything runs (``method=all`` included)."""
    for n in names:
        try:
            module = load_method(n)
        except LocresError:  # not installed: method=all skips it later, with the reason
            continue
        check_parameters(n, module, params.get(n, {}))


def _run_reference(stage, name, reference, loaded, params, reference_map, options) -> RunRecord:
    """Sharpening check: the method on the unsharpened reference map (its mask is then shared)."""
    ref_run = run_method(name, reference, params)
    ref_mask = reference.inputs.mask if reference.inputs.mask is not None else ref_run.value.mask
    if loaded.inputs.mask is None and ref_mask is not None:
        loaded.inputs.mask = np.asarray(ref_mask, dtype=bool)  # judge both maps on one mask
    ref_cxc = chimerax.relative_path(reference_map, stage.out_dir) if options.chimerax else None
    return write_method_outputs(stage, f"{name}_reference", ref_run, reference, params, ref_cxc, options)


def _advisory_lines(advisories: Mapping[str, Sequence]) -> list[str]:
    """One line per distinct advisory, naming the methods it concerns."""
    seen: dict[str, list[str]] = {}
    for name, found in advisories.items():
        for a in found:
            seen.setdefault(a.message, []).append(name)
    every = set(advisories)
    return [msg if set(names) == every else f"[{', '.join(names)}] {msg}" for msg, names in seen.items()]


def _write_comparison(stage, records: dict, skipped: dict, loaded: LoadedInputs, options,
                      advisories: Mapping[str, Sequence] | None = None) -> dict:
    """compare.json (+ compare.png, the advisories on top) of every method that ran under ``method=all``."""
    if not records:
        raise LocresError(
            "method=all: every method failed or is missing: "
            + "; ".join(f"{k}: {v}" for k, v in skipped.items())
        )
    maps = {n: r.resolution_a for n, r in records.items()}
    comparison = compare_maps(maps, loaded.inputs.mask)
    comparison["skipped"] = skipped
    advisories = advisories or {}
    comparison["advisories"] = {n: [a.to_dict() for a in found] for n, found in advisories.items()}
    stage.path("compare.json").write_bytes(to_json_bytes(comparison))
    if options.plots:
        png = plots.plot_comparison(loaded.inputs.map, maps, loaded.inputs.mask,
                                    notes=_advisory_lines(advisories))
        stage.path("compare.png").write_bytes(png)
    return comparison


def _write_sharpening(stage, rec: RunRecord, rec_ref: RunRecord, method: str, map_path, reference_map,
                      global_resolution_a, tolerance_a, options) -> dict:
    """sharpening.json (+ sharpening.png): the sharpened map's estimate against the reference's."""
    common_mask = rec.mask if rec.mask is not None else rec_ref.mask
    check = sharpening_check(rec.resolution_a, rec_ref.resolution_a, common_mask, global_resolution_a,
                             tolerance_a)
    check.update(sharpened_map=map_path, original_map=reference_map, method=method)
    stage.path("sharpening.json").write_bytes(to_json_bytes(check))
    if options.plots:
        stage.path("sharpening.png").write_bytes(
            plot_sharpening(rec.resolution_a, rec_ref.resolution_a, check, common_mask))
    return check


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
    model_path: str | None = None,
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
    under ``method=all``; ``model_path`` is a fitted atomic model (needed by ``modelfsc``, which
    ``method=all`` then includes). Returns {"summaries": [...], "skipped": {...}, "compare": {...} or None,
    "sharpening": {...} or None, "out_dir": str, "table": str}; ``table`` is the text the entry point
    prints (the summary table, the sharpening verdict and where the outputs are).
    """
    options = options or Options()
    if method != "all" and method not in registry.METHOD_NAMES:
        raise LocresError(
            f"unknown method '{method}': choose one of {', '.join(registry.METHOD_NAMES)} or all"
        )
    if reference_map is not None and method == "all":
        raise LocresError("the sharpening check (input.reference_map) runs one method; use method=deepres")
    loaded, reference = _load_all(map_path, half1_path, half2_path, mask_path, voxel_size_a, device,
                                  reference_map, model_path)
    records: dict[str, RunRecord] = {}
    skipped: dict[str, str] = {}
    advisories: dict[str, list] = {}
    names = _method_names(method, loaded, only, skip, broken, skipped)
    _check_parameters_first(names, params)
    if reference is not None and names[0] == "deepres" and not params.get("deepres", {}).get("checkpoint"):
        # the check measures how far the estimate moves with sharpening: only the appearance model does
        deepres_params = {**params.get("deepres", {}), "checkpoint": str(APPEARANCE_CHECKPOINT)}
        params = {**params, "deepres": deepres_params}
    sharp_check = comparison = rec_ref = None
    with OutputStage(out_dir, overwrite=options.overwrite) as stage:
        map_rel = map_for_cxc(stage, loaded) if options.chimerax else None
        if reference is not None:
            rec_ref = _run_reference(stage, names[0], reference, loaded, params.get(names[0], {}),
                                     reference_map, options)
        cache: dict = {}
        anisotropy: dict = {}
        for name in names:
            try:
                advisories[name] = method_advisories(name, loaded, params.get(name, {}), cache)
                measured = run_method(name, loaded, params.get(name, {}))
                if name == "monodir" and measured.value.extra_maps:
                    anisotropy["monodir"] = measured.value.extra_maps.get("anisotropy")
                records[name] = write_method_outputs(
                    stage, name, measured, loaded, params.get(name, {}), map_rel, options,
                    advisories=[a.to_dict() for a in advisories[name]],
                )
            except Exception as exc:
                if method != "all":
                    raise
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.warning("method=all: skipping %s (%s)", name, why)
                skipped[name] = why
        if method == "all":
            if "monodir" in records and "dfsc" in records:
                write_monodir_with_dfsc(stage, records["monodir"], records["dfsc"],
                                        anisotropy.get("monodir"), options)
            comparison = _write_comparison(stage, records, skipped, loaded, options, advisories)
        if rec_ref is not None:
            sharp_check = _write_sharpening(stage, records[names[0]], rec_ref, names[0], map_path,
                                            reference_map, global_resolution_a, tolerance_a, options)
    summaries = [r.summary for r in records.values()] + ([rec_ref.summary] if rec_ref is not None else [])
    table = [summary_table(summaries, skipped)]
    if sharp_check is not None:
        table.append(f"sharpening check: {sharp_check['verdict']} ({sharp_check['reason']})")
    table.append(f"outputs in {Path(out_dir)}/")
    return {"summaries": summaries, "skipped": skipped, "compare": comparison, "sharpening": sharp_check,
            "out_dir": str(out_dir), "table": "\n".join(table)}
