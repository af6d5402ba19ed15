"""The package's layout rules: no import circle between modules, one manifest reader, one atomic write."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (module-level and function-level alike)."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                target = ".".join(base[: len(base) - node.level + 1] + [node.module or ""]) if node.level \
                    else node.module or ""
                targets = [target.rstrip(".")] + [f"{target.rstrip('.')}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]], skip: set[str]) -> list[str] | None:
    """An import circle among the modules not in ``skip`` (package __init__ files only re-export)."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node] - skip):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, path + [nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(set(graph) - skip):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


@pytest.mark.parametrize("package", ["osvos_plugin", "osvos_contract"])
def test_no_import_circle(package):
    graph = import_graph(REPO / package)
    inits = {name for name in graph if (REPO / Path(*name.split("."))).is_dir()}
    assert find_cycle(graph, inits) is None


def test_the_cycle_finder_finds_a_circle():
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": set()}
    assert find_cycle(graph, set()) == ["p.a", "p.b", "p.c", "p.a"]
    assert find_cycle({"p.a": {"p.b"}, "p.b": set()}, set()) is None


def _python_files() -> list[Path]:
    return [p for d in ("osvos_plugin", "osvos_contract", "host_adapters") for p in (REPO / d).rglob("*.py")]


def test_one_manifest_reader():
    definers = [p.relative_to(REPO).as_posix() for p in _python_files()
                if re.search(r"^class Manifest\b|^def parse_manifest\b", p.read_text(encoding="utf-8"), re.M)]
    assert definers == ["osvos_contract/manifest.py"]


def test_files_are_renamed_into_place_in_one_place():
    """The engine's one atomic writer is files.atomic_write; the contract (standard library only, run inside
    hosts) cannot import it and writes its job bundles itself, in farm.py alone."""
    users = [p.relative_to(REPO).as_posix() for p in _python_files() if "os.replace(" in p.read_text(encoding="utf-8")]
    assert sorted(users) == ["osvos_contract/farm.py", "osvos_plugin/files.py"]
