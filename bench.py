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
    from omegaconf import OmegaConf

    from locres.bench.suite import run_bench

    # Paths stay as given (relative to the working directory: hydra.job.chdir is false), so the
    # results name ../shared/data/... and not the absolute paths of the machine they were made on.
    c = OmegaConf.to_container(cfg, resolve=True)
    command = "python bench.py " + " ".join(a for a in sys.argv[1:] if not a.startswith("debug"))
    results = run_bench(
        output_dir=c["output_dir"], variants=c["variants"], groundtruth=c["groundtruth"],
        sharpening=c["sharpening"], realmaps=c["realmaps"], checkpoints=c.get("checkpoints") or [],
        device=c["device"], command=command.strip(), learned_label=c.get("learned_label", "deepres"),
    )
    table = Path(c["output_dir"]) / "table.md"
    print(table.read_text())
    print(f"wrote {table.parent} in {results['seconds_total'] / 60:.1f} min")


if __name__ == "__main__":
    from locres.cli import run_cli

    run_cli(main, config_name="bench", doc=__doc__)
