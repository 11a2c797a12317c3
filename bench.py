"""Ground-truth benchmark of every local-resolution method (learned and analytical).

    python bench.py experiment=quick          # minutes on 2 CPU cores -> bench_results/quick/
    python bench.py experiment=full           # every voxel size / resolution / SNR / sharpening case
    python bench.py experiment=quick checkpoints=[runs/x/last.ckpt] device=cuda

Phantoms with known local resolution from test-split atomic models, a sharpening study and real maps
with fitted models; writes results.json, table.md and plots to ``output_dir``. The logic lives in
:mod:`locres.bench`; this file only composes the config and hands plain values to it.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(cfg) -> None:
    from hydra.utils import to_absolute_path
    from omegaconf import OmegaConf

    from locres.bench.suite import run_bench

    c = OmegaConf.to_container(cfg, resolve=True)
    gt = dict(c["groundtruth"])
    if gt["models_dir"] != "synthetic":
        gt["models_dir"] = to_absolute_path(gt["models_dir"])
    maps = []
    for e in c["realmaps"].get("maps") or []:
        e = dict(e)
        for key in ("map", "model", "mask"):
            if e.get(key):
                e[key] = to_absolute_path(e[key])
        maps.append(e)
    realmaps = {**c["realmaps"], "maps": maps}
    command = "python bench.py " + " ".join(a for a in sys.argv[1:] if not a.startswith("debug"))
    results = run_bench(
        output_dir=to_absolute_path(c["output_dir"]), variants=c["variants"], groundtruth=gt,
        sharpening=c["sharpening"], realmaps=realmaps, checkpoints=c.get("checkpoints") or [],
        device=c["device"], command=command.strip(), learned_label=c.get("learned_label", "deepres"),
    )
    table = Path(to_absolute_path(c["output_dir"])) / "table.md"
    print(table.read_text())
    print(f"wrote {table.parent} in {results['seconds_total'] / 60:.1f} min")


def _fallback_cli() -> None:
    """Entry point when locres.cli is absent: one-line errors, traceback only with debug=true."""
    import hydra

    debug = any(a in ("debug=true", "debug=1") for a in sys.argv[1:])

    @hydra.main(config_path="configs", config_name="bench", version_base=None)
    def _run(cfg):
        try:
            main(cfg)
        except Exception as exc:  # LocresError and anything unexpected: one line, exit 1
            if debug:
                raise
            sys.stderr.write(f"error: {exc}\n")
            raise SystemExit(1) from None

    _run()


if __name__ == "__main__":
    try:
        from locres.cli import run_cli
    except ImportError:
        _fallback_cli()
    else:
        run_cli(main, config_name="bench", doc=__doc__)
