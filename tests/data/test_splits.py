"""Fixed split by entry id: deterministic, disjoint, independent of folder contents."""

from __future__ import annotations

import pytest

from locres.data.splits import SPLITS, model_files, split_entries, split_model_files, split_of
from locres.errors import LocresError


def test_split_is_deterministic_and_disjoint():
    ids = [f"{i}abc" for i in range(400)]
    a = split_entries(ids)
    b = split_entries(list(reversed(ids)))
    assert a == b
    seen = [e for s in SPLITS for e in a[s]]
    assert sorted(seen) == sorted(ids)  # every id in exactly one split
    # fractions near the requested 80/10/10 (400 ids: binomial sd ~ 6)
    assert 290 <= len(a["train"]) <= 350
    assert 20 <= len(a["val"]) <= 60 and 20 <= len(a["test"]) <= 60


def test_split_of_an_entry_does_not_depend_on_other_entries():
    alone = split_of("1tim")
    assert split_entries(["1tim", "8tim", "1aki"])[alone].count("1tim") == 1
    assert split_of("1TIM") == alone  # case-insensitive ids


def test_bad_fractions_and_folders(tmp_path):
    with pytest.raises(LocresError):
        split_of("1abc", 0.6, 0.5)
    with pytest.raises(LocresError, match="not found"):
        model_files(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(LocresError, match="no atomic models"):
        model_files(tmp_path)


@pytest.mark.shared
def test_shared_models_split(shared_data):
    groups = split_model_files(shared_data / "models")
    n = sum(len(v) for v in groups.values())
    assert n == 83
    assert all(len(groups[s]) >= 5 for s in ("val", "test"))
