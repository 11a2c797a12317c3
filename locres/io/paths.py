"""Paths as they are written into results: relative, so no file names the machine it was made on."""

from __future__ import annotations

import os


def portable_path(path: str | os.PathLike, start: str | os.PathLike = ".") -> str:
    """``path`` relative to ``start`` (default: the working directory), normalised.

    For what goes into committed or shared files (benchmark results, checkpoint metadata): a path
    under or beside the repository becomes e.g. ``../shared/data/models`` instead of the absolute
    path of this machine. Pure path arithmetic; nothing is read.

    Parameters
    ----------
    path : a file or folder, absolute or relative to the working directory.
    start : the folder the result is relative to (the repository, a run directory).
    """
    return os.path.relpath(os.path.abspath(path), os.path.abspath(start))
