"""Shared fixtures: seeds, the ../shared data folder (skipped cleanly when absent), temporary outputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LOCRES_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    skip_shared = pytest.mark.skip(reason=f"shared data not found at {SHARED_DATA}")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "shared" in item.keywords and not SHARED_DATA.is_dir():
            item.add_marker(skip_shared)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; tests using it are skipped where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _limit_threads():
    try:
        import torch

        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    except ImportError:  # pragma: no cover
        pass
    yield


@pytest.fixture(scope="session")
def shards_dir(tmp_path_factory) -> Path:
    """A tiny data_prep-like shard folder: one synthetic structure per split (ids chosen by split)."""
    from locres.data.shards import FORMAT, views_to_arrays
    from locres.data.simulated import View
    from locres.data.splits import split_of
    from locres.io.atomic import atomic_write_json, atomic_write_npz
    from locres.simulate.phantom import molecule_mask, synthetic_density

    d = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    want, shards, i = {"train": 2, "val": 1, "test": 1}, {}, 0
    while any(want.values()):
        e = f"s{i:03d}"
        i += 1
        if not want[split_of(e)]:
            continue
        want[split_of(e)] -= 1
        dens = synthetic_density((30, 28, 32), 1.0, rng)
        view = View(density=dens, mask=molecule_mask(dens, 1.0), voxel_size_sim_a=1.0, rotation=np.eye(3))
        arrays = views_to_arrays(e, 1.0, [view], [dens[None]], [view.mask], np.array([[5.0]]),
                                 np.array([[0.0]]))
        atomic_write_npz(d / f"{e}.npz", arrays)
        shards[e] = {"file": f"{e}.npz", "views": 1}
    atomic_write_json(d / "manifest.json", {"format": FORMAT, "shards": shards, "failures": {},
                                            "recipe": {}})
    return d
