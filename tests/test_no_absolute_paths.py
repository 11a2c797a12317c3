"""No tracked text file names an absolute path of the machine it was made on (/work, /home, /tmp, ...)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# an absolute path starts a token: not after a letter, digit, dot, dash or slash (so a URL's
# "https://host/home/x", a relative "bench_results/tmp/" or "../shared" do not count)
ABSOLUTE = re.compile(r"(?<![\w.\-/~])/(work|home|tmp|root|Users)/")


def _tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in out.decode().split("\0") if name]


def _text(path: Path) -> str | None:
    """The file's text, or None for a binary file (a NUL byte in its first 8 kB) or a missing one."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def test_pattern_knows_absolute_from_relative():
    # built from parts, so that this file does not hold the paths it looks for
    roots = ["work/main", "tmp", "home/u", "root", "Users/me"]
    examples = [f"/{roots[0]}/x", f'"/{roots[1]}/a"', f"x=/{roots[2]}/y", f"(/{roots[3]}/y)",
                f"/{roots[4]}/z", f"'/{roots[4]}/'"]
    assert [s for s in examples if ABSOLUTE.search(s)] == examples
    misses = ["../shared/data", "/bench_results/tmp/", "https://example.org/home/x", "/proc/self/status",
              "runs/tmp7nsw7lh6", "~/work/x", "a/work/b"]
    assert [s for s in misses if ABSOLUTE.search(s)] == []


def test_tracked_text_files_hold_no_absolute_paths():
    bad = []
    files = _tracked_files()
    assert len(files) > 50
    for path in files:
        text = _text(path)
        if text is None:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            if ABSOLUTE.search(line):
                bad.append(f"{path.relative_to(REPO)}:{lineno}: {line.strip()[:120]}")
    assert not bad, "absolute paths in tracked files:\n" + "\n".join(bad[:20])
