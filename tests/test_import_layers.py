"""Imports only point down: the import-linter contract of pyproject.toml holds, and no two files import each other,
directly or around a longer loop. Function-level imports count: a loop dodged inside a function is still a loop."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("backend", include_external_packages=False, cache_dir=None)


def test_import_linter_contracts_are_kept():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    run = subprocess.run(
        [lint, "--no-cache", "--no-logo", "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_every_backend_file_is_in_the_graph(graph):
    """A folder without __init__.py is a namespace package, which grimp (and so the contract) silently skips."""
    files = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "backend").rglob("*.py")
        if "static" not in p.relative_to(ROOT).parts
    }
    assert files - graph.modules == set()


def test_no_import_cycles_between_files(graph):
    """For every import a -> b, b must not lead back to a (a pair importing each other, or a longer loop)."""
    loops = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                loops.append(f"{module} -> {' -> '.join(back)}")
    assert loops == []
