"""Advise: inspect a method's inputs before it runs (:mod:`locres.advisories`), log what was found.

:func:`method_advisories` hands the checked arrays to :func:`locres.advisories.advise` with what the
method needs checked (its name for the room rule; a learned model's trained range, read from its
checkpoint). The findings go to the log (warnings) and, through the caller, into ``NAME.json`` under
``advisories`` and into ``compare.json``/``compare.png``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from locres.advisories import NOISE_MARGIN_PX, Advisory, advise
from locres.pipeline.inputs import LoadedInputs

log = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def _checkpoint_range_a(path: str) -> tuple[float, float] | None:
    from locres.io.checkpoints import load_deepres

    _, meta = load_deepres(path)
    rng = meta.get("resolution_range_a")
    return (float(rng[0]), float(rng[1])) if rng else None


def trained_range_a(name: str, params: Mapping[str, Any]) -> tuple[float, float] | None:
    """The (finest, coarsest) Angstrom a learned method was trained on, or None (analytical, or unreadable:
    the method itself then reports the checkpoint problem)."""
    if name != "deepres":
        return None
    try:
        from locres.methods.deepres import DEFAULT_CHECKPOINT

        return _checkpoint_range_a(str(params.get("checkpoint") or DEFAULT_CHECKPOINT))
    except Exception as exc:  # noqa: BLE001 - a bad checkpoint is the method's error to report
        log.debug("no trained range for %s: %s", name, exc)
        return None


def method_advisories(name: str, loaded: LoadedInputs, params: Mapping[str, Any],
                      cache: dict | None = None) -> list[Advisory]:
    """Advisories for running method ``name`` on ``loaded`` (logged as warnings); ``cache`` (a dict kept
    by the caller) reuses the result between methods that need the same checks."""
    inp = loaded.inputs
    trained = trained_range_a(name, params)
    room = name if (name in NOISE_MARGIN_PX and not inp.has_halves) else None
    key = (room, trained)
    if cache is not None and key in cache:
        found = cache[key]
    else:
        found = advise(inp.map, inp.voxel_size_a, half1=inp.half1, half2=inp.half2, mask=inp.mask,
                       method=room, trained_range_a=trained)
        if cache is not None:
            cache[key] = found
    for a in found:
        log.warning("advisory for %s (%s): %s", name, a.code, a.message)
    return found
