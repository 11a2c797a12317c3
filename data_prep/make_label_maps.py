"""Label maps for training: run any estimator over a set of maps or half-map pairs.

    python data_prep/make_label_maps.py inputs=../shared/data/maps method=monores out_dir=runs/labels
    python data_prep/make_label_maps.py list_file=jobs.txt method=blocres method.box=20
    python data_prep/make_label_maps.py inputs=../shared/data/maps/emd_5168 method=modelfsc   # vs the model

A folder is searched recursively: files named ``*half1*``/``*half2*`` (or ``half_1``/``half_2``) with the
same remaining name form a pair, any other map is a single map, and a lone file with ``mask`` in its name
is the mask of the maps in its folder; a lone atomic model (PDB/mmCIF) in a folder is the fitted model
of its maps, used by methods that take one (``method=modelfsc``: local map-vs-model FSC labels on real
maps). Each job writes ``OUT/<job>/NAME.mrc`` (on the input's grid),
``NAME.json`` and the method's extra maps through the same code as infer.py (atomic, nothing partial);
a job already done is skipped, so an interrupted run picks up where it stopped. ``OUT/label_maps.json``
lists every job with its status and median.
"""

from __future__ import annotations

import glob
import logging
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import OmegaConf  # noqa: E402

from locres.cli import run_cli  # noqa: E402
from locres.errors import LocresError  # noqa: E402
from locres.io.atomic import atomic_write_bytes  # noqa: E402
from locres.io.maps import MAP_SUFFIXES  # noqa: E402
from locres.io.models import is_model_file  # noqa: E402
from locres.methods import get_method  # noqa: E402
from locres.pipeline import Options, run_infer  # noqa: E402
from locres.report.summary import to_json_bytes  # noqa: E402

log = logging.getLogger("data_prep.make_label_maps")
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
HALF = re.compile(r"half[_-]?([12])", re.IGNORECASE)


def _is_map(p: Path) -> bool:
    name = p.name.lower().removesuffix(".gz")
    return p.is_file() and name.endswith(MAP_SUFFIXES)


def _stem(p: Path) -> str:
    name = p.name.removesuffix(".gz")
    return name[: name.rfind(".")] if "." in name else name


def jobs_in_folder(folder: Path, use_masks: bool = True) -> list[dict]:
    """Jobs ({"key", "map" | "half1"+"half2", "mask"}) for every map under ``folder``, sorted by key."""
    jobs = []
    dirs = sorted({p.parent for p in folder.rglob("*") if _is_map(p)})
    for d in dirs:
        files = sorted(p for p in d.iterdir() if _is_map(p))
        masks = [p for p in files if "mask" in p.name.lower()]
        mask = masks[0] if use_masks and len(masks) == 1 else None
        models = [p for p in d.iterdir() if p.is_file() and is_model_file(p)]
        model = models[0] if len(models) == 1 else None
        halves: dict[str, dict[str, Path]] = {}
        for p in files:
            if p in masks:
                continue
            m = HALF.search(p.name)
            if m:
                halves.setdefault(HALF.sub("half", _stem(p)), {})[m.group(1)] = p
            else:
                jobs.append({"map": p, "mask": mask, "model": model, "key": _key(folder, d, _stem(p))})
        for base, pair in halves.items():
            if set(pair) == {"1", "2"}:
                jobs.append({"half1": pair["1"], "half2": pair["2"], "mask": mask, "model": model,
                             "key": _key(folder, d, base)})
            else:
                log.warning("%s: half map without its partner, skipped", next(iter(pair.values())))
    return sorted(jobs, key=lambda j: j["key"])


def _key(root: Path, d: Path, stem: str) -> str:
    rel = d.relative_to(root).as_posix()
    return stem if rel == "." else f"{rel.replace('/', '__')}__{stem}"


