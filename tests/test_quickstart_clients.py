"""The quick start serves every client the README shows: `pip install -r requirements.txt` installs what the
README's Python examples and test_backend.py import (no ModuleNotFoundError for a new user)."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
OWN = {"backend", "tests", "__future__"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _sources() -> dict[str, str]:
    """test_backend.py and every ```python block of README.md, by a name for the messages."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", readme, flags=re.S | re.M)
    assert blocks, "README.md has no ```python block any more: update this test"
    sources = {f"README.md python block {i + 1}": code for i, code in enumerate(blocks)}
    sources["test_backend.py"] = (ROOT / "test_backend.py").read_text(encoding="utf-8")
    return sources


def _third_party_imports(code: str) -> set[str]:
    """Top-level names of the modules the code imports (anywhere in it), without the stdlib and our own."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in OWN}


def _named_in_requirements() -> dict[str, set[str]]:
    """{distribution: extras} named in requirements.txt (option lines such as -c skipped)."""
    named: dict[str, set[str]] = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        named.setdefault(_norm(req.name), set()).update(req.extras)
    return named


def _installed_by(named: dict[str, set[str]]) -> set[str]:
    """Every distribution `pip install -r requirements.txt` brings: the named ones and, transitively, their
    requirements (those behind an extra only when that extra is asked for)."""
    seen: dict[str, set[str]] = {}
    todo = list(named.items())
    while todo:
        dist, extras = todo.pop()
        if dist in seen and extras <= seen[dist]:
            continue
        seen.setdefault(dist, set()).update(extras)
        try:
            requires = metadata.requires(dist) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here (e.g. an optional platform package): its own deps are unknown
        for spec in requires:
            req = Requirement(spec)
            wanted = req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *seen[dist]))
            if wanted:
                todo.append((_norm(req.name), set(req.extras)))
    return set(seen)


def test_the_readme_clients_and_test_backend_need_only_requirements_txt():
    installed = _installed_by(_named_in_requirements())
    distributions = metadata.packages_distributions()
    missing = []
    for source, code in _sources().items():
        for module in sorted(_third_party_imports(code)):
            dists = {_norm(d) for d in distributions.get(module, [])}
            if not dists:
                missing.append(f"{source}: imports {module}, which no installed distribution provides")
            elif not dists & installed:
                missing.append(f"{source}: imports {module} ({', '.join(sorted(dists))}), not in requirements.txt")
    assert not missing, "\n".join(missing)
    # socketio.Client (every example) connects over requests (polling) and websocket-client: the [client] extra.
    assert _installed_by({"python-socketio": {"client"}}) <= installed, "python-socketio[client] not installed"


def test_the_check_sees_the_clients_imports():
    """The parsing above finds what the README's client imports, and follows extras (no vacuous pass)."""
    code = "import os, requests, socketio\nfrom backend.app import app\n"
    assert _third_party_imports(code) == {"requests", "socketio"}
    assert {"requests", "websocket-client"} <= _installed_by({"python-socketio": {"client"}})
    assert "requests" not in _installed_by({"python-socketio": set()})
