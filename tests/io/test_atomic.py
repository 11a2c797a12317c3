"""The one atomic writer: whole file or the old one, nothing left behind on failure, normal permissions."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from locres.io.atomic import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_npz


def test_writes_create_folder_and_replace(tmp_path):
    out = tmp_path / "sub" / "a.json"
    atomic_write_json(out, {"b": 1, "a": [1, 2]}, sort_keys=True)
    assert json.loads(out.read_text()) == {"a": [1, 2], "b": 1}
    assert out.read_text().index('"a"') < out.read_text().index('"b"')
    atomic_write_bytes(out, b"new")
    assert out.read_bytes() == b"new"
    arrays = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array([3])}
    atomic_write_npz(tmp_path / "s.npz", arrays)
    with np.load(tmp_path / "s.npz") as z:
        assert np.array_equal(z["x"], arrays["x"]) and z["x"].dtype == np.float32 and int(z["n"][0]) == 3
    assert sorted(os.listdir(tmp_path)) == ["s.npz", "sub"] and os.listdir(tmp_path / "sub") == ["a.json"]


def test_failure_keeps_old_file_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "model.pt"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert out.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.pt"]


def test_permissions_follow_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o640  # 0666 & ~umask, not mkstemp's 0600
