"""The whole benchmark behind ``bench.py``: ground truth, sharpening study, real maps, and the write-up.

:func:`run_bench` takes plain Python values (``bench.py`` turns its Hydra config into them) and writes
to ``output_dir``: ``results.json`` (every number, the machine and the date), ``table.md`` (the README
results section), ``pred_vs_true.png``, ``error_maps.png`` and ``sharpening.png``.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

from locres.bench import plots, tables
from locres.bench.common import machine_info, variants_from_config
from locres.bench.groundtruth import cases_from_config, run_groundtruth, test_entries
from locres.bench.realmaps import run_realmaps
from locres.bench.sharpening import run_sharpening
from locres.errors import LocresError
from locres.io.atomic import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def select_models(models_dir: str, models: list[str] | None, n_models: int):
    """The test-split models to use: the listed entry ids, or the first ``n_models`` of the split."""
    entries, source = test_entries(models_dir)
    if models:
        wanted = [m.lower() for m in models]
        by_id = dict(entries)
        missing = [m for m in wanted if m not in by_id]
        if missing:
            raise LocresError(f"models {missing} are not in the test split ({source}) of {models_dir}: "
                              f"choose among {sorted(by_id)}")
        entries = [(m, by_id[m]) for m in wanted]
    else:
        entries = entries[:n_models]
    return entries, source


def run_bench(output_dir: str, variants: list[dict], groundtruth: dict, sharpening: dict, realmaps: dict,
              checkpoints: list[str] | None = None, device: str = "cpu", command: str = "",
              learned_label: str = "deepres") -> dict:
    """Run the configured parts of the benchmark and write the results (see the module docstring)."""
    t_start = time.perf_counter()
    out_dir = Path(output_dir)
    vars_ = variants_from_config(variants, checkpoints)
    if not vars_:
        raise LocresError("no method variants configured: set variants in configs/bench.yaml")
    results = {"command": command, "machine": machine_info(), "device": device,
               "note": "machine shared with other work while this ran; seconds are wall time",
               "variants": [{"label": v.label, "method": v.method, "input": v.input, "params": v.params,
                             "output": v.output, "parts": list(v.parts), "max_cases": v.max_cases}
                            for v in vars_]}
    md = []
    specs = []
    if groundtruth.get("enabled", True) or sharpening.get("enabled", False):
        gt = dict(groundtruth)
        models, split_source = select_models(gt.pop("models_dir"), gt.pop("models", None),
                                             gt.pop("n_models", 2))
        gt.pop("enabled", None)
        error_map_cases = gt.pop("error_map_cases", 1)
        specs = cases_from_config(models, cases=gt.pop("cases", None), grid=gt.pop("grid", None),
                                  cross_models=gt.pop("cross_models", False), **gt)
        results["models"] = {"entries": [m for m, _ in models], "split": split_source}
    out_dir.mkdir(parents=True, exist_ok=True)  # only once the inputs are known to be there
    if groundtruth.get("enabled", True):
        t0 = time.perf_counter()
        gt_res = run_groundtruth(specs, [v for v in vars_ if "groundtruth" in v.parts], device,
                                 error_map_cases=error_map_cases)
        results["groundtruth"] = {"cases": gt_res["cases"], "summary": gt_res["summary"],
                                  "equal_coverage": gt_res["equal_coverage"],
                                  "seconds": time.perf_counter() - t0}
        plots.plot_pred_vs_true(gt_res["_pooled"], out_dir / "pred_vs_true.png")
        plots.plot_error_maps(gt_res["_slices"], out_dir / "error_maps.png")
        n_ok = sum(1 for c in gt_res["cases"] if "error" not in c)
        md += ["### Phantoms with known local resolution\n",
               f"{n_ok} phantom case{'s' if n_ok != 1 else ''} from test-split models "
               f"({', '.join(results['models']['entries'])}; split: {results['models']['split']}); "
               "single-map variants get the noisy map, half-map variants the two half maps; every variant "
               "gets the phantom's mask. MAE and bias (median of estimate - truth) over estimated mask "
               "voxels; coverage = estimated fraction of the mask; s / case = median wall seconds; peak MB = "
               "largest rise of resident memory during a run.\n",
               tables.overview_table(gt_res["summary"]), "\n**Goal for the learned model**\n",
               tables.goal_assessment(gt_res["summary"], learned_label),
               *(["\n**Single map and half maps at equal coverage** (each scored over the mask voxels "
                  "both modes estimated)\n", tables.equal_coverage_table(gt_res["equal_coverage"])]
                 if gt_res["equal_coverage"] else []),
               "\n**Per true-resolution bin** (seconds and memory: cases whose median truth is in the bin)\n",
               tables.per_bin_table(gt_res["summary"]),
               "\n![estimated vs true](pred_vs_true.png)\n\n![error maps](error_maps.png)\n"]
    if sharpening.get("enabled", False) and specs:
        t0 = time.perf_counter()
        labels = sharpening.get("variants")
        sv = [v for v in vars_ if (not labels or v.label in labels) and "sharpening" in v.parts]
        sh_specs = specs[: int(sharpening.get("n_cases", 1))]
        study = run_sharpening(sh_specs, sv, sharpening.get("b_factors_a2", [-100, -50, 0, 50, 100]), device)
        study["seconds"] = time.perf_counter() - t0
        results["sharpening"] = study
        plots.plot_sharpening(study, out_dir / "sharpening.png")
        md += ["### Sharpening study\n",
               f"Median estimate (A) in the mask of {', '.join(study['cases'])} after global B-factor "
               "sharpening (B > 0 sharpens, B < 0 blurs); the truth does not move. `-`: nothing estimated or "
               "failed.\n",
               tables.sharpening_table(study), "\n![sharpening](sharpening.png)\n"]
    if realmaps.get("enabled", False):
        t0 = time.perf_counter()
        rm = run_realmaps(list(realmaps.get("maps", [])), [v for v in vars_ if "realmaps" in v.parts], device)
        rm["seconds"] = time.perf_counter() - t0
        results["realmaps"] = rm
        md += ["### Real maps with fitted models\n",
               "Single-map variants only (no half maps deposited). The yardstick, modelfsc: the local "
               "model-map FSC (0.5) inside the model's 2.5 A footprint (the model simulated on the map's "
               "grid at B = 30 A^2); each method's MAE, bias (median of estimate - modelfsc) and Spearman "
               "against it over the voxels both estimated. Spearman vs B-factor: over atoms, the "
               "local resolution at each atom's voxel against its B-factor (positive = flexible parts read "
               "coarser). Below cap: MAE and Spearman against modelfsc over the voxels where it found a "
               "crossing (at its coarsest shell it is only a bound: map and model disagree even there, as at "
               "a partial model's ends beside unmodelled density). The matrix: Spearman between methods "
               "over mask voxels both estimated.\n",
               tables.realmaps_tables(rm)]
    results["seconds_total"] = time.perf_counter() - t_start
    m = results["machine"]
    header = [f"## Results: `{command or 'python bench.py'}`\n",
              f"Run on {m['date_utc']}: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} "
              f"({m['torch_threads']} threads), device {device}; the machine was shared with other work. "
              f"Whole run: {results['seconds_total'] / 60:.1f} min.\n"]
    atomic_write_text(out_dir / "table.md", "\n".join(header + md))
    atomic_write_json(out_dir / "results.json", _jsonable(results))
    log.info("wrote %s and %s (%.1f min)", out_dir / "table.md", out_dir / "results.json",
             results["seconds_total"] / 60)
    return results
