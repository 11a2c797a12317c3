"""Atomic models (PDB / mmCIF, gzipped too) through gemmi."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import gemmi

from locres.errors import LocresError

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".pdb", ".cif", ".mmcif", ".ent", ".pdb.gz", ".cif.gz", ".mmcif.gz", ".ent.gz")


def is_model_file(path: str | os.PathLike) -> bool:
    name = Path(path).name.lower()
    return any(name.endswith(s) for s in MODEL_SUFFIXES)


def read_structure(path: str | os.PathLike, keep_ligands: bool = False) -> gemmi.Structure:
    """Read an atomic model: first model only, hydrogens and waters dropped, ligands optional.

    Raises :class:`LocresError` when the file is missing, unreadable or holds no atoms.
    """
    p = Path(path)
    if not p.exists():
        raise LocresError(f"atomic model not found: {p}")
    try:
        st = gemmi.read_structure(str(p), merge_chain_parts=True)
    except Exception as exc:  # gemmi raises RuntimeError/ValueError on bad files
        raise LocresError(f"cannot read atomic model {p}: {exc}") from None
    if len(st) == 0:
        raise LocresError(f"atomic model {p} holds no models")
    while len(st) > 1:
        del st[len(st) - 1]
    st.setup_entities()
    st.remove_hydrogens()
    if keep_ligands:
        st.remove_waters()
    else:
        st.remove_ligands_and_waters()
    st.remove_empty_chains()
    if st[0].count_atom_sites() == 0:
        raise LocresError(f"atomic model {p} holds no non-hydrogen, non-water atoms")
    return st


def entry_id(path: str | os.PathLike) -> str:
    """Entry id from a file name (``1ABC.cif.gz`` -> ``1abc``), used for fixed splits."""
    name = Path(path).name.lower()
    for s in sorted(MODEL_SUFFIXES, key=len, reverse=True):
        if name.endswith(s):
            return name[: -len(s)]
    return Path(path).stem.lower()
