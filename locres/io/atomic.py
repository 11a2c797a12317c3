"""Atomic file writes: a temporary file beside the target, then one rename.

A reader (or a resumed run) sees either the old file or the whole new one, never a half-written one,
and a failure leaves nothing behind. Every writer of locres goes through :func:`atomic_path`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else remove it.

    The temporary file is hidden (``.NAME.XXXX.part``), in the same folder (so the rename is atomic),
    and gets the permissions a plain ``open`` would give ``path`` (``mkstemp`` alone gives 0600).
    The folder is created when missing.

    Examples
    --------
    >>> with atomic_path("out/model.pt") as tmp:  # doctest: +SKIP
    ...     torch.save(blob, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, indent: int = 1, sort_keys: bool = False) -> None:
    """``json.dump`` ``obj`` to ``path`` atomically (a trailing newline)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n")


def atomic_write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` of ``arrays`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
