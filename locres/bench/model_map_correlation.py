"""How well a deposited model simulated in its map's frame matches the real map.

Run ``python -m locres.bench.model_map_correlation`` (needs ../shared/data); writes
``bench_results/model_map_correlation.json``. For each (map, model) pair the model is simulated on the
map's own grid (:func:`locres.simulate.density.simulate_map_in_frame`); both maps are low-passed to the
same resolution (EMDB maps are often sharpened, so the unfiltered map carries high-frequency power the
simulation cannot match) and correlated over the whole box and inside the model's footprint (voxels
within ``radius_a`` of an atom). A copy of the model shifted by 5 A is the baseline.
"""

from __future__ import annotations

import datetime
import json
import logging
import platform
import sys
from pathlib import Path

import gemmi
import numpy as np

from locres.core.fourier import lowpass_raised_cosine
from locres.io.atomic import atomic_write_bytes
from locres.io.maps import read_map
from locres.io.models import read_structure
from locres.simulate.density import model_footprint, simulate_map_in_frame

log = logging.getLogger(__name__)

PAIRS = (  # map, model, resolutions (A) to compare at
    ("emd_3488/emd_3488.mrc", "emd_3488/5me2.pdb", (None, 3.5, 4.5, 6.0, 8.0)),
    ("emd_3488/emd_3488.mrc", "emd_3488/5ni1_updated.cif", (None, 3.5, 6.0)),
    ("emd_5168/emd_5168.map", "emd_5168/3MFP.pdb", (None, 4.5, 6.0, 8.0, 10.0)),
    ("emd_2566_crop/2566_3J6B_9.mrc", "emd_2566_crop/3J6B_9.pdb", (None, 3.5, 6.0)),
)


def correlations(sim: np.ndarray, real: np.ndarray, voxel_size_a: float, footprint: np.ndarray,
                 resolution_a: float | None) -> dict[str, float]:
    """Pearson correlation of ``sim`` and ``real`` (both low-passed to ``resolution_a`` when given)."""
    if resolution_a is not None:
        sim = lowpass_raised_cosine(sim, voxel_size_a, resolution_a)
        real = lowpass_raised_cosine(real, voxel_size_a, resolution_a)
    whole = float(np.corrcoef(sim.ravel(), real.ravel())[0, 1])
    inside = float(np.corrcoef(sim[footprint], real[footprint])[0, 1])
    return {"whole_map": round(whole, 4), "footprint": round(inside, 4)}


def measure_pair(map_path: Path, model_path: Path, resolutions_a, shift_a: float = 5.0) -> dict:
    """Correlations of one (map, model) pair at each resolution, with the shifted-model baseline."""
    vol = read_map(map_path)
    st = read_structure(model_path)
    v = vol.voxel_size_a
    sim = simulate_map_in_frame(st, vol.geometry)
    shifted = st.clone()
    shifted[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(shift_a, 0.0, 0.0)))
    sim_shift = simulate_map_in_frame(shifted, vol.geometry)
    fp = model_footprint(st, vol.geometry)
    rows = []
    for r in resolutions_a:
        if r is not None and r < 2 * v:
            continue
        rows.append({
            "resolution_a": r,
            **correlations(sim, vol.data, v, fp, r),
            "baseline_shifted_footprint": correlations(sim_shift, vol.data, v, fp, r)["footprint"],
        })
    return {"map": map_path.name, "model": model_path.name, "voxel_size_a": round(v, 4),
            "shape_zyx": list(vol.data.shape), "footprint_fraction": round(float(fp.mean()), 4),
            "baseline": f"model shifted by {shift_a} A along x", "correlations": rows}


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:] if argv is None else argv
    repo = Path(__file__).resolve().parents[2]
    data = Path(argv[0]) if argv else repo.parent / "shared" / "data" / "maps"
    out = repo / "bench_results" / "model_map_correlation.json"
    results = [measure_pair(data / m, data / k, rs) for m, k, rs in PAIRS]
    report = {
        "what": "Pearson correlation of a deposited model simulated in its map's frame with the real map; "
                "both low-passed to resolution_a (null = unfiltered); footprint = voxels within 2.5 A "
                "of an atom",
        "command": "python -m locres.bench.model_map_correlation",
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.node()} {platform.machine()} {platform.processor()}".strip(),
        "pairs": results,
    }
    atomic_write_bytes(out, (json.dumps(report, indent=1) + "\n").encode())
    for p in results:
        for row in p["correlations"]:
            print(f"{p['map']:>22} {p['model']:>18} R={row['resolution_a']!s:>5}  "
                  f"whole {row['whole_map']:.3f}  "
                  f"footprint {row['footprint']:.3f}  (shifted {row['baseline_shifted_footprint']:.3f})")


if __name__ == "__main__":
    main()
