"""Large temporaries without page faults: ask glibc to keep freed memory for reuse.

glibc hands every allocation above its mmap threshold (32 MiB at most) straight back to the kernel when
it is freed, so the next temporary of that size is page-faulted in again and zeroed by the kernel. The
numerical methods make many: each FFT, product and square of a 128 x 512 x 512 tomogram is a fresh
134-268 MB array, and on the development machine the faults cost as much as the arithmetic (an
element-wise product 98 ms fresh, 22 ms into a reused buffer; MonoTomo on 64 x 256 x 256 3.8 s -> 2.4 s
with this setting, the same answers). :func:`reuse_freed_memory` makes glibc serve large blocks from its
heap and keep up to ``keep_bytes`` of freed memory mapped. The entry points (``infer.py``, ``train.py``,
``bench.py``, the benchmark scripts) call it; importing locres changes nothing. A no-op where the C
library is not glibc (macOS, Windows, musl) or when ``LOCRES_SYSTEM_MALLOC=1`` is set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_DONE: list[bool] = []


def reuse_freed_memory(keep_bytes: int = 1 << 30) -> bool:
    """Serve large allocations from the heap and keep ``keep_bytes`` freed for reuse (glibc only).

    Returns True when the setting is in force in this process (also on a second call), False where it
    cannot be applied or is switched off by ``LOCRES_SYSTEM_MALLOC=1``.
    """
    if _DONE:
        return _DONE[0]
    ok = False
    if os.environ.get("LOCRES_SYSTEM_MALLOC", "") not in ("1", "true", "yes"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            gnu = getattr(libc, "gnu_get_libc_version", None)
            if gnu is not None and hasattr(libc, "mallopt"):
                ok = bool(libc.mallopt(M_MMAP_MAX, 0))
                ok = ok and bool(libc.mallopt(M_TRIM_THRESHOLD, int(keep_bytes)))
        except (OSError, AttributeError):
            ok = False
    _DONE.append(ok)
    return ok
