"""The layering of docs/architecture.md ("Components and data flow"): core imports no component; components import no other component;
only jobq.cli composes them all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.any_server

REPO = Path(__file__).resolve().parent.parent
COMPONENTS = {"api": "jobq.api", "worker": "jobq.worker", "operator": "jobq.operator"}


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _uses(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


def test_core_imports_no_component() -> None:
    for path in (REPO / "jobq").rglob("*.py"):
        # The command and the testing kit (a worker in the test's process) compose components.
        if {"cli", "testing"} & set(path.relative_to(REPO / "jobq").parts):
            continue
        modules = imported_modules(path)
        for package in COMPONENTS.values():
            assert not _uses(modules, package), f"{path} imports {package}"


def test_components_import_no_other_component() -> None:
    for folder, own in COMPONENTS.items():
        for path in (REPO / folder).rglob("*.py"):
            modules = imported_modules(path)
            for package in COMPONENTS.values():
                if package != own:
                    assert not _uses(modules, package), f"{path} imports {package}"
            # Components are imported through jobq.<name>, never as top-level folders.
            assert not any(m.split(".")[0] in COMPONENTS for m in modules), path
