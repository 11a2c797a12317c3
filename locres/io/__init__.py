"""The only code that touches disk: maps (mrcfile), atomic models (gemmi), checkpoints."""

from locres.io.maps import MapGeometry, MapVolume, read_map, resample_onto, write_map
from locres.io.models import read_structure

__all__ = ["MapGeometry", "MapVolume", "read_map", "resample_onto", "write_map", "read_structure"]
