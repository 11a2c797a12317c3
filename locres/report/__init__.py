"""Reports for local-resolution maps: JSON summaries, pictures, ChimeraX scripts, comparisons.

Pure functions of arrays that return dicts, text or PNG bytes; :mod:`locres.pipeline.outputs` writes them.
"""

from locres.report.compare import compare_maps
from locres.report.sharpening import sharpening_check
from locres.report.summary import resolution_stats, summary_table

__all__ = ["compare_maps", "resolution_stats", "sharpening_check", "summary_table"]
