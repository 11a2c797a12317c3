"""portable_path: results name paths relative to the repository or the run, never this machine's."""

from __future__ import annotations

import os

from locres.io.paths import portable_path


def test_relative_to_start(tmp_path):
    repo, shared = tmp_path / "main", tmp_path / "shared" / "data" / "models"
    assert portable_path(shared, repo) == os.path.join("..", "shared", "data", "models")
    assert portable_path(repo / "runs" / "x" / "last.ckpt", repo / "runs" / "x") == "last.ckpt"
    # an un-normalised path (main/../shared) comes out normalised
    assert portable_path(str(repo) + "/../shared/data/models", repo) == os.path.join("..", "shared", "data",
                                                                                   "models")


def test_default_start_is_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert portable_path(tmp_path / "a" / "b.mrc") == os.path.join("a", "b.mrc")
    assert portable_path("a/./b.mrc") == os.path.join("a", "b.mrc")
