"""The package layering of DESIGN.md, read from the source with ``ast`` (nothing is imported or run).

Every ``import locres.X...`` / ``from locres.X... import`` anywhere in a module (function-local imports
included) is an edge from the module's package to package ``X``. The disk layer (``io``) stays out of
the numerics; ``models`` knows no dataset; no two packages import each other, directly or round a loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LOCRES = Path(__file__).resolve().parents[1] / "locres"
FORBIDDEN = {  # package -> packages it must not import
    "methods": {"io", "pipeline", "bench", "data", "training", "cli"},
    "models": {"io", "data", "methods", "pipeline", "bench", "training", "cli"},
    "simulate": {"io", "methods", "pipeline", "bench", "data", "training", "cli"},
    "core": {"io", "simulate", "methods", "models", "data", "report", "pipeline", "bench", "training"},
    "report": {"io", "pipeline", "bench", "training", "cli"},
}


def _package(path: Path, root: Path = LOCRES) -> str:
    """``locres/methods/fsc.py`` -> ``methods``; ``locres/cli.py`` -> ``cli``."""
    rel = path.relative_to(root)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else "locres"


def _imported_packages(path: Path, root: Path = LOCRES) -> set[str]:
    """The locres packages a module imports (absolute or relative), anywhere in its body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = ["locres", *path.relative_to(root).with_suffix("").parts]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here[: len(here) - node.level]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names += [mod, *(f"{mod}.{a.name}" for a in node.names)]  # from locres import data
    parts = [n.split(".") for n in names]
    return {p[1] for p in parts if p[0] == "locres" and len(p) > 1 and not p[1].startswith("_")}


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(LOCRES.rglob("*.py")):
        pkg = _package(path)
        graph.setdefault(pkg, set()).update(p for p in _imported_packages(path) if p != pkg)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walker_sees_imports_of_every_kind(tmp_path):
    """Known answer on a small fake package: absolute, from-, relative and function-local imports."""
    root = tmp_path / "locres"
    (root / "methods").mkdir(parents=True)
    (root / "methods" / "a.py").write_text(
        "import locres.core.maps\nfrom locres.io import read_map\nfrom ..report import plots\n"
        "def f():\n    from locres import data, __version__\n    import numpy\n"
    )
    assert _imported_packages(root / "methods" / "a.py", root) == {"core", "io", "report", "data"}
    assert _package(root / "methods" / "a.py", root) == "methods"
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_forbidden_imports(package):
    bad = {}
    for path in sorted((LOCRES / package).rglob("*.py")):
        hit = _imported_packages(path) & FORBIDDEN[package]
        if hit:
            bad[str(path.relative_to(LOCRES.parent))] = sorted(hit)
    assert not bad, f"{package} imports what it must not: {bad}"


def test_no_cycle_between_packages():
    graph = _graph()
    assert {"core", "io", "methods", "models", "pipeline"} <= set(graph)
    assert _cycles(graph) == []
