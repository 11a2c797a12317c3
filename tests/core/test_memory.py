"""The allocator setting: applied once, idempotent, switched off by the environment, results unchanged."""

from __future__ import annotations

import subprocess
import sys

import numpy as np


def _run(code: str, env_extra: dict | None = None) -> str:
    import os

    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


def test_reuse_freed_memory_is_idempotent_and_can_be_switched_off():
    code = ("from locres.core.memory import reuse_freed_memory as r; a = r(); b = r(); "
            "print(a, b, type(a).__name__)")
    first, second, kind = _run(code).split()
    assert kind == "bool" and first == second
    if sys.platform.startswith("linux"):
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert first == "True"
    assert _run(code, {"LOCRES_SYSTEM_MALLOC": "1"}).split()[:2] == ["False", "False"]


def test_large_temporaries_keep_their_values_under_the_setting():
    code = ("import numpy as np; from locres.core.memory import reuse_freed_memory as r; r(); "
            "rng = np.random.default_rng(0); a = rng.standard_normal(2_000_000); "
            "s = [float(np.fft.irfft(np.fft.rfft(a * k)).sum()) for k in range(1, 4)]; print(*s)")
    with_setting = np.array(_run(code).split(), float)
    without = np.array(_run(code, {"LOCRES_SYSTEM_MALLOC": "1"}).split(), float)
    np.testing.assert_array_equal(with_setting, without)
