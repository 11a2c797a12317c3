"""Fixed train / validation / test split of atomic models by entry id.

The split is a pure function of the entry id (``locres.io.models.entry_id``: file name, lower case, without
suffix): the SHA-1 of ``salt + entry_id`` is read as a number in [0, 1); below ``1 - val - test`` is
train, then validation, then test. It never depends on which other files are in the folder, on their
order or on the machine, so a structure stays in the same split when the folder grows, and no structure
ever contributes boxes to two splits. ``SPLIT_SALT`` is part of the recipe: changing it makes a new split.

With the 83 models of ``../shared/data/models`` and the default fractions (0.1, 0.1) this gives the
lists that ``python -m locres.data.splits DIR`` prints.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from locres.errors import LocresError
from locres.io.models import entry_id, is_model_file

SPLIT_SALT = "locres-split-v1:"
SPLITS = ("train", "val", "test")


def split_fraction(entry: str, salt: str = SPLIT_SALT) -> float:
    """A stable number in [0, 1) for an entry id (SHA-1 based)."""
    digest = hashlib.sha1((salt + entry.lower()).encode()).hexdigest()
    return int(digest[:12], 16) / float(16**12)


def split_of(entry: str, val_fraction: float = 0.1, test_fraction: float = 0.1,
             salt: str = SPLIT_SALT) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for an entry id."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise LocresError(
            f"split fractions must be in [0, 1) and sum below 1, got val={val_fraction} test={test_fraction}"
        )
    u = split_fraction(entry, salt)
    if u < 1.0 - val_fraction - test_fraction:
        return "train"
    if u < 1.0 - test_fraction:
        return "val"
    return "test"


def split_entries(
    entries: Iterable[str], val_fraction: float = 0.1, test_fraction: float = 0.1, salt: str = SPLIT_SALT
) -> dict[str, list[str]]:
    """Entry ids grouped by split (each list sorted)."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for e in sorted(set(entries)):
        out[split_of(e, val_fraction, test_fraction, salt)].append(e)
    return out


def model_files(models_dir: str | os.PathLike) -> list[Path]:
    """Atomic-model files in a folder (sorted); raises a one-line error for a missing or empty folder."""
    d = Path(models_dir)
    if not d.is_dir():
        raise LocresError(f"models folder not found: {d} (set models_dir to a folder of PDB/mmCIF files)")
    files = sorted(p for p in d.iterdir() if p.is_file() and is_model_file(p))
    if not files:
        raise LocresError(f"models folder {d} holds no atomic models (.pdb, .cif, .ent, optionally .gz)")
    return files


def split_model_files(
    models_dir: str | os.PathLike, val_fraction: float = 0.1, test_fraction: float = 0.1,
    salt: str = SPLIT_SALT,
) -> dict[str, list[Path]]:
    """Model files of a folder grouped by split."""
    out: dict[str, list[Path]] = {s: [] for s in SPLITS}
    for p in model_files(models_dir):
        out[split_of(entry_id(p), val_fraction, test_fraction, salt)].append(p)
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the split of a models folder: ``python -m locres.data.splits DIR``."""
    argv = sys.argv[1:] if argv is None else argv
    groups = split_model_files(argv[0] if argv else "../shared/data/models")
    for name in SPLITS:
        ids = [entry_id(p) for p in groups[name]]
        print(f"{name} ({len(ids)}): {' '.join(ids)}")


if __name__ == "__main__":
    main()
