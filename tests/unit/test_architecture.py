"""Dependency rules between the stages: production code never imports the VM lab.

The lab stands in for a deployed environment; the stages reach it only through the registries
that name it as a string (the target registry, the command registry), so that a real
environment's deploy, verify, report or migration never depends on QEMU, the lab's keys or its
loopback services. Imports inside functions count as much as module-level ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from citadelle import paths

pytestmark = pytest.mark.unit

PACKAGE = paths.REPO_ROOT / "citadelle"
LAB = "citadelle.lab"


def _module(path: Path) -> str:
    parts = path.relative_to(paths.REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, path: Path) -> set[str]:
    """Every module the file at ``path`` imports, wherever the import statement is."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


PRODUCTION = sorted(p for p in PACKAGE.rglob("*.py") if not _module(p).startswith(LAB))


@pytest.mark.parametrize("path", PRODUCTION, ids=_module)
def test_production_module_does_not_import_the_lab(path: Path):
    found = imports_of(path.read_text(encoding="utf-8"), path)
    lab_imports = sorted(m for m in found if m == LAB or m.startswith(f"{LAB}."))
    assert lab_imports == [], f"{_module(path)} imports {', '.join(lab_imports)}"


@pytest.mark.parametrize(("source", "expected"), [
    ("def f():\n    from citadelle.lab import gateway\n",
     {"citadelle.lab", "citadelle.lab.gateway"}),
    ("from ..lab.source import Source\n", {"citadelle.lab.source", "citadelle.lab.source.Source"}),
    ("from .. import lab\n", {"citadelle.lab"}),
    ("import citadelle.lab.vm as vm\n", {"citadelle.lab.vm"}),
    ("from citadelle.environment.targets import make_target\n", set()),
])
def test_the_rule_sees_lazy_and_relative_imports(source: str, expected: set[str]):
    found = imports_of(source, PACKAGE / "migrate" / "example.py")
    assert {m for m in found if m == LAB or m.startswith(f"{LAB}.")} == expected
