"""Atomic models through gemmi: first model, no hydrogens or waters, ligands optional, clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import gemmi
import pytest

from locres.errors import LocresError
from locres.io.models import entry_id, is_model_file, read_structure

PDB = """\
MODEL        1
ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00  0.00           N
ATOM      2  CA  ALA A   1      11.639   6.071  -5.147  1.00  0.00           C
ATOM      3  H   ALA A   1      10.500   6.500  -6.800  1.00  0.00           H
ATOM      4  C   ALA A   1      13.135   5.919  -5.207  1.00  0.00           C
HETATM    5  C1  LIG A 101      14.000   7.000  -4.000  1.00  0.00           C
HETATM    6  O   HOH A 201      15.000   8.000  -3.000  1.00  0.00           O
ENDMDL
MODEL        2
ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00  0.00           N
ATOM      2  CA  ALA A   1      11.639   6.071  -5.147  1.00  0.00           C
ENDMDL
END
"""


def _names(st: gemmi.Structure) -> list[str]:
    return [f"{cra.residue.name}:{cra.atom.name}" for cra in st[0].all()]


def test_first_model_without_hydrogens_waters_and_ligands(tmp_path):
    path = tmp_path / "toy.pdb"
    path.write_text(PDB)
    st = read_structure(path)
    assert len(st) == 1
    assert _names(st) == ["ALA:N", "ALA:CA", "ALA:C"]
    with_lig = read_structure(path, keep_ligands=True)
    assert _names(with_lig) == ["ALA:N", "ALA:CA", "ALA:C", "LIG:C1"]


def test_gzipped_and_mmcif_give_the_same_atoms(tmp_path):
    plain = tmp_path / "toy.pdb"
    plain.write_text(PDB)
    gz = tmp_path / "toy.pdb.gz"
    gz.write_bytes(gzip.compress(PDB.encode()))
    cif = tmp_path / "toy.cif"
    read_structure(plain).make_mmcif_document().write_file(str(cif))
    ref = _names(read_structure(plain))
    assert _names(read_structure(gz)) == ref
    assert _names(read_structure(cif)) == ref


@pytest.mark.shared
def test_every_shared_model_reads(shared_data):
    paths = sorted(p for p in (shared_data / "models").iterdir() if is_model_file(p))
    assert len(paths) == 83
    for p in paths:
        st = read_structure(p)
        assert len(st) == 1 and st[0].count_atom_sites() > 0
        assert not any(cra.atom.is_hydrogen() for cra in st[0].all())
        assert not any(cra.residue.is_water() for cra in st[0].all())


def test_bad_models(tmp_path):
    with pytest.raises(LocresError, match="not found"):
        read_structure(tmp_path / "missing.pdb")
    junk = tmp_path / "junk.cif"
    junk.write_text("data_x\nloop_\n_this.is\n'broken\n")
    with pytest.raises(LocresError):
        read_structure(junk)
    only_water = tmp_path / "water.pdb"
    water = "HETATM    1  O   HOH A 201      15.000   8.000  -3.000  1.00  0.00           O\nEND\n"
    only_water.write_text(water)
    with pytest.raises(LocresError, match="no non-hydrogen"):
        read_structure(only_water)


def test_entry_ids_and_suffixes():
    assert entry_id("1ABC.cif.gz") == "1abc"
    assert entry_id(Path("/x/d1asha_.pdb")) == "d1asha_"
    assert is_model_file("8tim.pdb.gz") and is_model_file("x.mmcif") and not is_model_file("map.mrc")
