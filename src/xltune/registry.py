"""A small name -> object registry, as peft's tuners and lm-evaluation-harness's tasks use.

Each method, task and objective registers itself in its own module (one line), so adding one touches nothing
central. A registry may be given a ``loader`` that imports the modules that fill it (e.g. every module of a package,
found with :func:`import_submodules`); it runs on the first lookup. Lookups of unknown names raise
:class:`~xltune.errors.XLTuneError` listing the valid names, closest first.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import XLTuneError, unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, loader: Callable[[], None] | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._loader = loader

    def _load(self) -> None:
        if self._loader is not None:
            loader, self._loader = self._loader, None  # once; a module being imported may look itself up
            loader()

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        if name in self._items and self._items[name] is not obj:
            raise XLTuneError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj
        return obj

    def get(self, name: str, context: str = "") -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise unknown_name(self.kind, name, self._items, context) from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def import_submodules(package: str, skip: tuple[str, ...] = ()) -> Callable[[], None]:
    """A registry loader that imports every module of ``package`` (but ``skip``): dropping a module into the
    package is all it takes to register what it defines."""

    def load() -> None:
        pkg = importlib.import_module(package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if info.name not in skip and not info.name.startswith("_"):
                importlib.import_module(f"{package}.{info.name}")

    return load
