"""DeepRes 2 on held-out phantoms with the expected-local-FSC truth, beside the other estimators.

``python -m locres.bench.deepres2 --shards runs/training_set --out bench_results/deepres2``

Cases: training-like maps (:func:`locres.simulate.training_maps.make_training_example`) from the
*test-split* structures only (split by entry id), with fixed seeds: both degradation kinds (sharp-cut
ladder, B-factor envelope), SNR 0.5-5, voxel 0.6-2 A, one globally sharpened case (B = -100 A^2) and one
solvent-flattened case. Truth: the expected local half-map FSC at 0.143 (:mod:`locres.simulate.fsc_target`).
Single-map variants get the map, half-map variants the two halves, all get the molecular mask. Also:
the sharpening study (one phantom, global B from -100 to +100 A^2: the single-map median's movement)
and the interval calibration (fraction of true values inside the 10-90 % interval).
Writes ``phantoms.json``, ``sharpening.json`` and ``table.md`` under ``--out``. ``--split val`` makes the
same cases from the validation-split structures instead (to study a model's errors and choose between
models without looking at the test split; written to ``runs/deepres2_val`` unless ``--out`` says).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from locres.bench.groundtruth import error_metrics
from locres.data.dense import StructurePool
from locres.data.shards import read_manifests
from locres.data.splits import split_of
from locres.io.atomic import atomic_write_json
from locres.methods import MethodInputs, get_method
from locres.pipeline.execute import call_method
from locres.simulate.training_maps import TrainingMapRecipe, global_filter, make_training_example

log = logging.getLogger(__name__)

KINDS = ("cut", "envelope")
SNRS = (0.5, 1.0, 2.0, 5.0)
VOXELS_A = (0.6, 1.0, 1.4, 2.0)
PATTERNS = ("radial", "linear", "blobs")


def case_specs(n_cases: int = 24) -> list[dict]:
    """Fixed case list: kinds x SNRs x voxel sizes (cycled), the last two sharpened and flattened."""
    specs = []
    for i in range(n_cases):
        spec = {
            "name": f"case{i:02d}",
            "kind": KINDS[i % 2],
            "snr": SNRS[(i // 2) % 4],
            "voxel_size_a": VOXELS_A[(i // 8 + i) % 4],
            "pattern": PATTERNS[i % 3],
            "seed": 1000 + i,
            "global_bfactor_a2": 0.0,
            "flatten": False,
        }
        specs.append(spec)
    specs[-2].update(name=specs[-2]["name"] + "_sharpened", global_bfactor_a2=-100.0)
    specs[-1].update(name=specs[-1]["name"] + "_flattened", flatten=True)
    return specs


def case_recipe(spec: dict) -> TrainingMapRecipe:
    v = spec["voxel_size_a"]
    return TrainingMapRecipe(
        voxel_size_range_a=(v, v),
        box_size_range_a=(44.0, 64.0),
        max_box_voxels=80,
        structures_range=(1, 2),
        p_envelope=1.0 if spec["kind"] == "envelope" else 0.0,
        patterns=(spec["pattern"],),
        snr_range=(spec["snr"], spec["snr"]),
        p_coloured_noise=0.0,
        p_global_bfactor=1.0 if spec["global_bfactor_a2"] else 0.0,
        global_bfactor_range_a2=(spec["global_bfactor_a2"],) * 2,
        p_solvent_flatten=1.0 if spec["flatten"] else 0.0,
        p_flatten_halves=0.0,
        p_global_lowpass=0.0,
        scale_range=(1.0, 1.0),
    )


def make_case(pool: StructurePool, spec: dict, recipe: TrainingMapRecipe | None = None):
    """The phantom of one case: 1-2 structures drawn with the case's own seed, made with its recipe
    (``recipe`` replaces that, e.g. a uniform-field variant for studies); the same map wherever it is made."""
    rng = np.random.default_rng(spec["seed"])
    n = int(rng.integers(1, 3))
    return make_training_example(pool.draw(rng, n), recipe or case_recipe(spec), rng)


def test_pool(shards_dir: str, split: str = "test") -> tuple[StructurePool, list[str]]:
    """The structures of one split (``test`` for the figures; ``val`` to study a model's errors without
    looking at the test split)."""
    man = read_manifests(shards_dir)
    names = sorted(e for e in man["shards"] if split_of(e) == split)
    return StructurePool([Path(shards_dir) / man["shards"][e]["file"] for e in names]), names


VARIANTS = {  # name: (method, input kind, params)
    "deepres2_map": ("deepres", "map", {}),
    "deepres_appearance": ("deepres", "map", {"checkpoint": "APPEARANCE"}),
    "resmap_single": ("resmap", "map", {}),
    "monores_single": ("monores", "map", {}),
    "deepres2_halves": ("deepres", "halves", {}),
    "blocres": ("blocres", "halves", {"cutoff": 0.143}),  # the truth's threshold
    "torch_local_resolution": ("locres.bench.outside:torch_local_resolution", "halves", {}),
}


def run_variant(name: str, ex, mask: np.ndarray, checkpoints: dict[str, str] | None = None
                ) -> tuple[np.ndarray, dict]:
    """One variant on one case: (resolution map, info). ``checkpoints``: variant name -> a model file to
    run in place of its shipped one (candidates of a training run, judged on the validation split)."""
    method, kind, params = VARIANTS[name]
    params = dict(params)
    if checkpoints and name in checkpoints:
        params["checkpoint"] = str(checkpoints[name])
    if params.get("checkpoint") == "APPEARANCE":
        from locres.methods.deepres import APPEARANCE_CHECKPOINT

        params["checkpoint"] = str(APPEARANCE_CHECKPOINT)
    inputs = MethodInputs(
        voxel_size_a=ex.voxel_size_a,
        mask=mask,
        device="cpu",
        map=ex.map if kind == "map" else None,
        half1=ex.half1 if kind == "halves" else None,
        half2=ex.half2 if kind == "halves" else None,
    )
    if ":" in method:
        mod, fn = method.split(":")
        out = getattr(__import__(mod, fromlist=[fn]), fn)(inputs)
    else:
        out = call_method(method, get_method(method), inputs, params)
    return np.asarray(out.resolution_a), {"extra": out.extra_maps or {}, "info": out.info}


CACHEABLE = ("resmap_single", "monores_single", "blocres", "torch_local_resolution")  # no locres weights


def cached_run_variant(name: str, ex, mask: np.ndarray, checkpoints: dict[str, str] | None,
                       estimates_dir: Path | None) -> tuple[np.ndarray, dict, float]:
    """:func:`run_variant` and its wall seconds; with ``estimates_dir``, an analytical or outside
    variant's estimate is kept there under a hash of exactly what it was given (its maps, voxel size and
    mask), so a bench re-run with another truth (the maps unchanged) reuses it: torch-local-resolution
    takes over an hour for the test cases on 2 cores."""
    key = None
    if estimates_dir is not None and name in CACHEABLE:
        _, kind, _ = VARIANTS[name]
        h = hashlib.sha1(f"{name} {ex.voxel_size_a!r}".encode())
        for a in ((ex.map,) if kind == "map" else (ex.half1, ex.half2)) + (mask,):
            h.update(np.ascontiguousarray(a).tobytes())
        key = Path(estimates_dir) / name / f"{h.hexdigest()}.npz"
        if key.exists():
            with np.load(key) as z:
                return z["resolution_a"], {"extra": {}, "info": {"cached": str(key)}}, float(z["seconds"])
    t0 = time.perf_counter()
    res, out = run_variant(name, ex, mask, checkpoints)
    seconds = time.perf_counter() - t0
    if key is not None:
        key.parent.mkdir(parents=True, exist_ok=True)
        tmp = key.with_suffix(".tmp.npz")
        np.savez(tmp, resolution_a=np.asarray(res, np.float32), seconds=seconds)
        tmp.replace(key)
    return res, out, seconds


def interval_calibration(extra: dict, truth: np.ndarray, mask: np.ndarray) -> dict | None:
    if "lo" not in extra or "hi" not in extra:
        return None
    lo, hi, t = extra["lo"][mask], extra["hi"][mask], truth[mask]
    return {
        "inside_fraction": float(np.mean((t >= lo) & (t <= hi))),
        "median_width_a": float(np.median(hi - lo)),
    }


def run_phantoms(pool: StructurePool, variants: list[str], n_cases: int = 24,
                 only: list[str] | None = None, checkpoints: dict[str, str] | None = None,
                 estimates_dir: Path | None = None) -> dict:
    rows = []
    for spec in case_specs(n_cases):
        if only and spec["name"] not in only:
            continue
        ex = make_case(pool, spec)
        row = {
            **spec,
            "shape_zyx": list(ex.map.shape),
            "truth_median_a": float(np.median(ex.truth_a[ex.mask])),
            "results": {},
        }
        for name in variants:
            try:
                res, out, seconds = cached_run_variant(name, ex, ex.mask, checkpoints, estimates_dir)
            except Exception as exc:  # a variant that cannot run on a case is recorded, not fatal
                row["results"][name] = {"status": f"failed: {str(exc).splitlines()[0][:200]}"}
                continue
            m = error_metrics(res, ex.truth_a, ex.mask)
            cal = interval_calibration(out["extra"], ex.truth_a, ex.mask)
            m.update(status="ok", seconds=round(seconds, 2))
            if cal:
                m["interval"] = cal
            row["results"][name] = m
        log.info(
            "%s: %s",
            spec["name"],
            {k: round(v.get("mae_a", float("nan")), 2) for k, v in row["results"].items()},
        )
        rows.append(row)
    return {"cases": rows, "summary": summarise(rows, variants)}


def summarise(rows: list[dict], variants: list[str]) -> dict:
    out = {}
    for name in variants:
        ok = [r["results"][name] for r in rows if r["results"].get(name, {}).get("status") == "ok"]
        if not ok:
            out[name] = {"cases": 0}
            continue
        s = {  # MAE and bias over the voxels each variant estimated (coverage says how many)
            "cases": len(ok),
            "cases_with_estimates": int(sum(m["n_estimated"] > 0 for m in ok)),
            "mae_a": float(np.nanmean([m["mae_a"] for m in ok])),
            "bias_a": float(np.nanmean([m["bias_a"] for m in ok])),
            "spearman": float(np.nanmean([m["spearman"] for m in ok])),
            "coverage": float(np.mean([m["coverage"] for m in ok])),
        }
        cal = [m["interval"]["inside_fraction"] for m in ok if "interval" in m]
        if cal:
            s["interval_inside_fraction"] = float(np.mean(cal))
            s["interval_median_width_a"] = float(np.mean([m["interval"]["median_width_a"] for m in ok]))
        out[name] = s
    return out


def sharpening_study(
    pool: StructurePool,
    variants=("deepres2_map", "deepres_appearance"),
    bfactors_a2=(-100.0, -50.0, 0.0, 50.0, 100.0),
    checkpoints: dict[str, str] | None = None,
) -> dict:
    """Median estimate in the mask of one test phantom after global B sharpening/blurring of its map."""
    spec = {
        "kind": "cut",
        "snr": 2.0,
        "voxel_size_a": 1.0,
        "pattern": "radial",
        "seed": 77,
        "global_bfactor_a2": 0.0,
        "flatten": False,
    }
    rng = np.random.default_rng(spec["seed"])
    ex = make_training_example(pool.draw(rng, 1), case_recipe(spec), rng)
    from locres.core.fourier import frequency_grid_per_a

    freq = frequency_grid_per_a(ex.map.shape, ex.voxel_size_a)
    out = {
        "truth_median_a": float(np.median(ex.truth_a[ex.mask])),
        "bfactors_a2": list(bfactors_a2),
        "medians_a": {},
    }
    for name in variants:
        meds = []
        for b in bfactors_a2:
            g = global_filter(freq, b, 30.0)
            ex_b = type(ex)(**{**ex.__dict__})
            for key in ("map", "half1", "half2"):
                setattr(
                    ex_b,
                    key,
                    np.fft.irfftn(np.fft.rfftn(getattr(ex, key)) * g, s=ex.map.shape).astype(np.float32),
                )
            res, _ = run_variant(name, ex_b, ex.mask, checkpoints)
            meds.append(float(np.median(res[ex.mask])))
        out["medians_a"][name] = meds
        out.setdefault("max_shift_a", {})[name] = float(np.ptp(meds))
    return out


def _summary_rows(summary: dict) -> list[str]:
    lines = ["| variant | input | cases | MAE (A) | bias (A) | Spearman | coverage | 10-90 % interval |",
             "|:--|:--|--:|--:|--:|--:|--:|--:|"]
    for name, s in summary.items():
        kind = VARIANTS[name][1]
        if not s.get("cases"):
            lines.append(f"| {name} | {kind} | 0 | - | - | - | - | - |")
            continue
        cal = f"{100 * s['interval_inside_fraction']:.0f} %" if "interval_inside_fraction" in s else "-"
        lines.append(f"| {name} | {kind} | {s['cases']} | {s['mae_a']:.2f} | {s['bias_a']:+.2f} | "
                     f"{s['spearman']:.2f} | {s['coverage']:.2f} | {cal} |")
    return lines


def table_md(ph: dict, sharp: dict) -> str:
    lines = _summary_rows(ph["summary"])
    for key, summary in ph.items():
        if key.startswith("summary_on_the_"):
            who = key[len("summary_on_the_"):-len("_cases")]
            lines += ["", f"On the same cases ({who} ran on these only):", "", *_summary_rows(summary)]
    lines += [
        "",
        f"Sharpening (median in the mask, truth {sharp['truth_median_a']:.2f} A):",
        "",
        "| variant | " + " | ".join(f"B={b:+.0f}" for b in sharp["bfactors_a2"]) + " | max shift (A) |",
        "|:--|" + "--:|" * (len(sharp["bfactors_a2"]) + 1),
    ]
    for name, meds in sharp["medians_a"].items():
        lines.append(
            f"| {name} | " + " | ".join(f"{m:.2f}" for m in meds) + f" | {sharp['max_shift_a'][name]:.2f} |"
        )
    return "\n".join(lines) + "\n"


def merge_previous(ph: dict, previous: dict) -> dict:
    """Fold this run's results into an earlier run's cases (same names); other variants' results stay."""
    cases = {c["name"]: c for c in previous.get("cases", [])}
    for case in ph["cases"]:
        if case["name"] in cases:
            cases[case["name"]]["results"].update(case["results"])
        else:
            cases[case["name"]] = case
    rows = sorted(cases.values(), key=lambda c: c["name"])
    names = [n for n in VARIANTS if any(n in c["results"] for c in rows)]
    out = {"cases": rows, "summary": summarise(rows, names)}
    partial = [n for n in names if sum(n in c["results"] for c in rows) < len(rows)]
    for n in partial:  # a variant run on some cases only: everyone on those same cases
        same = [c for c in rows if n in c["results"]]
        everyone = [m for m in names if all(m in c["results"] for c in same)]
        out[f"summary_on_the_{n}_cases"] = summarise(same, everyone)
    return out


