"""ChimeraX scripts reference the right files with paths that survive moving the folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from locres.report.chimerax import chimerax_script, palette_spec, relative_path, surface_level


def _opened(text: str) -> list[str]:
    return [ln.split(maxsplit=1)[1].strip('"') for ln in text.splitlines() if ln.startswith("open ")]


def test_script_opens_map_then_resolution_and_colours_by_it(tmp_path):
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "emd 1.mrc").write_bytes(b"x")
    out = tmp_path / "runs" / "out"
    out.mkdir(parents=True)
    rel = relative_path(tmp_path / "maps" / "emd 1.mrc", out)
    assert rel == "../../maps/emd 1.mrc"
    text = chimerax_script(rel, "deepres.mrc", level=0.5, range_a=(3.0, 7.0))
    assert _opened(text) == ["../../maps/emd 1.mrc", "deepres.mrc"]
    assert 'open "../../maps/emd 1.mrc"' in text  # quoted because of the space
    assert "color sample #1 map #2 palette 3.00,blue:" in text and ":7.00,red" in text
    assert "volume #2 hide" in text and "level 0.5" in text
    # move the whole tree: the relative paths still resolve from the script's folder
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    shutil.copytree(tmp_path, moved)
    for p in _opened(text)[:1]:
        assert (moved / "runs" / "out" / p).resolve() == (moved / "maps" / "emd 1.mrc").resolve()
    shutil.rmtree(moved)


def test_palette_spans_range_in_order():
    spec = palette_spec(2.5, 6.5)
    values = [float(item.split(",")[0]) for item in spec.split(":")]
    assert values[0] == 2.5 and values[-1] == 6.5 and values == sorted(values)


def test_surface_level_encloses_mask_volume(rng):
    data = rng.standard_normal((20, 20, 20)).astype(np.float32)
    mask = np.zeros(data.shape, bool)
    mask.flat[:800] = True  # 10% of the box
    level = surface_level(data, mask)
    assert np.mean(data > level) == pytest.approx(0.1, abs=0.005)
