"""Many maps: one output folder per map, finished ones skipped, one table of all results.

Two ways in, one layout out (``OUT`` = ``output.dir``):

- ``python infer.py input.maps=DIR|LIST.txt|GLOB|[a.mrc,b.mrc]``: every map in turn in this process
  (:func:`expand_maps` finds them; :func:`run_batch` runs them);
- ``python infer.py -m input.map=a.mrc,b.mrc [hydra/launcher=...]``: Hydra runs one job per map, each
  through :func:`run_one_map`; :class:`BatchSummary` (a Hydra callback) rewrites the table at the end.

``OUT/NAME/`` holds one map's outputs (``NAME`` = the file name without ``.mrc``/``.map``/``.ccp4``/
``.gz``). When a method's outputs are in place, ``OUT/NAME/.locres-done/METHOD.json`` is written last
and atomically: only that marker makes a map count as done, so a run killed midway (its outputs still in
a hidden staging folder, or half moved) is run again; a failure leaves ``.locres-failed/METHOD.json``
instead. ``OUT/summary.csv`` and ``OUT/summary.json`` list every map and method found done or failed,
rewritten under a lock after each map (and once more at the end).
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from locres.errors import LocresError
from locres.io.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

MAP_SUFFIXES = (".mrc", ".map", ".ccp4", ".mrcs", ".rec")
DONE = ".locres-done"
FAILED = ".locres-failed"
TABLE_COLUMNS = ("map", "method", "status", "median_a", "min_a", "max_a", "p5_a", "p25_a", "p75_a", "p95_a",
                 "voxels_estimated", "voxel_size_a", "seconds", "advisories", "input", "folder")


# ------------------------------------------------------------------------------------------- finding
def _is_map(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return any(name.endswith(s) for s in MAP_SUFFIXES)


def map_name(path: str | os.PathLike) -> str:
    """Output folder name of a map: its file name without the map suffix (and ``.gz``)."""
    name = Path(path).name
    low = name.lower()
    if low.endswith(".gz"):
        name, low = name[:-3], low[:-3]
    for s in MAP_SUFFIXES:
        if low.endswith(s):
            return name[: -len(s)]
    return name


def _read_list(path: Path) -> list[str]:
    lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    return [ln if Path(ln).is_absolute() else str(path.parent / ln) for ln in lines if ln]


def expand_maps(spec: str | os.PathLike | Sequence[str], exclude: Iterable[str] = ()) -> list[Path]:
    """The maps ``input.maps`` names, sorted within each entry and deduplicated.

    Each entry (a list, or one string) is a folder (its map files, not recursive), a glob (``*``, ``?``,
    ``[``), a list file (one path a line, ``#`` comments, relative to the list file) or a map. File names
    matching a pattern of ``exclude`` (e.g. ``*mask*``) are left out of folders and globs.
    """
    entries = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    found: list[Path] = []
    for entry in (str(e) for e in entries):
        p = Path(entry)
        if any(c in entry for c in "*?["):
            hits = [Path(h) for h in sorted(glob.glob(entry)) if _is_map(Path(h)) and Path(h).is_file()]
            if not hits:
                raise LocresError(f"input.maps: no map file matches {entry}")
        elif p.is_dir():
            hits = sorted(q for q in p.iterdir() if q.is_file() and _is_map(q))
            if not hits:
                raise LocresError(f"input.maps: folder {p} holds no map files ({', '.join(MAP_SUFFIXES)})")
        elif p.is_file() and not _is_map(p):
            hits = [Path(h) for h in _read_list(p)]
            missing = [str(h) for h in hits if not h.is_file()]
            if missing:
                raise LocresError(f"input.maps: list {p} names missing files: {', '.join(missing[:3])}")
            found += hits
            continue
        elif p.is_file():
            found.append(p)
            continue
        else:
            raise LocresError(f"input.maps: {entry} is neither a map, a folder, a list file nor a glob")
        found += [h for h in hits if not any(fnmatch.fnmatch(h.name, pat) for pat in exclude)]
    unique = list(dict.fromkeys(found))
    if not unique:
        raise LocresError("input.maps names no map (after input.exclude)")
    _check_names(unique)
    return unique


def _check_names(paths: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for p in paths:
        name = map_name(p)
        if name in seen and seen[name].resolve() != p.resolve():
            raise LocresError(f"two maps would share the output folder '{name}': {seen[name]} and {p}; "
                              "rename one or run them into different output.dir")
        seen[name] = p


# --------------------------------------------------------------------------------------- markers
def marker(map_dir: Path, method: str, failed: bool = False) -> Path:
    return Path(map_dir) / (FAILED if failed else DONE) / f"{method}.json"


def is_done(map_dir: Path, method: str) -> bool:
    """True when ``method`` finished on this map (its done marker exists)."""
    return marker(map_dir, method).is_file()


def _write_marker(map_dir: Path, method: str, payload: dict, failed: bool) -> None:
    atomic_write_bytes(marker(map_dir, method, failed), json.dumps(payload, indent=1).encode())
    marker(map_dir, method, not failed).unlink(missing_ok=True)


def clear_stale_partials(folder: Path) -> list[Path]:
    """Remove staging folders a killed run left in ``folder`` (this host's, whose process is gone)."""
    import shutil
    import socket

    from locres.pipeline.outputs import PARTIAL

    host, gone = socket.gethostname(), []
    for p in Path(folder).glob(f"{PARTIAL}*") if Path(folder).is_dir() else []:
        parts = p.name[len(PARTIAL):].rsplit("-", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit() or _alive(int(parts[1])):
            continue
        shutil.rmtree(p, ignore_errors=True)
        gone.append(p)
    if gone:
        log.info("removed %d staging folder(s) of a killed run in %s", len(gone), folder)
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_one_map(map_path: str | os.PathLike, method: str, out_dir: str | os.PathLike,
                run: Callable[[Path], dict], skip_done: bool = True) -> dict:
    """Run ``run(map_out_dir)`` for one map unless it is done; mark it done (or failed) and update the table.

    Returns ``{"map", "folder", "status"}`` with status ``done``, ``skipped`` or ``failed: ...``; the
    failure is raised again after it is recorded.
    """
    out_dir = Path(out_dir)
    folder = out_dir / map_name(map_path)
    row = {"map": map_name(map_path), "folder": str(folder), "input": str(map_path)}
    if skip_done and is_done(folder, method):
        log.info("%s: %s already done in %s/, skipped", map_path, method, folder)
        return {**row, "status": "skipped"}
    clear_stale_partials(folder)
    t0 = time.time()
    try:
        run(folder)
    except BaseException as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, KeyboardInterrupt):
            _write_marker(folder, method, {**row, "method": method, "error": why}, failed=True)
            write_table(out_dir)
        raise
    _write_marker(folder, method, {**row, "method": method, "seconds": round(time.time() - t0, 2),
                                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}, failed=False)
    write_table(out_dir)
    return {**row, "status": "done"}


def run_batch(maps: Sequence[Path], method: str, out_dir: str | os.PathLike, run: Callable[[Path, Path], Any],
              skip_done: bool = True) -> list[dict]:
    """Every map through :func:`run_one_map` (``run(map_path, map_out_dir)``), going on past failures.

    Raises
    ------
    LocresError
        After the last map, when any failed (the table lists which and why).
    """
    rows, failed = [], []
    for k, path in enumerate(maps, start=1):
        log.info("map %d of %d: %s", k, len(maps), path)
        try:
            rows.append(run_one_map(path, method, out_dir, lambda folder, p=path: run(p, folder), skip_done))
        except LocresError as exc:
            log.error("%s failed: %s", path, exc)
            failed.append(f"{map_name(path)} ({str(exc).splitlines()[0]})")
            rows.append({"map": map_name(path), "status": "failed"})
    write_table(out_dir)
    if failed:
        raise LocresError(f"{len(failed)} of {len(maps)} maps failed: {'; '.join(failed[:3])}"
                          f"{' ...' if len(failed) > 3 else ''} (see {Path(out_dir) / 'summary.csv'})")
    return rows


# ------------------------------------------------------------------------------------------- table
def _row(folder: Path, mark: dict, method: str, failed: bool) -> dict:
    row = {k: None for k in TABLE_COLUMNS}
    row.update(map=folder.name, method=method, folder=folder.name, input=mark.get("input"))
    if failed:
        return {**row, "status": f"failed: {mark.get('error', '')}"}
    try:
        summary = json.loads((folder / f"{method}.json").read_text())
    except (OSError, ValueError):
        summary = {}
    pct = summary.get("percentiles_a") or {}
    row.update(status="done", median_a=summary.get("median_a"), min_a=summary.get("min_a"),
               max_a=summary.get("max_a"), p5_a=pct.get("5"), p25_a=pct.get("25"), p75_a=pct.get("75"),
               p95_a=pct.get("95"), voxels_estimated=summary.get("voxels_estimated"),
               voxel_size_a=summary.get("voxel_size_a"), seconds=summary.get("seconds"),
               advisories=";".join(a.get("code", "") for a in summary.get("advisories") or []))
    return row


def collect_rows(out_dir: str | os.PathLike) -> list[dict]:
    """One row per (map folder, method) with a done or failed marker under ``out_dir``, sorted."""
    rows = []
    for folder in sorted(p for p in Path(out_dir).iterdir() if p.is_dir() and not p.name.startswith(".")):
        for failed, sub in ((False, DONE), (True, FAILED)):
            for m in sorted((folder / sub).glob("*.json")):
                try:
                    mark = json.loads(m.read_text())
                except (OSError, ValueError):
                    continue
                rows.append(_row(folder, mark, m.stem, failed))
    return rows


def write_table(out_dir: str | os.PathLike) -> list[dict]:
    """Rewrite ``out_dir/summary.csv`` and ``summary.json`` from the markers (under a lock file)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    with _locked(out_dir / ".summary.lock"):
        rows = collect_rows(out_dir)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(TABLE_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(out_dir / "summary.csv", buf.getvalue().encode())
        atomic_write_bytes(out_dir / "summary.json", json.dumps({"maps": rows}, indent=1).encode())
    return rows


class _locked:
    """An exclusive ``flock`` on ``path`` (no-op where flock is unavailable)."""

    def __init__(self, path: Path):
        self.path, self.fh = path, None

    def __enter__(self):
        try:
            import fcntl

            self.fh = open(self.path, "a")  # noqa: SIM115 - closed in __exit__
            fcntl.flock(self.fh, fcntl.LOCK_EX)
        except (ImportError, OSError):
            self.fh = None
        return self

    def __exit__(self, *exc) -> None:
        if self.fh is not None:
            self.fh.close()


def table_text(rows: Sequence[dict], out_dir: str | os.PathLike) -> str:
    """A short text table of the batch for the terminal."""
    lines = [f"{'map':24s} {'method':8s} {'status':10s} {'median A':>9s}  advisories"]
    for r in rows:
        med = r.get("median_a")
        status, med = str(r.get("status") or ""), "" if med is None else f"{med:9.2f}"
        lines.append(f"{str(r.get('map'))[:24]:24s} {str(r.get('method') or '')[:8]:8s} "
                     f"{status[:10]:10s} {med:>9s}  {r.get('advisories') or ''}")
    lines.append(f"table: {Path(out_dir) / 'summary.csv'} (and summary.json)")
    return "\n".join(lines)


try:  # the Hydra callback that writes the table once every job of a -m sweep has ended
    from hydra.experimental.callback import Callback as _Callback
except ImportError:  # pragma: no cover
    _Callback = object


class BatchSummary(_Callback):
    """Hydra callback: after ``infer.py -m``, rewrite ``output.dir/summary.csv|json`` from the markers."""

    def on_multirun_end(self, config, **kwargs) -> None:
        out = (config.get("output") or {}).get("dir") if hasattr(config, "get") else None
        if out and Path(out).is_dir():
            rows = write_table(out)
            log.info("batch: %d map/method results in %s", len(rows), Path(out) / "summary.csv")
