"""train.py: the smoke experiment writes a loadable checkpoint, resumes, and bad configs are one-liners."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from locres.cli import run_cli
from locres.io.checkpoints import load_deepres

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import train as train_py  # noqa: E402

MODEL = REPO / "locres" / "examples" / "emd_3488" / "5me2.pdb"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    from locres.data.splits import split_of

    d = tmp_path_factory.mktemp("models")
    want = {"train": 1, "val": 1, "test": 1}
    i = 0
    while any(want.values()):
        e = f"m{i:03d}"
        s = split_of(e)
        if want[s]:
            (d / f"{e}.pdb").write_bytes(MODEL.read_bytes())
            want[s] -= 1
        i += 1
    return d


def _run(argv, capsys):
    """Run train.py in-process; returns (run dir's metrics.json or None, exit code, stderr)."""
    run_dir = Path(next(a for a in argv if a.startswith("hydra.run.dir=")).split("=", 1)[1])
    (run_dir / "metrics.json").unlink(missing_ok=True)
    try:
        run_cli(train_py.train, "train", argv=argv)
        code = 0
    except SystemExit as e:
        code = e.code
    f = run_dir / "metrics.json"
    return (json.loads(f.read_text()) if f.exists() else None), code, capsys.readouterr().err


def _smoke(tmp_path, models_dir, *extra):
    return ["experiment=smoke", f"hydra.run.dir={tmp_path / 'run'}", f"data.models_dir={models_dir}",
            "data.max_structures=1", "data.steps_per_epoch=2", "callbacks.progress_bar.refresh_rate=0",
            *extra]


def test_smoke_writes_loadable_checkpoint_and_resumes(tmp_path, models_dir, capsys):
    out, code, err = _run(_smoke(tmp_path, models_dir, "trainer.max_epochs=1", "test=true",
                                 f"export={tmp_path / 'slim.pt'}"), capsys)
    assert code == 0, err
    ckpts = tmp_path / "run" / "checkpoints"
    net, meta = load_deepres(ckpts / "last.ckpt")
    assert meta["voxel_size_a"] == 1.0 and meta["resolution_range_a"] == [2.0, 15.0]
    slim, slim_meta = load_deepres(tmp_path / "slim.pt")
    assert (tmp_path / "slim.yaml").exists() and (tmp_path / "slim_metrics.json").exists()
    assert out["test"]["n_boxes"] > 0 and out["global_step"] == 2
    x = torch.randn(3, 1, net.box_size, net.box_size, net.box_size)
    assert torch.isfinite(net(x)).all()
    step1 = torch.load(ckpts / "last.ckpt", weights_only=False)["global_step"]
    first_log = (tmp_path / "run" / "csv" / "metrics.csv").read_text()
    # resume: one more epoch continues from the last checkpoint's step
    args = _smoke(tmp_path, models_dir, "trainer.max_epochs=2", "ckpt_path=last", "test=false")
    out, code, err = _run(args, capsys)
    assert code == 0, err
    assert out["global_step"] == step1 + 2
    # everything of the run is under hydra.run.dir: config, checkpoints, metrics, csv logs
    run = tmp_path / "run"
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "csv" / "metrics.csv").is_file()
    # the first attempt's log is kept beside the resumed one's (the CSV logger would delete it)
    assert (run / "csv" / "metrics.part1.csv").read_text() == first_log
    assert "epoch" in (run / "csv" / "metrics.csv").read_text()
    names = sorted(p.name for p in ckpts.iterdir())
    assert len(names) == 2 and names[0].startswith("best-") and names[1] == "last.ckpt"
    assert Path(out["last_checkpoint"]).resolve() == (ckpts / "last.ckpt").resolve()


