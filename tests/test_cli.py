"""run_cli: one line `error: ...` and exit 1 for every expected failure, tracebacks only with debug."""

from __future__ import annotations

import logging
import os

import pytest

from locres.cli import error_message, run_cli
from locres.errors import LocresError


@pytest.fixture
def cfg_dir(tmp_path):
    d = tmp_path / "configs"
    (d / "method").mkdir(parents=True)
    (d / "method" / "alpha.yaml").write_text("name: alpha\nk: 1\n")
    (d / "method" / "beta.yaml").write_text("name: beta\nk: 2\n")
    (d / "tool.yaml").write_text(
        "defaults:\n  - method: alpha\n  - override hydra/job_logging: none\n"
        "  - override hydra/hydra_logging: none\n  - _self_\n"
        "raise_what: null\ndebug: false\nhydra:\n  run:\n    dir: .\n  output_subdir: null\n"
        "  job:\n    chdir: false\n"
    )
    return d


def _task(cfg):
    what = cfg.raise_what
    if what == "locres":
        raise LocresError("the map is bad: give a good one")
    if what == "missing":
        open("/nonexistent/locres/file.mrc")
    if what == "bug":
        raise ZeroDivisionError("division by zero")
    logging.getLogger("locres.test").info("ran with k=%s", cfg.method.k)
    return cfg.method.k


def _errors(text):
    return [ln for ln in text.splitlines() if ln.startswith("error:")]


@pytest.mark.parametrize(
    "what, words",
    [
        ("locres", "the map is bad"),
        ("missing", "/nonexistent/locres/file.mrc"),
        ("bug", "unexpected ZeroDivision"),
    ],
)
def test_errors_are_one_line_exit_1(cfg_dir, capsys, what, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        run_cli(_task, "tool", cfg_dir, argv=[f"raise_what={what}"])
    err = capsys.readouterr().err
    assert exc.value.code == 1
    assert len(_errors(err)) == 1 and words in _errors(err)[0]
    assert "Traceback" not in err
    assert not (tmp_path / "outputs").exists() and not (tmp_path / ".hydra").exists()


def test_debug_shows_traceback(cfg_dir, capsys):
    with pytest.raises(SystemExit):
        run_cli(_task, "tool", cfg_dir, argv=["raise_what=locres", "debug=true"])
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: the map is bad")


def test_bad_overrides_are_one_line(cfg_dir, capsys):
    for argv, words in (
        [["method=gamma"], "unknown method 'gamma': choose one of alpha, beta"],
        [["nokey=1"], "bad command line"],
        [["method.k=[1"], "bad command line"],
    ):
        with pytest.raises(SystemExit) as exc:
            run_cli(_task, "tool", cfg_dir, argv=argv)
        err = capsys.readouterr().err
        assert exc.value.code == 1 and len(_errors(err)) == 1 and words in err, err


def test_good_run_returns_and_uses_group_option(cfg_dir, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cwd = os.getcwd()
    run_cli(_task, "tool", cfg_dir, argv=["method=beta"])
    assert os.getcwd() == cwd  # no chdir, and nothing written next to the configs (no outputs/, .hydra, logs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["configs"]
    assert "ran with k=2" in capsys.readouterr().err


def test_error_message_for_oom_and_oserror():
    assert "GPU ran out of memory" in error_message(type("OutOfMemoryError", (RuntimeError,), {})("CUDA oom"))
    assert error_message(FileNotFoundError(2, "No such file or directory", "x.mrc")) == (
        "No such file or directory: x.mrc"
    )


# ------------------------------------------------------------------------------------------- --help
def test_usage_text_known_answer(tmp_path):
    """Options, children, comments and only the experiments that fit this entry point's config."""
    from locres.cli import usage_text

    (tmp_path / "method").mkdir()
    (tmp_path / "experiment").mkdir()
    for name in ("a", "b"):
        (tmp_path / "method" / f"{name}.yaml").write_text(f"name: {name}\n")
    (tmp_path / "experiment" / "mine.yaml").write_text("# @package _global_\nout: x\n")
    (tmp_path / "experiment" / "other.yaml").write_text("# @package _global_\ntrainer: {}\n")
    (tmp_path / "run.yaml").write_text(
        "defaults:\n  - method: a      # the estimator\n  - experiment: null\n"
        "  - override hydra/job_logging: none\n  - _self_\n"
        "out: null   # where outputs go\ninput:\n  map: m.mrc  # the map\n  _target_: x\n"
        "hydra:\n  run:\n    dir: .\n"
    )
    text = usage_text("run", tmp_path, doc="Do a thing.\n\n    python run.py out=DIR\n")
    lines = [ln.rstrip() for ln in text.splitlines()]
    assert lines[0] == "Do a thing." and "    python run.py out=DIR" in lines
    assert any(ln.split() == ["out=null", "where", "outputs", "go"] for ln in lines)
    assert any(ln.split() == ["input.map=m.mrc", "the", "map"] for ln in lines)
    assert any(ln.split()[:2] == ["method=a", "the"] and ln.endswith("one of: a, b") for ln in lines)
    assert any(ln.split() == ["experiment=null", "one", "of:", "mine"] for ln in lines)
    assert "_target_" not in text and "hydra.run" not in text and "job_logging" not in text


@pytest.mark.parametrize(
    ("entry", "present", "absent"),
    [
        ("infer.py", ["python infer.py method=deepres", "input.map=null", "method=deepres", "output.dir"],
         ["trainer=", "logger=", "groundtruth", "experiment="]),
        ("train.py", ["Train a resolution net", "trainer=cpu", "ckpt_path=null", "experiment=default"],
         ["input.map", "method=", "groundtruth", "quick"]),
        ("bench.py", ["Ground-truth benchmark", "output_dir=", "groundtruth.n_models", "quick"],
         ["input.map", "trainer=", "smoke"]),
    ],
)
def test_entry_point_help_is_its_own(entry, present, absent, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo))
    proc = subprocess.run([sys.executable, str(repo / entry), "--help"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    for word in present:
        assert word in proc.stdout, word
    for word in absent:
        assert word not in proc.stdout, word
    assert not list(tmp_path.iterdir())  # --help writes nothing