def main(argv: list[str] | None = None) -> None:
    from locres.core.memory import reuse_freed_memory

    reuse_freed_memory()  # as the entry points do (locres.core.memory)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shards", default="runs/training_set")
    p.add_argument("--out", default=None,
                   help="default bench_results/deepres2 (test split), runs/deepres2_val (val split)")
    p.add_argument("--cases", type=int, default=24)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS))
    p.add_argument("--keep", action="store_true", help="keep other variants' results (--out/phantoms.json)")
    p.add_argument("--no-sharpening", action="store_true")
    p.add_argument("--only", nargs="*", help="run only these cases (names from the case list)")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="structures the phantoms come from: test (the reported figures) or val (model work)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="VARIANT=FILE",
                   help="run this model file (.pt or .ckpt) as deepres2_map or deepres2_halves")
    p.add_argument("--estimates", default=None, metavar="DIR",
                   help="keep and reuse the analytical and outside variants' estimates here (e.g. "
                        "runs/bench_estimates): a re-run after a change of truth or model skips them")
    a = p.parse_args(argv)
    checkpoints = {}
    for item in a.checkpoint:
        name, _, path = item.partition("=")
        if name not in ("deepres2_map", "deepres2_halves") or not path:
            p.error(f"--checkpoint takes deepres2_map=FILE or deepres2_halves=FILE, got '{item}'")
        if not Path(path).is_file():
            p.error(f"--checkpoint {name}: no file {path}")
        checkpoints[name] = path
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    pool, names = test_pool(a.shards, a.split)
    t0 = time.perf_counter()
    ph = run_phantoms(pool, a.variants, a.cases, a.only, checkpoints,
                      Path(a.estimates) if a.estimates else None)
    out = Path(a.out or ("bench_results/deepres2" if a.split == "test" else "runs/deepres2_val"))
    earlier = []
    if a.keep and (out / "phantoms.json").exists():
        previous = json.loads((out / "phantoms.json").read_text())
        ph = merge_previous(ph, previous)
        earlier = previous.get("earlier_runs", []) + [
            {k: previous[k] for k in ("command", "seconds", "loadavg") if k in previous}]
    cmd = "python -m locres.bench.deepres2 " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"command": cmd, "split": a.split, f"{a.split}_structures": names,
            "seconds": round(time.perf_counter() - t0, 1),
            "loadavg": open("/proc/loadavg").read().split()[:3], "earlier_runs": earlier}
    atomic_write_json(out / "phantoms.json", {**meta, **ph})
    sharp = None
    if not a.no_sharpening:
        sharp = sharpening_study(pool, checkpoints=checkpoints)
        atomic_write_json(out / "sharpening.json", {**meta, **sharp})
    elif (out / "sharpening.json").exists():
        sharp = json.loads((out / "sharpening.json").read_text())
    if sharp is not None:
        (out / "table.md").write_text(table_md(ph, sharp))
        print(table_md(ph, sharp))


if __name__ == "__main__":
    main()
