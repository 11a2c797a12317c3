"""The only code that touches disk: maps (mrcfile), atomic models (gemmi), checkpoints."""

from locres.io.maps import read_map, write_map
from locres.io.models import read_structure

__all__ = ["read_map", "write_map", "read_structure"]
