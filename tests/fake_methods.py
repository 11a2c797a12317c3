"""A small, deterministic stand-in estimator for the inference tests (no other method needed).

``fake`` reads the apparent resolution of a map from its local spectrum: the ratio of the locally
averaged squared Laplacian to the locally averaged squared density gives a local frequency
``f = (<(lap m)^2> / <m^2>)^(1/4) / (2 pi)`` (1/A); resolution = 1/f clamped to [2 voxels, 30 A].
Sharpening raises f (finer), blurring lowers it (coarser) -- the property the sharpening check needs.
Without a mask it thresholds the smoothed map (mean + 1 sd) and returns that mask.

Use :func:`install` (in-process, e.g. with monkeypatch) or run this file as a script:
``python tests/fake_methods.py [infer.py overrides]`` runs infer.py with ``fake`` registered.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
NAME = "fake"
INPUTS = "map_or_halves"


def run(inputs, sigma_voxels: float = 2.0, fail: bool = False, extra: bool = True):
    from locres.core.fourier import frequency_grid_per_a
    from locres.errors import LocresError
    from locres.methods import LocalResolution

    if fail:
        raise LocresError("fake failure requested")
    m = inputs.average_map().astype(np.float64)
    m = (m - m.mean()) / (m.std() + 1e-12)
    v = inputs.voxel_size_a
    spectrum = np.fft.rfftn(m)
    f2 = frequency_grid_per_a(m.shape, v) ** 2
    lap = np.fft.irfftn(spectrum * (-4 * np.pi**2 * f2), s=m.shape)  # exact (Fourier) Laplacian
    l2 = ndimage.gaussian_filter(lap * lap, sigma_voxels)
    m2 = ndimage.gaussian_filter(m * m, sigma_voxels)
    freq = (l2 / np.maximum(m2, 1e-12)) ** 0.25 / (2 * np.pi)
    res = np.clip(1.0 / np.maximum(freq, 1e-6), 2.0 * v, 30.0)
    mask = inputs.mask
    made = None
    if mask is None:
        sm = ndimage.gaussian_filter(m, 1.5)
        mask = made = sm > sm.mean() + sm.std()
    out = np.where(mask, res, 0.0).astype(np.float32)
    extras = {"local_frequency": np.where(mask, freq, 0).astype(np.float32)} if extra else {}
    return LocalResolution(
        resolution_a=out, extra_maps=extras, mask=made, info={"parameters": {"sigma_voxels": sigma_voxels}}
    )


def install() -> None:
    """Register ``fake`` as a method in this process (``locres.methods.METHOD_NAMES`` + sys.modules)."""
    import locres.methods as registry

    sys.modules["locres.methods.fake"] = sys.modules[__name__]
    if "fake" not in registry.METHOD_NAMES:
        registry.METHOD_NAMES = (*registry.METHOD_NAMES, "fake")


def config_dir_with_fake(dest: Path) -> Path:
    """A copy of configs/ with configs/method/fake.yaml added; returns its path."""
    cfg = Path(dest) / "configs"
    shutil.copytree(REPO / "configs", cfg, dirs_exist_ok=True)
    (cfg / "method" / "fake.yaml").write_text("name: fake\nsigma_voxels: 2.0\nfail: false\nextra: true\n")
    return cfg


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    install()
    sys.modules["fake_methods"] = sys.modules[__name__]
    from locres.cli import run_cli
    from locres.pipeline import infer_from_config

    with tempfile.TemporaryDirectory() as tmp:
        cfg_dir = config_dir_with_fake(Path(tmp))
        run_cli(
            lambda cfg: print(infer_from_config(cfg, config_dir=cfg_dir)["table"]),
            config_name="infer",
            config_dir=cfg_dir,
        )
