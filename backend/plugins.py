"""A registry of named entries, each defined in its own module and listed by one line: the pruning methods
(backend/pruning/) and the distillation losses (backend/kd/) are kept this way, as models are (backend/models/)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name: the modules of `package` named in `modules` each define `attribute`, loaded on first use;
    more can be registered later (a plugin's, or a test's)."""

    def __init__(self, kind: str, package: str, modules: Sequence[str], attribute: str) -> None:
        self.kind, self.package, self.modules, self.attribute = kind, package, tuple(modules), attribute
        self._entries: dict[str, T] = {}
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.modules:
                self.register(getattr(importlib.import_module(f"{self.package}.{module}"), self.attribute))

    def register(self, entry: T) -> T:
        """Add an entry after the listed ones (a name registered twice is a mistake)."""
        self._load()
        name = entry.name  # type: ignore[attr-defined]
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def all(self) -> list[T]:
        """Every entry: the listed modules' in their order, then any registered later."""
        self._load()
        return list(self._entries.values())

    def get(self, name: str) -> T:
        """The entry called `name`; KeyError naming the valid ones otherwise."""
        self._load()
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; valid: {sorted(self._entries)}")
        return self._entries[name]

    def describe(self) -> list[Any]:
        return [entry.describe() for entry in self.all()]  # type: ignore[attr-defined]