def test_last_checkpoint_is_written_every_epoch_even_without_improvement(tmp_path, models_dir, capsys):
    """Resume needs the latest epoch, not the best one: a monitor that never improves after epoch 0
    (the epoch number, minimised) keeps best-000 while last.ckpt follows every epoch."""
    args = _smoke(tmp_path, models_dir, "trainer.max_epochs=3", "test=false",
                  "callbacks.model_checkpoint.monitor=epoch")
    out, code, err = _run(args, capsys)
    assert code == 0, err
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["best-000.ckpt", "last.ckpt"]
    last = torch.load(ckpts / "last.ckpt", weights_only=False)
    best = torch.load(ckpts / "best-000.ckpt", weights_only=False)
    assert last["global_step"] == out["global_step"] == 6 and best["global_step"] == 2


def test_sweep_jobs_get_their_own_directories(tmp_path, models_dir, capsys):
    """``-m`` with two learning rates: two job folders, each with its own checkpoints and metrics."""
    sweep = tmp_path / "sweep"
    args = [a for a in _smoke(tmp_path, models_dir, "trainer.max_epochs=1", "test=false",
                              "data.steps_per_epoch=1") if not a.startswith("hydra.run.dir=")]
    try:
        run_cli(train_py.train, "train", argv=["-m", *args, f"hydra.sweep.dir={sweep}",
                                                "module.optimizer.lr=0.001,0.003"])
    except SystemExit as e:
        pytest.fail(f"sweep failed ({e.code}): {capsys.readouterr().err}")
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    lrs = []
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert Path(metrics["last_checkpoint"]).resolve() == (job / "checkpoints" / "last.ckpt").resolve()
        assert sorted(p.name for p in (job / "checkpoints").iterdir()) == ["best-000.ckpt", "last.ckpt"]
        assert (job / "csv" / "metrics.csv").is_file()
        state = torch.load(job / "checkpoints" / "last.ckpt", weights_only=False)
        lrs.append(state["optimizer_states"][0]["param_groups"][0]["initial_lr"])
    assert lrs == [0.001, 0.003]


def test_run_dir_is_not_set_by_hand(tmp_path, models_dir, capsys):
    _, code, err = _run(_smoke(tmp_path, models_dir, f"run_dir={tmp_path / 'elsewhere'}"), capsys)
    assert code == 1 and "use hydra.run.dir=" in err.strip().splitlines()[-1]
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("args, message", [
    (["model=nosuch"], "unknown model option 'nosuch'"),
    (["model.kernel_sizes=[5,3,3,3,3,61]", "model.channels=[4,4,4,4,4,4]"], "larger than"),
    (["data.recipe.voxel_size_a=40.0", "data.recipe.resolution_range_a=[90.0,100.0]"], "voxel size"),
    (["data.models_dir=/nonexistent/models"], "models folder not found"),
    (["ckpt_path=BROKEN"], "damaged"),
])
def test_bad_configs_are_one_line_errors(tmp_path, models_dir, capsys, args, message):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint at all")
    args = [a.replace("BROKEN", str(broken)) for a in args]
    _, code, err = _run(_smoke(tmp_path, models_dir, *args), capsys)
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert code in (1, 2) and len(lines) == 1, err
    assert message in lines[0]


def test_empty_models_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _, code, err = _run(_smoke(tmp_path, tmp_path / "empty"), capsys)
    assert code == 1 and "no atomic models" in err.strip().splitlines()[-1]


def test_wandb_logger_writes_offline_run(tmp_path, models_dir, capsys):
    pytest.importorskip("wandb")
    env_before = os.environ.get("WANDB_MODE")
    try:
        _, code, err = _run(_smoke(tmp_path, models_dir, "logger=wandb", "trainer.max_epochs=1", "test=false",
                                   "data.steps_per_epoch=1"), capsys)
    finally:
        if env_before is None:
            os.environ.pop("WANDB_MODE", None)
    assert code == 0, err
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert runs, "no offline wandb run directory"


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path, models_dir):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = _smoke(tmp_path, models_dir, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                  "trainer.max_epochs=1", "test=false")
    r = subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True,
                       env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    net, meta = load_deepres(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert meta["voxel_size_a"] == 1.0