def jobs_from_list(list_file: Path) -> list[dict]:
    """Jobs from a text file: ``MAP`` or ``HALF1 HALF2``, optionally ``mask=MASK`` and ``model=MODEL``;
    # starts a comment."""
    if not list_file.is_file():
        raise LocresError(f"list_file not found: {list_file}")
    jobs, seen = [], set()
    for n, line in enumerate(list_file.read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        opt = {k: next((w.split("=", 1)[1] for w in words if w.startswith(f"{k}=")), None)
               for k in ("mask", "model")}
        files = [Path(w).expanduser() for w in words if not w.startswith(("mask=", "model="))]
        if len(files) not in (1, 2):
            raise LocresError(
                f"{list_file}:{n}: give MAP or HALF1 HALF2 (then optionally mask=MASK model=MODEL)"
            )
        key = _stem(files[0])
        while key in seen:
            key += "_"
        seen.add(key)
        job = {"map": files[0]} if len(files) == 1 else {"half1": files[0], "half2": files[1]}
        jobs.append({**job, **{k: Path(v) if v else None for k, v in opt.items()}, "key": key})
    return jobs


def collect_jobs(inputs, list_file, use_masks: bool) -> list[dict]:
    if list_file:
        return jobs_from_list(Path(list_file))
    if not inputs:
        raise LocresError("nothing to do: give inputs=FOLDER (or a glob, or a list) or list_file=FILE")
    jobs = []
    for item in [inputs] if isinstance(inputs, str) else list(inputs):
        p = Path(str(item)).expanduser()
        if p.is_dir():
            jobs += jobs_in_folder(p, use_masks)
        elif p.is_file():
            jobs.append({"map": p, "mask": None, "key": _stem(p)})
        else:
            matches = sorted(Path(m) for m in glob.glob(str(p)) if _is_map(Path(m)))
            if not matches:
                raise LocresError(f"input {item} is not a map file, a folder or a glob that matches maps")
            jobs += [{"map": m, "mask": None, "key": _stem(m)} for m in matches]
    return jobs


def main(cfg) -> None:
    conf = OmegaConf.to_container(cfg, resolve=True)
    method = dict(conf["method"])
    name = method.pop("name")
    if name == "all":
        raise LocresError("make_label_maps runs one method: choose method=NAME")
    jobs = collect_jobs(conf.get("inputs"), conf.get("list_file"), conf.get("use_masks", True))
    needs_model = getattr(get_method(name), "INPUTS", "map") == "map_and_model"
    if conf.get("limit"):
        jobs = jobs[: int(conf["limit"])]
    out_root = Path(conf["out_dir"])
    log.info("%d jobs, method %s -> %s/", len(jobs), name, out_root)
    records = []
    for i, job in enumerate(jobs, 1):
        out = out_root / job["key"]
        rec = {k: (str(v) if v is not None else None) for k, v in job.items()}
        if not conf.get("overwrite") and (out / f"{name}.mrc").exists() and (out / f"{name}.json").exists():
            log.info("[%d/%d] %s: done already, skipped", i, len(jobs), job["key"])
            records.append({**rec, "status": "done before"})
            continue
        t0 = time.perf_counter()
        try:
            result = run_infer(
                name,
                {name: method},
                out,
                map_path=_s(job.get("map")),
                half1_path=_s(job.get("half1")),
                half2_path=_s(job.get("half2")),
                mask_path=_s(job.get("mask")),
                model_path=_s(job.get("model")) if needs_model else None,
                voxel_size_a=conf.get("voxel_size"),
                device=conf.get("device", "auto"),
                options=Options(plots=False, chimerax=False),
            )
            summary = result["summaries"][0]
            records.append(
                {
                    **rec,
                    "status": "done",
                    "median_a": summary["median_a"],
                    "seconds": round(time.perf_counter() - t0, 2),
                }
            )
        except (LocresError, OSError, ValueError, RuntimeError) as exc:
            if not conf.get("keep_going", True):
                raise
            log.warning("[%d/%d] %s failed: %s", i, len(jobs), job["key"], str(exc).splitlines()[0])
            records.append({**rec, "status": "failed", "error": str(exc).splitlines()[0]})
        atomic_write_bytes(
            out_root / "label_maps.json", to_json_bytes({"method": name, "params": method, "jobs": records})
        )
    atomic_write_bytes(
        out_root / "label_maps.json", to_json_bytes({"method": name, "params": method, "jobs": records})
    )
    failed = [r for r in records if r["status"] == "failed"]
    print(
        f"{len(records) - len(failed)} of {len(records)} jobs done, {len(failed)} failed; see "
        f"{out_root / 'label_maps.json'}"
    )


def _s(p):
    return None if p is None else str(p)


if __name__ == "__main__":
    run_cli(main, config_name="label_maps", config_dir=CONFIG_DIR)
