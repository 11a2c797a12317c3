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
