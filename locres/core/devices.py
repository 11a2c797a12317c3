"""One device resolver for the whole library: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

The entry points resolve the device once (:func:`resolve_device`) and hand the resolved name to the
methods, which resolve it again harmlessly: a resolved name maps to itself, so a device that passes at
the edge works everywhere, and one that cannot work is refused at the edge with a one-line error.
"""

from __future__ import annotations

import re

from locres.errors import LocresError

_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(device: str | None) -> str:
    """The torch device name to run on.

    Parameters
    ----------
    device : ``None`` or ``"auto"`` (a CUDA GPU when torch sees one, else the CPU), ``"cpu"``,
        ``"cuda"`` or ``"cuda:N"``.

    Returns
    -------
    ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. Raises :class:`LocresError` for an unknown name, CUDA without
    a visible GPU, or a GPU index beyond those visible.
    """
    name = str(device or "auto").strip().lower()
    if not _PATTERN.match(name):
        raise LocresError(f"unknown device '{device}': use device=auto, cpu, cuda or cuda:N")
    if name == "cpu":
        return "cpu"
    import torch

    has_cuda = torch.cuda.is_available()
    if name == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise LocresError(f"device={name} but no CUDA GPU is visible to torch; use device=cpu or device=auto")
    if ":" in name:
        index, count = int(name.split(":")[1]), torch.cuda.device_count()
        if index >= count:
            raise LocresError(f"device={name} but torch sees {count} GPU(s) (cuda:0..cuda:{count - 1})")
    return name
