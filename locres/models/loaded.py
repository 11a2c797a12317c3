"""A loaded network and what it was trained for, as the methods receive it (no file, no reader here).

:class:`LoadedModel` is built by :func:`locres.io.checkpoints.load_model` and handed by the pipeline to
``run(inputs, model=...)`` of every method module that declares ``NEEDS_MODEL = True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


@dataclass
class LoadedModel:
    """A network in eval mode on its device, with its checkpoint metadata.

    Attributes
    ----------
    net : torch.nn.Module
        The network, eval mode, on the device it was loaded on.
    meta : dict
        ``net_config`` (dict with ``_target_``), ``voxel_size_a`` (the model grid, Angstrom),
        ``resolution_range_a`` ([lo, hi] Angstrom, the trained range), ``kind`` (``"lightning"`` or
        ``"slim"``), ``path`` (the checkpoint as given) and, when the file has them, ``metrics``.
    """

    net: nn.Module
    meta: dict = field(default_factory=dict)

    @property
    def voxel_size_a(self) -> float:
        """The model grid's voxel size (Angstrom)."""
        return float(self.meta["voxel_size_a"])

    @property
    def resolution_range_a(self) -> tuple[float, float]:
        """The trained range [lo, hi] (Angstrom)."""
        lo, hi = self.meta["resolution_range_a"]
        return float(lo), float(hi)

    @property
    def path(self) -> str | None:
        """The checkpoint file it came from, as given (None when built in memory)."""
        return self.meta.get("path")
