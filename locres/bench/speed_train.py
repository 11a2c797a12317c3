"""Training throughput (boxes/s) on CPU, and data_prep time for a folder of models.

    python -m locres.bench.speed_train                       # -> bench_results/speed_train.json
    python -m locres.bench.speed_train --what data_prep      # -> bench_results/speed_data_prep.json

Training: one optimiser step (forward, L1 loss, backward, AdamW step) on a batch of standardised
boxes, median over ``--runs`` steps after ``--warmup`` steps, for the default compact net and the
published DeepRes net (the baseline). The box pipeline (shards -> standardised boxes) is timed too.
data_prep: ``data_prep/simulate_training_set.py`` on ``--models`` with ``--workers`` processes, and
the same with one process as the baseline. Wall and process CPU seconds are both reported, because
the machine is usually shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from locres.io.atomic import atomic_write_text
from locres.io.paths import portable_path

REPO = Path(__file__).resolve().parents[2]


def machine(threads: int) -> dict:
    return {"date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpu_count": os.cpu_count(),
            "torch_threads": threads, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "platform": platform.platform(),
            "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()]}


def time_train_steps(net: torch.nn.Module, batch: int, runs: int, warmup: int) -> dict:
    """Median wall and CPU seconds of one training step on ``batch`` random boxes."""
    b = net.box_size
    x = torch.randn(batch, 1, b, b, b).abs()
    y = torch.rand(batch) * 13 + 2
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    net.train()
    walls, cpus = [], []
    for i in range(warmup + runs):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = (net(x) - y).abs().mean()
        loss.backward()
        opt.step()
        if i >= warmup:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    w, c = statistics.median(walls), statistics.median(cpus)
    return {"batch": batch, "box_size": b, "parameters": sum(p.numel() for p in net.parameters()),
            "step_wall_s_median": round(w, 4), "step_cpu_s_median": round(c, 4),
            "boxes_per_s_wall": round(batch / w, 1), "boxes_per_cpu_s": round(batch / c, 1),
            "wall_s_all": [round(v, 4) for v in walls]}


def time_box_pipeline(shards_dir: str | None, models_dir: str, box_size: int, batches: int) -> dict:
    """Seconds per batch of 128 standardised boxes (64 per map) from shards, or simulated on the fly."""
    from locres.data.datamodule import BoxStream, DeepResDataModule

    source = "shards" if shards_dir and Path(shards_dir).is_dir() else "simulate"
    dm = DeepResDataModule(source=source, shards_dir=shards_dir, models_dir=models_dir, box_size=box_size,
                           max_structures=10, recipe={"noise_range": [0.0, 0.3], "p_noise": 0.3,
                                                      "bfactor_range_a2": [-50, 100], "p_bfactor": 0.3})
    stream = BoxStream(dm.make_source("train"), box_size, 128, 64, batches)
    rng = np.random.default_rng(0)
    walls, cpus = [], []
    for _ in range(batches):
        t0, c0 = time.perf_counter(), time.process_time()
        stream.make_batch(rng)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"source": source, "structures": 10, "batch": 128, "boxes_per_map": 64,
            "batch_wall_s_median": round(statistics.median(walls), 4),
            "batch_cpu_s_median": round(statistics.median(cpus), 4),
            "boxes_per_s_wall": round(128 / statistics.median(walls), 1)}


def bench_train(args) -> dict:
    from locres.models.nets import CompactResNet, DeepResPaperNet

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    default = time_train_steps(CompactResNet(), args.batch, args.runs, args.warmup)
    paper = time_train_steps(DeepResPaperNet(), args.batch, max(2, args.runs // 2), 1)
    pipe = time_box_pipeline(args.shards, args.models, CompactResNet().box_size, args.runs)
    return {"benchmark": "training throughput on CPU: one AdamW step (forward, L1, backward) per batch",
            "command": "python -m locres.bench.speed_train " + " ".join(sys.argv[1:]),
            "machine": machine(args.threads),
            "shared_machine": "yes: other engineers' jobs (and a training run) shared the same 2 cores; "
                              "boxes_per_cpu_s is the less load-dependent number",
            "default_compact_net": default, "baseline_published_net": paper,
            "speedup_default_vs_published_per_box_cpu": round(default["boxes_per_cpu_s"]
                                                             / paper["boxes_per_cpu_s"], 2),
            "box_pipeline": pipe}


def bench_data_prep(args) -> dict:
    import subprocess

    def one(workers: int) -> dict:
        with tempfile.TemporaryDirectory(dir=REPO / "runs" if (REPO / "runs").is_dir() else None) as tmp:
            # relative to the repository (the subprocess runs there), so the recorded command is portable
            cmd = [sys.executable, "data_prep/simulate_training_set.py",
                   f"models_dir={portable_path(args.models, REPO)}", f"out_dir={portable_path(tmp, REPO)}",
                   f"workers={workers}", "progress=false"]
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=REPO, capture_output=True,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
            wall = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
            m = json.loads((Path(tmp) / "manifest.json").read_text())
            size = sum(f.stat().st_size for f in Path(tmp).glob("*.npz"))
        return {"workers": workers, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "models": m["n_models"],
                "shards": m["n_shards"], "failures": m["n_failures"], "views": m["views"],
                "maps_per_view": m["maps_per_view"], "bytes_written": size,
                "models_per_min_wall": round(60 * m["n_shards"] / wall, 1), "command": " ".join(cmd[1:])}

    runs = [one(args.workers) for _ in range(args.runs)]
    base = one(1) if args.baseline else None
    walls = [r["wall_s"] for r in runs]
    out = {"benchmark": "data_prep: atomic models -> training shards (configs/data_prep.yaml defaults)",
           "command": "python -m locres.bench.speed_train " + " ".join(sys.argv[1:]),
           "machine": machine(1),
           "shared_machine": "yes: other engineers' jobs shared the same 2 cores; cpu_s (this process "
                             "and its "
                             "workers) is the less load-dependent number",
           "models_dir": portable_path(args.models, REPO), "runs": runs,
           "wall_s_median": statistics.median(walls),
           "baseline_one_process": base}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--what", choices=["train", "data_prep"], default="train")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--models", default=str(REPO.parent / "shared" / "data" / "models"))
    p.add_argument("--shards", default=str(REPO / "runs" / "training_set_v1"))
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    res = bench_train(args) if args.what == "train" else bench_data_prep(args)
    out = Path(args.out or REPO / "bench_results" / f"speed_{args.what}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
