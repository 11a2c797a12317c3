"""OutputStage: every file appears at once on success; a failure leaves nothing behind."""

from __future__ import annotations

import pytest

from locres.errors import LocresError
from locres.pipeline.outputs import OutputStage


def test_success_moves_every_file_in_place(tmp_path):
    out = tmp_path / "new" / "out"
    with OutputStage(out) as stage:
        stage.path("a.json").write_text("{}")
        stage.path("b.mrc").write_bytes(b"x" * 10)
        assert not (out / "a.json").exists()  # nothing visible before the end
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "b.mrc"]  # no staging folder left


def test_failure_leaves_nothing_and_removes_a_folder_it_made(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), OutputStage(out) as stage:
        stage.path("a.json").write_text("{}")
        raise RuntimeError("the method failed")
    assert not out.exists()


def test_failure_keeps_what_was_there_before(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.json").write_text("old")
    with pytest.raises(LocresError), OutputStage(out) as stage:
        stage.path("a.json").write_text("new")
        raise LocresError("bad input")
    assert [p.name for p in out.iterdir()] == ["a.json"] and (out / "a.json").read_text() == "old"


def test_refusals(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LocresError, match="is not a folder"), OutputStage(tmp_path / "file"):
        pass
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.json").write_text("old")
    with pytest.raises(LocresError, match="output.overwrite=false"), OutputStage(out, overwrite=False) as st:
        st.path("a.json")
    assert (out / "a.json").read_text() == "old" and [p.name for p in out.iterdir()] == ["a.json"]
