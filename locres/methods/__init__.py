"""One module per estimator; each exposes pure numerical functions plus a ``run`` adapter.

Every method module defines

- ``NAME``: the method name used on the command line (``method=NAME``);
- ``INPUTS``: ``"map"`` (one map), ``"halves"`` (two half maps), ``"map_or_halves"`` or
  ``"map_and_model"`` (the map plus a fitted atomic model, as its simulated density and footprint);
- ``run(inputs: MethodInputs, key=default, ...) -> LocalResolution``: the adapter the pipeline calls,
  with the keys of ``configs/method/NAME.yaml`` as its keyword parameters (the pipeline refuses any
  other key in one line, :func:`locres.pipeline.execute.check_parameters`; a ``run(inputs, **params)``
  is checked against the config file's keys);
- optionally ``NEEDS_MODEL = True`` and ``default_checkpoint(inputs) -> Path``: the method runs a trained
  network; the pipeline loads ``method.checkpoint`` (else the default for these inputs) and calls
  ``run(inputs, model=LoadedModel, ...)`` (:class:`locres.models.loaded.LoadedModel`).

The numerical functions take arrays, loaded networks and ``voxel_size_a`` and never open files or read
configs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from locres.errors import LocresError

METHOD_NAMES = ("deepres", "blocres", "resmap", "monores", "monodir", "monotomo", "dfsc", "modelfsc")


@dataclass
class MethodInputs:
    """Arrays on one grid, (z, y, x) float32, with the voxel size in Angstrom.

    ``map`` is the map to analyse (the half-map average when only halves were given); ``half1`` and
    ``half2`` are None for a single map; ``mask`` is a bool array or None (a method then makes its own).
    ``model_map`` is a fitted atomic model's density simulated on the same grid and ``model_footprint``
    the bool voxels near its atoms (both None without a model; the pipeline makes them from
    ``input.model``).
    """

    voxel_size_a: float
    map: np.ndarray | None = None
    half1: np.ndarray | None = None
    half2: np.ndarray | None = None
    mask: np.ndarray | None = None
    device: str = "cpu"
    model_map: np.ndarray | None = None
    model_footprint: np.ndarray | None = None

    @property
    def has_halves(self) -> bool:
        return self.half1 is not None and self.half2 is not None

    @property
    def has_model(self) -> bool:
        return self.model_map is not None

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        for a in (self.map, self.half1):
            if a is not None:
                return tuple(a.shape)
        raise LocresError("no input map given: set input.map or input.half1 and input.half2")

    def average_map(self) -> np.ndarray:
        if self.map is not None:
            return self.map
        if self.has_halves:
            return 0.5 * (self.half1 + self.half2)
        raise LocresError("no input map given: set input.map or input.half1 and input.half2")


@dataclass
class LocalResolution:
    """What an estimator returns.

    ``resolution_a``: local resolution in Angstrom on the input grid; voxels not estimated hold 0.
    ``extra_maps``: further maps on the same grid (e.g. ``{"radial": ..., "anisotropy": ...}``), written
    as ``NAME_<key>.mrc``. ``info``: JSON-serialisable details (parameters used, thresholds, curves).
    ``mask``: the voxels the method estimated (bool), when it made or refined its own mask.
    """

    resolution_a: np.ndarray
    extra_maps: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    mask: np.ndarray | None = None


def get_method(name: str) -> ModuleType:
    """The module implementing method ``name`` (raises a one-line error for an unknown name)."""
    if name not in METHOD_NAMES:
        raise LocresError(f"unknown method '{name}': choose one of {', '.join(METHOD_NAMES)} or all")
    return importlib.import_module(f"locres.methods.{name}")


def methods_for_inputs(inputs: MethodInputs) -> list[str]:
    """Every method the given inputs allow (for ``method=all``)."""
    names = []
    for name in METHOD_NAMES:
        mod = get_method(name)
        needs = getattr(mod, "INPUTS", "map")
        if needs == "halves" and not inputs.has_halves:
            continue
        if needs == "map_and_model" and not inputs.has_model:
            continue
        if name == "monotomo":  # tomogram method: only asked for explicitly
            continue
        names.append(name)
    return names
