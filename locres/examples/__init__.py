"""Bundled example data (EMD-3488), used by ``make demo`` and the tests."""

from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent
EMD_3488_MAP = EXAMPLES_DIR / "emd_3488" / "emd_3488.mrc"
EMD_3488_MASK = EXAMPLES_DIR / "emd_3488" / "emd_3488_contour_mask.mrc"
EMD_3488_MODEL = EXAMPLES_DIR / "emd_3488" / "5me2.pdb"
EMD_3488_RESOLUTION_A = 3.2
